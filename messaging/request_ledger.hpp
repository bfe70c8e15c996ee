#pragma once
// An endpoint's request ledger: the one actor that holds every predict request an endpoint
// (ZeroMQ or HTTP) hands to serving, from the moment its socket side reads it until it is
// answered — exactly once, with serving's answer, an error, or its own deadline error.
//
// The socket side (a thread outside the actor system) sends the ledger each receive burst as
// one `ledger_intake`: the requests, each with its deadline (actor-clock µs) and the route
// its answer takes back (a client's identity frames, a connection's exchange). The ledger
// numbers them (tickets), sends serving one predict_burst and keeps, per ticket, the route
// and which actor holds the request: serving, until serving says which lane it passed the
// request on to (burst_routed). Answers (predict_answers, from whichever lane) come back to
// it; it hands them to the endpoint's listener with their routes, one call per burst of
// answers, on its own actor thread — the listener encodes them and posts them to its socket
// side. Exactly one answer per request:
//   - a holder that dies holding requests (a killed lane, a crashed router) — watched by a
//     monitor — has them failed at once (`not_ready`); unless it ran on another node (its
//     node may be lost, BASP kills a lost node's proxies at once): then the ledger, which
//     kept a copy of each request it sent there, sends them again to whatever serving the
//     name finds now (the peer resolver moves it to another node), up to `retries_max`
//     times and within their deadlines. The first answer for a ticket is the one passed
//     on; a later one (from a node that was only cut off) is dropped;
//   - a burst to another node carries who sent it (burst_origin: this ledger, the node's
//     incarnation and controller epoch, the send time that re-bases its deadlines onto the
//     receiver's clock); the receiving router admits each request at most once and refuses
//     a stale sender (`unauthorized`), which this ledger answers by sending it again under
//     the node's newer view, within `retries_max`; a request another node's serving
//     refused as not ready (draining as its replica is scaled away) is sent again to the
//     serving the name finds next — on another node than the one that refused it or went
//     down holding it, for `refused_wait` — within its deadline;
//   - a request still unanswered `grace` past its deadline gets `deadline_exceeded` from
//     here, so a client hears back in time even if serving hangs; a late answer is dropped.
// One timer for the earliest deadline, not one per request: re-armed only when a new
// request's deadline comes before the one armed.
//
// Heavy (caf/all.hpp, a template): included by the endpoints' .cpp files only.

#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "messaging/at_most_once.hpp"
#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {

/// Requests one receive burst brought, and where each one's answer goes.
template <class Route>
struct ledger_intake {
  std::vector<predict_request> requests;
  std::vector<Route> routes;
};

}  // namespace rml::messaging

namespace caf {
// Local only: the socket side hands the ledger its bursts inside the process.
template <class Route>
struct allowed_unsafe_message_type<rml::messaging::ledger_intake<Route>> : std::true_type {};
}  // namespace caf

namespace rml::messaging {

/// An answer (reply or error) and the route it takes.
template <class Route>
struct routed_answer {
  Route route;
  ticketed_answer answer;
};

/// Receives the answers; called on the ledger's actor thread, once per burst of answers
/// that became ready together, each request exactly once.
template <class Route>
class ledger_listener {
 public:
  virtual ~ledger_listener() = default;
  virtual void answered(std::vector<routed_answer<Route>>& answers) = 0;
};

struct ledger_options {
  /// Registered name of the actor that answers (serving), looked up per burst, so a
  /// restarted one is found.
  caf::atom_value target = caf::atom("serving");
  /// How long past a request's deadline serving's answer is waited for before the ledger
  /// answers `deadline_exceeded` itself (serving answers a deadline it sees; this covers a
  /// serving that hangs).
  std::chrono::microseconds grace{50'000};
  /// A request that finds no target waits for one until its deadline (a cluster node whose
  /// serving elsewhere was just lost), instead of failing `not_ready` at once.
  bool wait_for_target = false;
  /// Sends of one request to serving on another node, at most (the first included).
  std::uint32_t retries_max = 3;
  /// The wait before a retry looks for serving again (the resolver needs a moment to move).
  std::chrono::milliseconds retry_wait{20};
  /// How long a node whose serving went down holding a request, or answered `not_ready`, is
  /// passed over by retries (while the name still finds it).
  std::chrono::milliseconds refused_wait{1000};
  /// Stamped on every burst sent to serving on another node (burst_origin): the receiver
  /// admits each request at most once and re-bases its deadline onto its own clock. Null:
  /// the process's CAF node id names the sender, incarnation and epoch 0.
  std::shared_ptr<const sender_identity> identity;
  /// A planted bug, for the simulator's tests only (sim/world.hpp: planted_bugs): requests
  /// held by serving on a node that is lost are forgotten, never answered.
  bool planted_forget_lost_requests = false;
};

namespace detail {
using ledger_expire_atom = caf::atom_constant<caf::atom("lgrexpire")>;
using ledger_retry_atom = caf::atom_constant<caf::atom("lgrretry")>;

template <class Route>
struct ledger_state {
  struct entry {
    Route route;
    std::uint64_t request_id = 0;
    caf::actor_addr holder;
    /// Sent to serving on another node: a copy to send again should that node be lost.
    std::optional<predict_request> copy;
    std::uint32_t sends = 0;
  };
  /// Tickets whose remote holder went down, waiting to be sent again.
  std::vector<std::uint64_t> retrying;
  bool retry_armed = false;
  /// Remote holders seen going down (the last few): the registry may still name one for a
  /// moment, until the resolver has moved the name; a retry waits instead of sending there.
  std::vector<caf::actor_addr> lost;
  /// Nodes whose serving failed a request without a word (a lane that went down) or refused
  /// it as not ready (draining as it is scaled away, no model yet), until when (actor-clock
  /// µs): a retry waits for the name to move to another node rather than spend its sends
  /// there while the resolver has not moved yet.
  std::vector<std::pair<caf::node_id, std::int64_t>> avoided;
  /// burst_origin::sender of this ledger ("<node>/<actor id>").
  std::string origin_name;
  std::unordered_map<std::uint64_t, entry> held;
  /// (expiry µs, ticket) as a min-heap; tickets answered meanwhile are skipped (and popped)
  /// when they reach the top. A vector: no allocation per request.
  std::vector<std::pair<std::int64_t, std::uint64_t>> expiries;
  std::int64_t timer_at = INT64_MAX;
  std::uint64_t timer_epoch = 0;
  std::uint64_t next_ticket = 0;
  /// The holders watched (serving, its lanes): few.
  std::vector<caf::actor_addr> watched;
  std::vector<routed_answer<Route>> ready;
  static inline const char* name = "rml.request_ledger";
};

inline bool earlier_last(const std::pair<std::int64_t, std::uint64_t>& a, const std::pair<std::int64_t, std::uint64_t>& b) {
  return a.first > b.first;
}
}  // namespace detail

template <class Route>
caf::actor spawn_request_ledger(caf::actor_system& system, ledger_listener<Route>* listener, ledger_options options) {
  using state_type = detail::ledger_state<Route>;
  using pointer = caf::stateful_actor<state_type>*;
  return system.spawn([listener, options](pointer self) -> caf::behavior {
    auto now_us = [self] {
      return std::chrono::duration_cast<std::chrono::microseconds>(self->clock().now().time_since_epoch()).count();
    };
    auto fail = [self](std::uint64_t ticket, typename state_type::entry& entry, errc code, std::string why) {
      ticketed_answer answer;
      answer.ticket = ticket;
      answer.request_id = entry.request_id;
      answer.failure = make_error(code, "request " + std::to_string(entry.request_id) + ": " + why);
      self->state.ready.push_back({std::move(entry.route), std::move(answer)});
    };
    auto flush = [self, listener] {
      if (self->state.ready.empty()) return;
      listener->answered(self->state.ready);
      self->state.ready.clear();
    };
    auto avoid = [self, options, now_us](const caf::node_id& node) {
      auto& avoided = self->state.avoided;
      const std::int64_t until = now_us() + std::chrono::duration_cast<std::chrono::microseconds>(options.refused_wait).count();
      for (auto& [known, when] : avoided) {
        if (known == node) {
          when = until;
          return;
        }
      }
      if (avoided.size() >= 16) avoided.erase(avoided.begin());
      avoided.emplace_back(node, until);
    };
    // A burst for serving on another node says who sends it (at_most_once.hpp).
    auto stamp = [self, options, now_us](predict_burst& burst) {
      auto& state = self->state;
      if (state.origin_name.empty()) {
        state.origin_name = (options.identity ? options.identity->node : caf::to_string(self->node())) + "/" + std::to_string(self->id());
      }
      burst.origin.sender = state.origin_name;
      burst.origin.incarnation = options.identity ? options.identity->incarnation.load(std::memory_order_relaxed) : 0;
      burst.origin.epoch = options.identity ? options.identity->epoch.load(std::memory_order_relaxed) : 0;
      burst.origin.sent_at_us = now_us();
    };
    auto watch = [self](const caf::actor& holder) {
      auto& watched = self->state.watched;
      if (std::find(watched.begin(), watched.end(), holder.address()) != watched.end()) return;
      self->monitor(holder);  // one already down is reported at once
      watched.push_back(holder.address());
    };
    // Drops answered tickets from the heap's top and arms the timer for the earliest
    // deadline left, if it comes before the one armed.
    auto arm = [self, now_us] {
      auto& state = self->state;
      auto& heap = state.expiries;
      while (!heap.empty() && !state.held.count(heap.front().second)) {
        std::pop_heap(heap.begin(), heap.end(), detail::earlier_last);
        heap.pop_back();
      }
      if (heap.empty() || heap.front().first >= state.timer_at) return;
      state.timer_at = heap.front().first;
      const auto wait = std::chrono::microseconds(std::max<std::int64_t>(0, state.timer_at - now_us()));
      self->delayed_send(self, wait, detail::ledger_expire_atom::value, ++state.timer_epoch);
    };
    // Requests waiting to be sent again look for serving after `retry_wait` (one timer).
    auto arm_retry = [self, options] {
      auto& state = self->state;
      if (state.retrying.empty() || state.retry_armed) return;
      state.retry_armed = true;
      self->delayed_send(self, options.retry_wait, detail::ledger_retry_atom::value);
    };
    self->set_down_handler([self, fail, flush, arm, options, avoid, arm_retry](caf::down_msg& down) {
      auto& held = self->state.held;
      for (auto entry = held.begin(); entry != held.end();) {
        if (entry->second.holder != down.source) {
          ++entry;
          continue;
        }
        if (options.planted_forget_lost_requests && entry->second.copy) {
          entry = held.erase(entry);
          continue;
        }
        if (entry->second.copy && entry->second.sends < options.retries_max) {
          entry->second.holder = caf::actor_addr();
          self->state.retrying.push_back(entry->first);
          ++entry;
          continue;
        }
        fail(entry->first, entry->second, errc::not_ready,
             entry->second.copy ? "serving on another node was lost " + std::to_string(entry->second.sends) + " times before answering"
                                : "the serving actor holding it stopped before answering");
        entry = held.erase(entry);
      }
      if (!self->state.retrying.empty()) {
        // Its node may still be named for serving for a moment (a lane gone as its replica
        // drains away): retries wait for another rather than spend their sends there.
        if (down.source.node() != self->node()) avoid(down.source.node());
        auto& lost = self->state.lost;
        if (lost.size() >= 16) lost.erase(lost.begin());
        lost.push_back(down.source);
      }
      arm_retry();
      auto& watched = self->state.watched;
      watched.erase(std::remove(watched.begin(), watched.end(), down.source), watched.end());
      flush();
      arm();
    });
    return {
        [self, options, fail, flush, watch, arm, stamp, arm_retry](ledger_intake<Route>& intake) {
          auto& state = self->state;
          auto serving = self->system().registry().template get<caf::actor>(options.target);
          predict_burst burst;
          burst.requests.reserve(intake.requests.size());
          for (std::size_t index = 0; index < intake.requests.size(); ++index) {
            auto& request = intake.requests[index];
            const std::uint64_t ticket = ++state.next_ticket;
            typename state_type::entry entry{std::move(intake.routes[index]), request.request_id, serving.address(), std::nullopt, 0};
            if (!serving && (request.deadline_us <= 0 || !options.wait_for_target)) {
              fail(ticket, entry, errc::not_ready, "no serving actor running");
              continue;
            }
            if (request.deadline_us > 0) {
              state.expiries.emplace_back(request.deadline_us + options.grace.count(), ticket);
              std::push_heap(state.expiries.begin(), state.expiries.end(), detail::earlier_last);
            }
            if (!serving) {
              // Between a lost node's serving and the next one found: waits with the others
              // (the deadline ends the wait).
              entry.copy = std::move(request);
              state.held.emplace(ticket, std::move(entry));
              state.retrying.push_back(ticket);
              continue;
            }
            entry.sends = 1;
            if (serving.node() != self->node()) entry.copy = request;  // another node's: kept to send again
            state.held.emplace(ticket, std::move(entry));
            burst.requests.push_back({ticket, std::move(request)});
          }
          if (serving && !burst.requests.empty()) {
            watch(serving);
            if (serving.node() != self->node()) stamp(burst);
            self->send(serving, std::move(burst));
          }
          arm_retry();
          arm();
          flush();
        },
        [self, watch](burst_routed& routed) {
          // Answers may have come first: only requests still held move to their holder.
          const auto holder = routed.holder.address();
          bool any = false;
          for (auto ticket : routed.tickets) {
            auto found = self->state.held.find(ticket);
            if (found == self->state.held.end()) continue;
            found->second.holder = holder;
            any = true;
          }
          if (any) watch(routed.holder);
        },
        [self, options, flush, arm, avoid, arm_retry](predict_answers& answers) {
          auto& state = self->state;
          for (auto& answer : answers.answers) {
            auto found = state.held.find(answer.ticket);
            if (found == state.held.end()) continue;  // failed already (deadline, holder down)
            const errc code = answer.ok() ? errc{} : rml_code(answer.failure).value_or(errc{});  // errc{}: none
            if (found->second.copy && found->second.sends < options.retries_max && (code == errc::unauthorized || code == errc::not_ready)) {
              // Serving on another node refused it without acting on it: this node's view as
              // stale (its incarnation or the controller's epoch, at_most_once.hpp) — sent
              // again, stamped with the view this node holds by then; or as not ready (a
              // replica draining as it is scaled away, one still without a model) — sent to
              // whatever serving the name finds next, within the deadline.
              if (code == errc::not_ready && self->current_sender()) avoid(self->current_sender()->node());
              found->second.holder = caf::actor_addr();
              state.retrying.push_back(answer.ticket);
              continue;
            }
            state.ready.push_back({std::move(found->second.route), std::move(answer)});
            state.held.erase(found);
          }
          arm_retry();
          flush();
          arm();
        },
        [self, options, watch, now_us, stamp](detail::ledger_retry_atom) {
          auto& state = self->state;
          state.retry_armed = false;
          auto serving = self->system().registry().template get<caf::actor>(options.target);
          const std::int64_t now = now_us();
          const bool lost = serving && (std::find(state.lost.begin(), state.lost.end(), serving.address()) != state.lost.end() ||
                                        std::any_of(state.avoided.begin(), state.avoided.end(), [&](const auto& avoided) {
                                          return avoided.first == serving.node() && avoided.second > now;
                                        }));
          if (!serving || lost) {
            // None found yet, or still the lost one: look again (the deadline ends the wait).
            state.retry_armed = true;
            self->delayed_send(self, options.retry_wait, detail::ledger_retry_atom::value);
            return;
          }
          predict_burst burst;
          for (auto ticket : state.retrying) {
            auto found = state.held.find(ticket);
            if (found == state.held.end() || !found->second.copy) continue;  // answered or expired meanwhile
            auto& entry = found->second;
            if (entry.copy->deadline_us > 0 && entry.copy->deadline_us <= now) continue;  // the expiry answers it
            entry.holder = serving.address();
            ++entry.sends;
            burst.requests.push_back({ticket, *entry.copy});
          }
          state.retrying.clear();
          if (burst.requests.empty()) return;
          watch(serving);
          if (serving.node() != self->node()) stamp(burst);
          self->send(serving, std::move(burst));
        },
        [self, fail, flush, arm, now_us](detail::ledger_expire_atom, std::uint64_t epoch) {
          auto& state = self->state;
          if (epoch != state.timer_epoch) return;  // re-armed for an earlier deadline since
          state.timer_at = INT64_MAX;
          const std::int64_t now = now_us();
          auto& heap = state.expiries;
          while (!heap.empty() && heap.front().first <= now) {
            const std::uint64_t ticket = heap.front().second;
            std::pop_heap(heap.begin(), heap.end(), detail::earlier_last);
            heap.pop_back();
            auto found = state.held.find(ticket);
            if (found == state.held.end()) continue;
            fail(ticket, found->second, errc::deadline_exceeded, "no answer by its deadline");
            state.held.erase(found);
          }
          flush();
          arm();
        },
    };
  });
}

}  // namespace rml::messaging
