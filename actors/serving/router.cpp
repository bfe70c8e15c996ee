#include "actors/serving/router.hpp"

#include <caf/all.hpp>

#include <cmath>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "messaging/reporting.hpp"
#include "compute/random.hpp"
#include "messaging/answer_outbox.hpp"
#include "messaging/at_most_once.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"
#include "supervision/dynamic_supervisor.hpp"

namespace rml::actors {

result<version_policy> parse_version_policy(const std::string& spec) {
  version_policy policy;
  const auto colon = spec.find(':');
  const std::string name = spec.substr(0, colon);
  const std::string argument = colon == std::string::npos ? "" : spec.substr(colon + 1);
  auto bad = [&](const std::string& what) { return error(errc::invalid_argument, "version policy '" + spec + "': " + what); };
  auto parse_version = [](const std::string& text, std::uint64_t& version) {
    if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) return false;
    version = std::stoull(text);
    return version > 0;
  };
  if (name == "latest" || name == "shadow") {
    if (!argument.empty()) return bad("takes no argument");
    policy.type = name == "latest" ? version_policy::kind::latest : version_policy::kind::shadow;
  } else if (name == "pinned") {
    policy.type = version_policy::kind::pinned;
    if (!parse_version(argument, policy.pinned_version)) return bad("expected pinned:<version ≥ 1>");
  } else if (name == "canary") {
    policy.type = version_policy::kind::canary;
    char* end = nullptr;
    const double percent = argument.empty() ? 0 : std::strtod(argument.c_str(), &end);
    if (argument.empty() || *end != '\0' || !(percent > 0 && percent < 100)) return bad("expected canary:<percent in (0, 100)>");
    policy.canary_fraction = percent / 100.0;
  } else if (name == "bandit") {
    policy.type = version_policy::kind::bandit;
    std::size_t start = 0;
    while (start <= argument.size()) {
      const auto comma = argument.find(',', start);
      const std::string item = argument.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      std::uint64_t version = 0;
      if (!parse_version(item, version)) return bad("expected bandit:<version>,<version>[,...]; '" + item + "' is not a version");
      if (std::find(policy.arms.begin(), policy.arms.end(), version) != policy.arms.end()) return bad("version " + item + " twice");
      policy.arms.push_back(version);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    if (policy.arms.size() < 2) return bad("a bandit needs at least two versions");
  } else {
    return bad("unknown policy (latest, pinned:V, canary:P, shadow, bandit:V1,V2,...)");
  }
  return policy;
}

std::string to_string(const version_policy& policy) {
  switch (policy.type) {
    case version_policy::kind::latest:
      return "latest";
    case version_policy::kind::shadow:
      return "shadow";
    case version_policy::kind::pinned:
      return "pinned:" + std::to_string(policy.pinned_version);
    case version_policy::kind::canary: {
      char text[32];
      std::snprintf(text, sizeof(text), "canary:%g", policy.canary_fraction * 100);
      return text;
    }
    case version_policy::kind::bandit: {
      std::string text = "bandit:";
      for (std::size_t index = 0; index < policy.arms.size(); ++index) text += (index ? "," : "") + std::to_string(policy.arms[index]);
      return text;
    }
  }
  return "unknown";
}

status validate(const router_options& options) {
  if (auto policy = parse_version_policy(options.policy); !policy) return policy.error();
  if (auto lane = validate(options.lane); !lane) return lane;
  if (!(options.bandit_exploration > 0 && options.bandit_exploration <= 1)) {
    return error(errc::invalid_argument, "serving: bandit exploration must be in (0, 1], got " + std::to_string(options.bandit_exploration));
  }
  if (options.feedback_window == 0) return error(errc::invalid_argument, "serving: feedback_window must be ≥ 1, got 0");
  if (options.canary.feedback_min == 0) return error(errc::invalid_argument, "serving: canary feedback_min must be ≥ 1, got 0");
  if (options.lane_restart_window.count() <= 0) return error(errc::invalid_argument, "serving: lane_restart_window must be positive");
  return {};
}

namespace {
using drain_timeout_atom = caf::atom_constant<caf::atom("draintime")>;

/// Requests for one lane from one asker (a burst's sender; the router itself for requests
/// asked with a promise; null for shadow mirrors), passed on as one burst with the asker as
/// its sender, so that the lane answers the asker straight.
struct lane_delivery {
  std::uint64_t lane_id = 0;
  caf::strong_actor_ptr asker;
  messaging::predict_burst burst;
};

struct lane_state {
  std::uint64_t id = 0;  // unique; the role can move (a closing lane is renamed)
  std::string role;
  /// Empty until the lanes' supervisor has started it: requests for it wait in `pending`.
  batcher_actor actor;
  std::vector<lane_delivery> pending;
  std::optional<messaging::model_snapshot> snapshot;
  /// Requests handed to the lane whose outcomes have not come back: a lane closes when none
  /// are left; what a killed lane held, its askers fail (they watch it: burst_routed).
  std::uint64_t held = 0;
  /// The shadow lane: its requests are mirrors, answered to nobody and not in flight.
  bool mirror = false;
  bool closing = false;  // exits when its last request is answered
  std::uint64_t last_used = 0;
  // Live evaluation since the last reset.
  std::uint64_t feedback = 0, correct = 0;
  messaging::latency_histogram latency;
  messaging::metrics::gauge* version_gauge = nullptr;
  messaging::metrics::gauge* accuracy_gauge = nullptr;
  std::uint64_t version() const { return snapshot ? snapshot->version : 0; }
  double accuracy() const { return feedback ? double(correct) / double(feedback) : 0.0; }
  void reset_evaluation() {
    feedback = correct = 0;
    latency = {};
  }
};

/// What the router remembers of a prediction until its feedback comes (or it is forgotten).
struct remembered_prediction {
  std::string role;
  std::uint64_t version = 0;
  std::int32_t predicted = -1;         // top class of the first row; -1 until answered
  std::int32_t shadow_predicted = -1;  // the shadow's, under the shadow policy
  bool compared = false;
  double probability = 1.0;  // the bandit's probability of choosing this arm
};

using messaging::answer_target;

struct waiting_for_version {
  messaging::predict_request request;
  answer_target target;
};

/// A request asked of the router with a promise (from inside the process), at a lane: the
/// lane answers the router, which keeps the promise. Bursts from endpoints are answered by
/// the lanes straight and never held here.
struct promised_request {
  caf::typed_response_promise<messaging::predict_reply> promise;
  std::uint64_t request_id = 0;
  std::uint64_t lane_id = 0;
};

struct router_metrics {
  messaging::metrics::histogram* latency;
  messaging::metrics::counter* answered;
  messaging::metrics::gauge* draining;
  messaging::metrics::counter* promoted;
  messaging::metrics::counter* rolled_back;
  messaging::metrics::counter* agree;
  messaging::metrics::counter* disagree;
  messaging::metrics::counter* lane_restarts;
  messaging::metrics::counter* duplicates;
};

struct router_state {
  router_options options;
  version_policy policy;
  std::map<std::string, lane_state> lanes;
  std::optional<messaging::model_snapshot> latest;
  /// The highest version the registry has given this router (versions move forward only).
  std::uint64_t highest_version = 0;
  std::optional<messaging::model_snapshot> next_candidate;
  std::map<std::uint64_t, std::vector<waiting_for_version>> loading;
  std::unordered_map<std::uint64_t, remembered_prediction> memory;
  std::deque<std::uint64_t> memory_order;
  std::map<std::uint64_t, double> bandit_weights;  // by version
  std::unique_ptr<random_source> random;
  /// Starts, restarts and stops the lanes (supervision/dynamic_supervisor.hpp); the router
  /// only routes to them.
  caf::actor lanes_supervisor;
  bool draining = false;
  std::uint64_t in_flight = 0;
  std::optional<caf::typed_response_promise<std::uint64_t>> drain_promise;
  std::uint64_t uses = 0;
  std::uint64_t lanes_opened = 0, next_ticket = 0;
  /// Requests asked with a promise, by the router's ticket, until their lane answers.
  std::unordered_map<std::uint64_t, promised_request> promised;
  /// What the current message produced, sent when it is handled (flush): requests for each
  /// lane and asker, and the router's own refusals for each burst sender — one message
  /// each, however many requests they carry.
  std::vector<lane_delivery> to_lanes;
  messaging::answer_outbox to_askers;
  /// Counts since the router started (the other fields are filled in when asked).
  messaging::serving_status counts;
  router_metrics metrics{};
  std::map<std::string, messaging::metrics::counter*> errors_by_kind;
  /// The cluster's model pointer as last told (follow_model_pointer), and the versions pushed
  /// above it, held until it reaches them (the newest few).
  std::uint64_t model_pointer = 0;
  std::map<std::uint64_t, messaging::model_snapshot> held_above_pointer;
  /// Requests from other nodes' ledgers, admitted at most once (messaging/at_most_once.hpp).
  messaging::at_most_once_filter from_other_nodes;
  /// For monitoring's drift detectors: the main lane's labelled answers as error bits, and
  /// request rows sampled, each sent once a batch is full; which monitor has the main
  /// version's reference already.
  messaging::outcomes_observed feedback_outcomes;
  messaging::inputs_sampled sampled_inputs;
  std::uint64_t requests_since_sample = 0;
  caf::actor_addr reference_sent_to;
  std::uint64_t reference_sent_version = 0;
  static inline const char* name = "rml.router";
};

using router_pointer = router_actor::stateful_pointer<router_state>;

void trace(router_pointer self, const char* kind, std::string detail) {
  self->state.options.telemetry.trace->record({messaging::clock_us(self), "router/" + self->state.options.model, kind, std::move(detail)});
}

messaging::metrics::counter& answered_counter(router_state& state, const std::string& outcome) {
  auto& counter = state.errors_by_kind[outcome];
  if (!counter) {
    counter = &state.options.telemetry.metrics->get_counter(
        "rml_requests_total", "Predict requests answered by serving, by outcome", {{"model", state.options.model}, {"outcome", outcome}});
  }
  return *counter;
}

void refuse(router_state& state, answer_target& target, std::uint64_t request_id, errc code, std::string message);
void close_lane(router_pointer self, const std::string& role);
void finish_drain_if_done(router_pointer self);
void flush(router_pointer self);
void sample_input(router_pointer self, const messaging::predict_request& request);

lane_state* lane_by_id(router_state& state, std::uint64_t id) {
  for (auto& [role, lane] : state.lanes) {
    if (lane.id == id) return &lane;
  }
  return nullptr;
}

/// Sends `delivery` to `lane` as its asker's: the lane answers the asker, not the router.
/// An asker other than the router learns which lane holds its requests (burst_routed), so
/// that it fails them itself should that lane die holding them.
void pass_on(router_pointer self, const batcher_actor& lane, lane_delivery& delivery) {
  if (delivery.asker && delivery.asker.get() != self->ctrl()) {
    messaging::burst_routed routed;
    routed.holder = caf::actor_cast<caf::actor>(lane);
    routed.tickets.reserve(delivery.burst.requests.size());
    for (const auto& item : delivery.burst.requests) routed.tickets.push_back(item.ticket);
    caf::unsafe_send_as(self, delivery.asker, std::move(routed));
  }
  caf::actor_cast<caf::abstract_actor*>(lane)->eq_impl(caf::make_message_id(), std::move(delivery.asker), self->context(),
                                                       std::move(delivery.burst));
}

/// Everything a lane needs once its actor runs: its version, the current batching settings
/// (it may have been started with older ones) and the requests that waited for it.
void hand_over_to_started(router_pointer self, lane_state& lane) {
  if (lane.snapshot) self->send(lane.actor, *lane.snapshot);
  self->send(lane.actor, self->state.options.lane.settings);
  for (auto& delivery : lane.pending) pass_on(self, lane.actor, delivery);
  lane.pending.clear();
}

/// Answers the requests of a delivery no lane will take with `not_ready` (those asked with a
/// promise are answered with the promises, by the caller); returns how many it answered.
std::uint64_t refuse_delivery(router_pointer self, lane_delivery& delivery, const std::string& why) {
  if (!delivery.asker || delivery.asker.get() == self->ctrl()) return 0;  // mirrors; promises
  auto& state = self->state;
  for (auto& item : delivery.burst.requests) {
    answered_counter(state, to_string(errc::not_ready)).add();
    state.to_askers.add(delivery.asker, item.ticket, item.request.request_id, nullptr, messaging::make_error(errc::not_ready, why));
  }
  return delivery.burst.requests.size();
}

/// Answers the requests asked of the router with a promise that lane `lane_id` held (all of
/// them when it is 0) with `not_ready`; returns how many.
std::uint64_t refuse_promised(router_state& state, std::uint64_t lane_id, const std::string& why) {
  std::uint64_t refused = 0;
  for (auto entry = state.promised.begin(); entry != state.promised.end();) {
    if (lane_id != 0 && entry->second.lane_id != lane_id) {
      ++entry;
      continue;
    }
    ++refused;
    answered_counter(state, to_string(errc::not_ready)).add();
    entry->second.promise.deliver(messaging::make_error(errc::not_ready, why));
    entry = state.promised.erase(entry);
  }
  return refused;
}

/// The lane is gone (not started, or crashed and replaced): the requests that waited for it
/// and those asked of the router with a promise get an error here; what else it still held
/// (a kill answers nothing) its askers fail, as they watch the lane (burst_routed).
void refuse_lane_requests(router_pointer self, lane_state& lane, const std::string& why) {
  auto& state = self->state;
  std::uint64_t refused = 0;
  for (auto& delivery : lane.pending) refused += refuse_delivery(self, delivery, "serving lane " + lane.role + why);
  lane.pending.clear();
  refused += refuse_promised(state, lane.id, "serving lane " + lane.role + why);
  if (!lane.mirror) {
    const std::uint64_t left = lane.held > refused ? lane.held - refused : 0;
    state.in_flight -= std::min(state.in_flight, lane.held);
    if (left > 0) {
      state.counts.requests_at_lost_lanes += left;
      trace(self, "requests_at_lost_lane", "lane=" + lane.role + " requests=" + std::to_string(left));
    }
  }
  lane.held = 0;
}

lane_state& open_lane(router_pointer self, const std::string& role) {
  auto& state = self->state;
  auto found = state.lanes.find(role);
  if (found != state.lanes.end() && !found->second.closing) return found->second;
  if (found != state.lanes.end()) {
    // Still finishing its requests: let it, under a name nobody routes to.
    auto retired = std::move(found->second);
    state.lanes.erase(found);
    state.lanes.emplace(role + "#closing" + std::to_string(++state.uses), std::move(retired));
  }
  lane_state lane;
  lane.id = ++state.lanes_opened;
  lane.role = role;
  lane.mirror = role == "shadow";
  const std::uint64_t id = lane.id;
  self->request(state.lanes_supervisor, caf::infinite, supervision::start_child_atom::value, caf::make_message(role))
      .then(
          [self, id](caf::actor& started) {
            auto* lane = lane_by_id(self->state, id);
            if (!lane) {  // closed before it started
              caf::anon_send(self->state.lanes_supervisor, supervision::terminate_child_atom::value, started);
              return;
            }
            lane->actor = caf::actor_cast<batcher_actor>(started);
            hand_over_to_started(self, *lane);
            if (lane->closing && lane->held == 0) close_lane(self, lane->role);
            finish_drain_if_done(self);
            flush(self);
          },
          [self, id](caf::error& failure) {
            auto* lane = lane_by_id(self->state, id);
            if (!lane) return;
            trace(self, "lane_not_started", "lane=" + lane->role + " " + messaging::describe(failure));
            refuse_lane_requests(self, *lane, " could not start: " + messaging::describe(failure));
            lane->version_gauge->set(0);
            self->state.lanes.erase(lane->role);
            finish_drain_if_done(self);
            flush(self);
          });
  auto& registry = *state.options.telemetry.metrics;
  const messaging::metrics::label_set labels{{"model", state.options.model}, {"lane", role}};
  lane.version_gauge = &registry.get_gauge("rml_model_version", "Model version a serving lane answers with", labels);
  lane.accuracy_gauge = &registry.get_gauge("rml_live_accuracy", "Accuracy of a lane's answers on labelled feedback", labels);
  return state.lanes[role] = std::move(lane);
}

void load_lane(router_pointer self, lane_state& lane, const messaging::model_snapshot& snapshot) {
  lane.snapshot = snapshot;
  lane.version_gauge->set(double(snapshot.version));
  if (lane.actor) self->send(lane.actor, snapshot);
  trace(self, "lane_loaded", "lane=" + lane.role + " version=" + std::to_string(snapshot.version));
}

lane_state* find_lane(router_state& state, const std::string& role) {
  auto found = state.lanes.find(role);
  return found == state.lanes.end() || found->second.closing ? nullptr : &found->second;
}

void close_lane(router_pointer self, const std::string& role) {
  auto& state = self->state;
  auto found = state.lanes.find(role);
  if (found == state.lanes.end()) return;
  auto& lane = found->second;
  if (lane.held > 0) {
    lane.closing = true;
    return;
  }
  // Not yet started: the start's answer finds no lane and stops what started.
  if (lane.actor) caf::anon_send(state.lanes_supervisor, supervision::terminate_child_atom::value, caf::actor_cast<caf::actor>(lane.actor));
  lane.version_gauge->set(0);
  state.lanes.erase(found);
}

/// Fetches a version: at once when it is the newest seen, else from the registry.
void fetch_version(router_pointer self, std::uint64_t version, std::function<void(const messaging::model_snapshot&)> loaded,
                   std::function<void(const caf::error&)> failed) {
  auto& state = self->state;
  if (state.latest && state.latest->version == version) return loaded(*state.latest);
  for (auto& [role, lane] : state.lanes) {
    if (lane.snapshot && lane.snapshot->version == version) return loaded(*lane.snapshot);
  }
  auto registry = self->system().registry().template get<caf::actor>(state.options.registry);
  if (!registry) return failed(messaging::make_error(errc::not_ready, "no model registry running to load version " + std::to_string(version)));
  self->request(registry, std::chrono::seconds(30), messaging::version_atom::value, version)
      .then([loaded](messaging::model_snapshot& snapshot) { loaded(snapshot); }, [failed](caf::error& failure) { failed(failure); });
}

std::string arm_role(std::uint64_t version) { return "v" + std::to_string(version); }

/// Sets up the lanes a policy needs; lanes it does not need close once empty.
void apply_policy(router_pointer self, const version_policy& policy) {
  auto& state = self->state;
  state.policy = policy;
  state.next_candidate.reset();
  for (auto& [role, lane] : state.lanes) lane.reset_evaluation();
  std::vector<std::string> unneeded;
  for (auto& [role, lane] : state.lanes) {
    const bool needed = role == "main" || (policy.type == version_policy::kind::bandit && role.front() == 'v') ||
                        (policy.type == version_policy::kind::shadow && role == "shadow");
    if (!needed && role.find("#closing") == std::string::npos && role.front() != 'v') unneeded.push_back(role);
  }
  for (const auto& role : unneeded) close_lane(self, role);
  auto& main = open_lane(self, "main");
  switch (policy.type) {
    case version_policy::kind::latest:
      if (state.latest && main.version() != state.latest->version) load_lane(self, main, *state.latest);
      break;
    case version_policy::kind::pinned:
      if (main.version() != policy.pinned_version) {
        fetch_version(
            self, policy.pinned_version,
            [self](const messaging::model_snapshot& snapshot) {
              if (auto* lane = find_lane(self->state, "main"); lane && self->state.policy.type == version_policy::kind::pinned &&
                                                                self->state.policy.pinned_version == snapshot.version) {
                load_lane(self, *lane, snapshot);
              }
            },
            [self, version = policy.pinned_version](const caf::error& failure) {
              trace(self, "policy_failed", "pinned version " + std::to_string(version) + ": " + messaging::describe(failure));
            });
      }
      break;
    case version_policy::kind::canary:
    case version_policy::kind::shadow:
      if (!main.snapshot && state.latest) load_lane(self, main, *state.latest);
      if (policy.type == version_policy::kind::shadow && state.latest && state.latest->version != main.version()) {
        load_lane(self, open_lane(self, "shadow"), *state.latest);
      }
      break;
    case version_policy::kind::bandit:
      state.bandit_weights.clear();
      for (std::uint64_t version : policy.arms) {
        state.bandit_weights[version] = 1.0;
        fetch_version(
            self, version,
            [self](const messaging::model_snapshot& snapshot) {
              if (!self->state.bandit_weights.count(snapshot.version)) return;
              auto& lane = open_lane(self, arm_role(snapshot.version));
              if (lane.version() != snapshot.version) load_lane(self, lane, snapshot);
            },
            [self, version](const caf::error& failure) {
              trace(self, "policy_failed", "bandit arm " + std::to_string(version) + ": " + messaging::describe(failure));
            });
      }
      break;
  }
  trace(self, "policy_set", to_string(policy));
}

/// A newly published version, as the policy wants it.
void on_published(router_pointer self, const messaging::model_snapshot& snapshot, bool rollback = false) {
  auto& state = self->state;
  if (state.latest && state.latest->version == snapshot.version) return;
  // Versions only move forward here, except by the registry's explicit rollback: a version
  // below the highest this router was given (a stale registry across a partition, a
  // reordered push) is refused, so no two nodes serve different versions as the latest.
  if (!rollback && snapshot.version < state.highest_version) {
    const std::string reason = "version " + std::to_string(snapshot.version) + " is below version " +
                               std::to_string(state.highest_version) + " already given to serving; versions move back only by rollback";
    trace(self, "version_refused", reason);
    if (auto registry = self->system().registry().get<caf::actor>(messaging::names::registry)) {
      caf::anon_send(registry, messaging::model_refused{snapshot.version, "serving", reason});
    }
    return;
  }
  if (!rollback && state.options.follow_model_pointer && snapshot.version > state.model_pointer) {
    // Not the cluster's latest yet: held until the pointer reaches it.
    constexpr std::size_t held_versions_max = 4;
    state.held_above_pointer[snapshot.version] = snapshot;
    while (state.held_above_pointer.size() > held_versions_max) state.held_above_pointer.erase(state.held_above_pointer.begin());
    trace(self, "version_held", "version " + std::to_string(snapshot.version) + " above the cluster's model pointer v" +
                                    std::to_string(state.model_pointer));
    return;
  }
  state.highest_version = std::max(state.highest_version, snapshot.version);
  state.latest = snapshot;
  auto& main = open_lane(self, "main");
  switch (state.policy.type) {
    case version_policy::kind::latest:
      load_lane(self, main, snapshot);
      break;
    case version_policy::kind::pinned:
      if (snapshot.version == state.policy.pinned_version) load_lane(self, main, snapshot);
      break;
    case version_policy::kind::canary:
      if (!main.snapshot) {
        load_lane(self, main, snapshot);
      } else if (auto* candidate = find_lane(state, "canary"); candidate && candidate->snapshot) {
        state.next_candidate = snapshot;  // waits for the decision on the current candidate
      } else {
        load_lane(self, open_lane(self, "canary"), snapshot);
        main.reset_evaluation();
        trace(self, "canary_started", "candidate=" + std::to_string(snapshot.version) + " stable=" + std::to_string(main.version()));
      }
      break;
    case version_policy::kind::shadow:
      if (!main.snapshot) load_lane(self, main, snapshot);
      else load_lane(self, open_lane(self, "shadow"), snapshot);
      break;
    case version_policy::kind::bandit:
      if (state.bandit_weights.count(snapshot.version)) load_lane(self, open_lane(self, arm_role(snapshot.version)), snapshot);
      break;
  }
}

/// The cluster's model pointer moved to `version`: the newest held version it reaches is
/// taken as the latest, and those below it are dropped (passed over, as a registry's quick
/// successive publications would be).
void on_model_pointer(router_pointer self, std::uint64_t version) {
  auto& state = self->state;
  if (version <= state.model_pointer) return;
  state.model_pointer = version;
  auto& held = state.held_above_pointer;
  auto reached = held.upper_bound(version);
  if (reached == held.begin()) return;
  auto snapshot = std::move(std::prev(reached)->second);
  held.erase(held.begin(), reached);
  on_published(self, snapshot);
}

void finish_drain_if_done(router_pointer self) {
  auto& state = self->state;
  if (state.draining && state.in_flight == 0 && state.drain_promise) {
    state.drain_promise->deliver(std::uint64_t{0});
    state.drain_promise.reset();
    trace(self, "drained", "every admitted request answered");
  }
}

/// What is remembered of a prediction for its feedback, made when first needed; the oldest
/// beyond the feedback window are forgotten. The order is bounded, not the memory: entries
/// that feedback already took stay in the order until they reach its front.
remembered_prediction& remember(router_state& state, std::uint64_t request_id) {
  auto [where, added] = state.memory.try_emplace(request_id);
  if (!added) return where->second;
  state.memory_order.push_back(request_id);
  while (state.memory_order.size() > state.options.feedback_window && state.memory_order.front() != request_id) {
    state.memory.erase(state.memory_order.front());
    state.memory_order.pop_front();
  }
  return where->second;
}

void compare_shadow(router_state& state, remembered_prediction& prediction) {
  if (prediction.compared || prediction.predicted < 0 || prediction.shadow_predicted < 0) return;
  prediction.compared = true;
  const bool agree = prediction.predicted == prediction.shadow_predicted;
  ++(agree ? state.counts.shadow_agree : state.counts.shadow_disagree);
  (agree ? state.metrics.agree : state.metrics.disagree)->add();
}

void refuse(router_state& state, answer_target& target, std::uint64_t request_id, errc code, std::string message) {
  answered_counter(state, to_string(code)).add();
  state.to_askers.answer(target, request_id, nullptr, messaging::make_error(code, std::move(message)));
}

/// Sends what the message handled produced: one burst per lane and asker, one burst of
/// refusals per asker.
void flush(router_pointer self) {
  auto& state = self->state;
  for (auto& delivery : state.to_lanes) {
    auto* lane = lane_by_id(state, delivery.lane_id);
    if (lane && lane->actor) {
      pass_on(self, lane->actor, delivery);
    } else if (lane) {  // still starting
      lane->pending.push_back(std::move(delivery));
    } else {
      // Not reached today (a lane holding requests is not erased), and kept that way by this:
      // requests no lane takes are answered, never dropped.
      const std::string why = "serving lane gone before the request reached it";
      const auto refused = refuse_delivery(self, delivery, why) + refuse_promised(state, delivery.lane_id, why);
      state.in_flight -= std::min(state.in_flight, refused);
    }
  }
  state.to_lanes.clear();
  state.to_askers.flush(self);
}

/// The burst for `lane` from `asker` that the current message fills.
messaging::predict_burst& delivery_for(router_state& state, lane_state& lane, const caf::strong_actor_ptr& asker) {
  for (auto& delivery : state.to_lanes) {
    if (delivery.lane_id == lane.id && delivery.asker == asker) return delivery.burst;
  }
  state.to_lanes.push_back({lane.id, asker, {}});
  return state.to_lanes.back().burst;
}

/// Counts `requests` handed to `lane` until their outcomes come back (mirrors are not in flight).
void count_handed(router_state& state, lane_state& lane, std::uint64_t requests) {
  lane.held += requests;
  if (!lane.mirror) state.in_flight += requests;
}

/// Queues a request for a lane (sent at the flush); its lane answers `asker` by `ticket`.
void hand_to_lane(router_state& state, lane_state& lane, const caf::strong_actor_ptr& asker, std::uint64_t ticket,
                  messaging::predict_request request) {
  delivery_for(state, lane, asker).requests.push_back({ticket, std::move(request)});
  count_handed(state, lane, 1);
}

/// Sends a request to a lane; its answer (or error) goes to `target`.
void forward(router_pointer self, const std::string& role, messaging::predict_request request, answer_target target, double probability) {
  auto& state = self->state;
  auto* lane = find_lane(state, role);
  if (!lane) {
    refuse(state, target, request.request_id, errc::not_ready, "request " + std::to_string(request.request_id) + ": lane " + role + " is gone");
    return;
  }
  lane->last_used = ++state.uses;
  if (state.policy.type == version_policy::kind::bandit) {
    // Exp3 weighs the reward by the probability the arm was chosen with.
    auto& remembered = remember(state, request.request_id);
    remembered.probability = probability;
  }
  if (target.promise) {
    const std::uint64_t ticket = ++state.next_ticket;
    state.promised.emplace(ticket, promised_request{std::move(*target.promise), request.request_id, lane->id});
    hand_to_lane(state, *lane, caf::actor_cast<caf::strong_actor_ptr>(self), ticket, std::move(request));
    return;
  }
  hand_to_lane(state, *lane, target.reply_to, target.ticket, std::move(request));
}

void mirror_to_shadow(router_pointer self, const messaging::predict_request& request) {
  auto& state = self->state;
  auto* shadow = find_lane(state, "shadow");
  if (!shadow || !shadow->snapshot) return;
  hand_to_lane(state, *shadow, nullptr, 0, request);
}

/// Answers from a lane to requests asked of the router with a promise.
void on_promised_answers(router_pointer self, messaging::predict_answers& ready) {
  auto& state = self->state;
  for (auto& answer : ready.answers) {
    auto found = state.promised.find(answer.ticket);
    if (found == state.promised.end()) continue;  // refused already: its lane was replaced
    if (answer.ok()) found->second.promise.deliver(std::move(answer.reply));
    else found->second.promise.deliver(std::move(answer.failure));
    state.promised.erase(found);
  }
}

/// How a lane's requests ended (their answers went to their askers): the policy's
/// bookkeeping — in-flight counts, latency, live accuracy's memory, shadow agreement.
void on_lane_outcomes(router_pointer self, messaging::lane_outcomes& reported) {
  auto& state = self->state;
  const auto sender = self->current_sender();
  lane_state* lane = nullptr;
  std::string role;
  for (auto& [key, candidate] : state.lanes) {
    if (caf::actor_cast<caf::strong_actor_ptr>(candidate.actor) == sender) {
      lane = &candidate;
      role = key;
      break;
    }
  }
  if (!lane) return;  // a lane the router no longer routes to: it counted nothing in flight
  for (const auto& outcome : reported.outcomes) {
    if (lane->held > 0) --lane->held;
    const double latency = double(outcome.latency_us);
    if (lane->mirror) {
      if (!outcome.ok()) {
        ++state.counts.shadow_errors;
        continue;
      }
      ++state.counts.shadow_answers;
      lane->latency.record(latency);
      if (outcome.top_class >= 0) {
        auto& remembered = remember(state, outcome.request_id);
        remembered.shadow_predicted = outcome.top_class;
        compare_shadow(state, remembered);
      }
      continue;
    }
    if (state.in_flight > 0) --state.in_flight;
    if (!outcome.ok()) {
      answered_counter(state, to_string(errc(outcome.error_code))).add();
      continue;
    }
    lane->latency.record(latency);
    state.metrics.latency->observe(latency * 1e-6);
    state.metrics.answered->add();
    if (outcome.top_class >= 0) {
      auto& remembered = remember(state, outcome.request_id);
      remembered.role = role;
      remembered.version = outcome.model_version;
      remembered.predicted = outcome.top_class;
      compare_shadow(state, remembered);
    }
  }
  if (lane->closing && lane->held == 0) close_lane(self, role);
  finish_drain_if_done(self);
}

/// Exp3's probabilities over the loaded arms, by role.
std::vector<std::pair<std::string, double>> bandit_probabilities(router_state& state) {
  std::vector<std::pair<std::string, double>> arms;
  double total = 0;
  for (const auto& [version, weight] : state.bandit_weights) {
    auto* lane = find_lane(state, arm_role(version));
    if (!lane || !lane->snapshot) continue;
    arms.emplace_back(arm_role(version), weight);
    total += weight;
  }
  const double gamma = state.options.bandit_exploration;
  for (auto& [role, weight] : arms) weight = (1 - gamma) * weight / total + gamma / double(arms.size());
  return arms;
}

/// Decides which lane answers a request (the version policy), and sends it there.
void route(router_pointer self, messaging::predict_request& request, answer_target target) {
  auto& state = self->state;
  // Made only for a refusal: a string per request would cost an allocation on every one.
  const auto which = [&] { return "request " + std::to_string(request.request_id); };
  if (state.draining) return refuse(state, target, request.request_id, errc::not_ready, which() + ": serving is draining and admits no requests");
  if (request.model_version != 0) {
    for (auto& [role, lane] : state.lanes) {
      // Not the shadow lane: what it answers goes to nobody.
      if (!lane.closing && !lane.mirror && lane.version() == request.model_version) {
        return forward(self, role, std::move(request), std::move(target), 1.0);
      }
    }
    // Not in a lane: load it into a lane of its own (and evict the least recently used one).
    const std::uint64_t version = request.model_version;
    auto& waiting = state.loading[version];
    waiting.push_back({std::move(request), std::move(target)});
    if (waiting.size() > 1) return;
    fetch_version(
        self, version,
        [self, version](const messaging::model_snapshot& snapshot) {
          auto& state = self->state;
          std::vector<std::string> pinned;
          for (auto& [role, lane] : state.lanes) {
            if (role.front() == 'v' && !state.bandit_weights.count(lane.version()) && !lane.closing) pinned.push_back(role);
          }
          if (pinned.size() >= state.options.pinned_lanes_max) {
            auto oldest = std::min_element(pinned.begin(), pinned.end(), [&](const std::string& a, const std::string& b) {
              return state.lanes[a].last_used < state.lanes[b].last_used;
            });
            close_lane(self, *oldest);
          }
          auto& lane = open_lane(self, arm_role(version));
          load_lane(self, lane, snapshot);
          auto waiting = std::move(state.loading[version]);
          state.loading.erase(version);
          for (auto& entry : waiting) {
            forward(self, lane.role, std::move(entry.request), std::move(entry.target), 1.0);
          }
          flush(self);
        },
        [self, version](const caf::error& failure) {
          auto& state = self->state;
          auto waiting = std::move(state.loading[version]);
          state.loading.erase(version);
          const auto code = messaging::rml_code(failure).value_or(errc::not_found);
          for (auto& entry : waiting) {
            refuse(state, entry.target, entry.request.request_id, code,
                   "request " + std::to_string(entry.request.request_id) + ": model version " + std::to_string(version) +
                       " cannot be served: " + messaging::describe(failure));
          }
          flush(self);
        });
    return;
  }
  std::string role = "main";
  double probability = 1.0;
  switch (state.policy.type) {
    case version_policy::kind::canary:
      if (auto* candidate = find_lane(state, "canary");
          candidate && candidate->snapshot && state.random->uniform01() < state.policy.canary_fraction) {
        role = "canary";
      }
      break;
    case version_policy::kind::shadow:
      mirror_to_shadow(self, request);
      break;
    case version_policy::kind::bandit: {
      auto arms = bandit_probabilities(state);
      if (arms.empty()) return refuse(state, target, request.request_id, errc::not_ready, which() + ": no bandit arm is loaded yet");
      double draw = state.random->uniform01();
      role = arms.back().first;
      probability = arms.back().second;
      for (const auto& [arm, p] : arms) {
        if (draw < p) {
          role = arm;
          probability = p;
          break;
        }
        draw -= p;
      }
      break;
    }
    default:
      break;
  }
  if (role == "main") sample_input(self, request);
  forward(self, role, std::move(request), std::move(target), probability);
}

/// How long a request without a deadline from another node is remembered as seen: its copy
/// arriving later than this would be admitted again (BASP does not hold one that long).
constexpr std::int64_t remembered_without_deadline_us = 60'000'000;

/// A burst from another node's ledger (burst_origin): its deadlines, on the sender's clock,
/// re-based onto this one's (the time in flight, well under a millisecond on a LAN, is given
/// to the request), then each request admitted at most once. A copy already admitted is
/// dropped — its first admission answers it; one past its deadline is answered so; one from
/// a stale sender (an older incarnation of its node, or an epoch below the highest seen) is
/// refused `unauthorized` without being acted on (its ledger sends it again under the
/// node's newer view, or its client hears why). What is admitted stays in `burst`.
void admit_from_another_node(router_pointer self, messaging::predict_burst& burst, const caf::strong_actor_ptr& asker) {
  auto& state = self->state;
  const messaging::burst_origin origin = std::move(burst.origin);
  burst.origin = {};
  const std::int64_t now = messaging::clock_us(self);
  const std::int64_t offset = now - origin.sent_at_us;
  std::size_t kept = 0;
  messaging::request_envelope envelope{origin.sender, origin.incarnation, 0, 0, origin.epoch};  // the sender once per burst
  for (auto& item : burst.requests) {
    auto& request = item.request;
    if (request.deadline_us > 0) request.deadline_us += offset;
    envelope.id = item.ticket;
    envelope.deadline_us = request.deadline_us > 0 ? request.deadline_us : now + remembered_without_deadline_us;
    const auto verdict = state.from_other_nodes.admit(envelope, now);
    answer_target target{std::nullopt, asker, item.ticket};
    switch (verdict) {
      case messaging::delivery_verdict::admit:
        if (&burst.requests[kept] != &item) burst.requests[kept] = std::move(item);
        ++kept;
        break;
      case messaging::delivery_verdict::duplicate:
        state.metrics.duplicates->add();
        break;
      case messaging::delivery_verdict::expired:
        refuse(state, target, request.request_id, errc::deadline_exceeded,
               "request " + std::to_string(request.request_id) + " from " + origin.sender + " arrived past its deadline");
        break;
      case messaging::delivery_verdict::older_incarnation:
        refuse(state, target, request.request_id, errc::unauthorized,
               "request " + std::to_string(request.request_id) + " from " + origin.sender + " of incarnation " +
                   std::to_string(origin.incarnation) + ": a newer incarnation of that node has sent requests since");
        break;
      case messaging::delivery_verdict::stale_epoch:
      case messaging::delivery_verdict::no_deadline:  // not reached: every envelope gets one above
        refuse(state, target, request.request_id, errc::unauthorized,
               "request " + std::to_string(request.request_id) + " from " + origin.sender + " under controller epoch " +
                   std::to_string(origin.epoch) + ": this node has seen epoch " + std::to_string(state.from_other_nodes.highest_epoch()));
        break;
    }
  }
  burst.requests.resize(kept);
}

/// Under latest and pinned every request of a burst that names no version goes to the main
/// lane: the burst is passed on whole, decided once. Returns false when a request needs its
/// own decision (another policy, a version asked by number, draining, no main lane yet).
bool route_whole_burst(router_pointer self, messaging::predict_burst& burst, const caf::strong_actor_ptr& asker) {
  auto& state = self->state;
  if (state.draining || !asker) return false;
  if (state.policy.type != version_policy::kind::latest && state.policy.type != version_policy::kind::pinned) return false;
  auto* main = find_lane(state, "main");
  if (!main) return false;
  for (const auto& item : burst.requests) {
    if (item.request.model_version != 0) return false;
  }
  main->last_used = ++state.uses;
  count_handed(state, *main, burst.requests.size());
  for (const auto& item : burst.requests) sample_input(self, item.request);
  auto& delivery = delivery_for(state, *main, asker);
  if (delivery.requests.empty()) {
    delivery = std::move(burst);
  } else {
    delivery.requests.insert(delivery.requests.end(), std::make_move_iterator(burst.requests.begin()),
                             std::make_move_iterator(burst.requests.end()));
  }
  return true;
}

/// The canary decision, once both versions have enough labelled answers.
void decide_canary(router_pointer self) {
  auto& state = self->state;
  auto* stable = find_lane(state, "main");
  auto* candidate = find_lane(state, "canary");
  if (!stable || !candidate || !candidate->snapshot) return;
  const auto& settings = state.options.canary;
  if (candidate->feedback < settings.feedback_min || stable->feedback < settings.feedback_min) return;
  const double stable_p99 = stable->latency.quantile(0.99), candidate_p99 = candidate->latency.quantile(0.99);
  const bool accurate = candidate->accuracy() >= stable->accuracy() - settings.accuracy_tolerance;
  const bool fast = candidate_p99 <= stable_p99 * settings.latency_ratio_max + double(settings.latency_slack_us);
  char detail[256];
  std::snprintf(detail, sizeof(detail), "candidate=%llu accuracy=%.4f p99_us=%.0f stable=%llu accuracy=%.4f p99_us=%.0f",
                (unsigned long long)candidate->version(), candidate->accuracy(), candidate_p99, (unsigned long long)stable->version(),
                stable->accuracy(), stable_p99);
  if (accurate && fast) {
    ++state.counts.canary_promoted;
    state.metrics.promoted->add();
    trace(self, "canary_promoted", detail);
    load_lane(self, *stable, *candidate->snapshot);
  } else {
    ++state.counts.canary_rolled_back;
    state.metrics.rolled_back->add();
    trace(self, "canary_rolled_back", std::string(detail) + (accurate ? " (latency)" : " (accuracy)"));
  }
  stable->reset_evaluation();
  if (state.next_candidate) {
    candidate->reset_evaluation();
    load_lane(self, *candidate, *state.next_candidate);
    trace(self, "canary_started", "candidate=" + std::to_string(state.next_candidate->version) + " stable=" + std::to_string(stable->version()));
    state.next_candidate.reset();
  } else {
    close_lane(self, "canary");
  }
}

/// Error bits and rows sent to monitoring per message.
constexpr std::size_t drift_outcomes_per_message = 64;
constexpr std::size_t drift_rows_per_message = 16;

caf::actor monitor_of(router_pointer self) { return self->system().registry().get<caf::actor>(messaging::names::monitor); }

void send_sampled_inputs(router_pointer self) {
  auto& state = self->state;
  auto& sampled = state.sampled_inputs;
  if (sampled.values.values.empty()) return;
  auto monitor = monitor_of(self);
  auto* main = find_lane(state, "main");
  if (monitor && main && main->snapshot && main->version() == sampled.model_version) {
    // The reference once per version and monitor instance (a restarted monitor needs it again).
    if (state.reference_sent_to != monitor.address() || state.reference_sent_version != sampled.model_version) {
      sampled.reference = main->snapshot->reference;
      sampled.feature_pipeline = main->snapshot->feature_pipeline;
      sampled.feature_state = main->snapshot->feature_state;
      state.reference_sent_to = monitor.address();
      state.reference_sent_version = sampled.model_version;
    }
    caf::anon_send(monitor, std::move(sampled));
  }
  sampled = {};
}

/// Keeps the first row of one request in `drift_sample_every` to the main lane.
void sample_input(router_pointer self, const messaging::predict_request& request) {
  auto& state = self->state;
  if (state.options.drift_sample_every == 0 || ++state.requests_since_sample < state.options.drift_sample_every) return;
  state.requests_since_sample = 0;
  auto* main = find_lane(state, "main");
  if (!main || !main->snapshot || main->snapshot->reference.empty() || request.rows == 0 || request.features.size() % request.rows != 0) return;
  const std::size_t columns = request.features.size() / request.rows;
  auto& sampled = state.sampled_inputs;
  if (!sampled.values.values.empty() && (sampled.model_version != main->version() || sampled.columns != columns)) send_sampled_inputs(self);
  sampled.model_version = main->version();
  sampled.columns = std::uint32_t(columns);
  const std::size_t at = sampled.values.values.size();
  sampled.values.values.resize(at + columns);
  std::memcpy(sampled.values.values.data() + at, request.features.bytes().data(), columns * sizeof(float));
  if (sampled.values.values.size() >= drift_rows_per_message * columns) send_sampled_inputs(self);
}

void report_outcome(router_pointer self, std::uint64_t version, bool correct) {
  auto& outcomes = self->state.feedback_outcomes;
  if (!outcomes.errors.empty() && outcomes.model_version != version) {
    if (auto monitor = monitor_of(self)) caf::anon_send(monitor, std::move(outcomes));
    outcomes = {};
  }
  outcomes.stream = "feedback";
  outcomes.model_version = version;
  outcomes.errors.push_back(correct ? 0 : 1);
  if (outcomes.errors.size() < drift_outcomes_per_message) return;
  if (auto monitor = monitor_of(self)) caf::anon_send(monitor, std::move(outcomes));
  outcomes = {};
}

bool on_feedback(router_pointer self, const messaging::prediction_feedback& feedback) {
  auto& state = self->state;
  auto found = state.memory.find(feedback.request_id);
  if (found == state.memory.end() || found->second.predicted < 0) {
    ++state.counts.feedback_unmatched;
    return false;
  }
  auto prediction = found->second;
  state.memory.erase(found);  // one label per prediction
  ++state.counts.feedback;
  const bool correct = prediction.predicted == feedback.label;
  if (prediction.role == "main") report_outcome(self, prediction.version, correct);
  if (auto* lane = find_lane(state, prediction.role); lane && lane->version() == prediction.version) {
    ++lane->feedback;
    lane->correct += correct ? 1 : 0;
    lane->accuracy_gauge->set(lane->accuracy());
  }
  if (prediction.shadow_predicted >= 0) {
    if (auto* shadow = find_lane(state, "shadow")) {
      ++shadow->feedback;
      shadow->correct += prediction.shadow_predicted == feedback.label ? 1 : 0;
      shadow->accuracy_gauge->set(shadow->accuracy());
    }
  }
  switch (state.policy.type) {
    case version_policy::kind::canary:
      decide_canary(self);
      break;
    case version_policy::kind::bandit: {
      // Exp3: an importance-weighted reward estimate for the arm that answered.
      auto weight = state.bandit_weights.find(prediction.version);
      if (weight == state.bandit_weights.end()) break;
      const double arms = double(state.bandit_weights.size());
      const double estimate = (correct ? 1.0 : 0.0) / prediction.probability;
      weight->second *= std::exp(state.options.bandit_exploration * estimate / arms);
      double largest = 0;
      for (auto& [version, w] : state.bandit_weights) largest = std::max(largest, w);
      if (largest > 1e100) {
        for (auto& [version, w] : state.bandit_weights) w /= largest;
      }
      break;
    }
    default:
      break;
  }
  return true;
}

/// The lanes' supervisor restarted a lane that went down. A lane answers what it holds when
/// it exits (batcher.hpp); what a killed one held, and anything sent to it after it died
/// (which CAF drops), its askers fail as they watch it (burst_routed), and requests asked of
/// the router with a promise get the error here: one answer each. The new instance gets the
/// lane's version and the requests from now on.
void on_lane_replaced(router_pointer self, const messaging::child_replaced& replaced) {
  auto& state = self->state;
  lane_state* lane = nullptr;
  for (auto& [role, candidate] : state.lanes) {
    if (candidate.actor && candidate.actor.address() == replaced.previous) lane = &candidate;
  }
  if (!lane) {  // stopped by the router meanwhile
    caf::anon_send(state.lanes_supervisor, supervision::terminate_child_atom::value, replaced.current);
    return;
  }
  refuse_lane_requests(self, *lane, lane->closing ? " stopped before answering" : " crashed before answering");
  lane->actor = caf::actor_cast<batcher_actor>(replaced.current);
  ++state.counts.lane_restarts;
  state.metrics.lane_restarts->add();
  trace(self, "lane_restarted", "lane=" + lane->role + " restarts=" + std::to_string(replaced.restart_count));
  if (lane->closing) {
    close_lane(self, lane->role);
  } else {
    hand_over_to_started(self, *lane);
  }
  finish_drain_if_done(self);
  flush(self);
}

/// The lanes' supervisor exited: lanes crashed beyond its intensity (or it was killed).
/// Everything held gets an error and the router exits for its own supervisor.
void on_lanes_supervisor_down(router_pointer self, const caf::down_msg& down) {
  auto& state = self->state;
  trace(self, "restart_intensity_exceeded", "lanes crash too often: " + caf::to_string(down.reason));
  refuse_promised(state, 0, "serving lanes crash too often");
  for (auto& [role, lane] : state.lanes) refuse_lane_requests(self, lane, " stopped: lanes crash too often");
  for (auto& [version, waiting] : state.loading) {
    for (auto& entry : waiting) refuse(state, entry.target, entry.request.request_id, errc::not_ready, "serving lanes crash too often");
  }
  state.loading.clear();
  state.in_flight = 0;
  flush(self);
  self->quit(messaging::make_error(errc::restart_intensity_exceeded,
                                   "serving " + state.options.model + ": lanes crash too often (more than " + std::to_string(state.options.lane_restarts_max) +
                                       " restarts in " + std::to_string(state.options.lane_restart_window.count()) + " ms)"));
}

messaging::serving_info info_of(router_state& state) {
  messaging::serving_info info;
  info.model = state.options.model;
  info.draining = state.draining;
  info.features = state.options.lane.features;
  info.policy = to_string(state.policy);
  info.batching = state.options.lane.settings;
  for (auto& [role, lane] : state.lanes) {
    if (!lane.snapshot || lane.closing) continue;
    info.loaded_versions.push_back(lane.version());
    if (info.classes == 0) {
      auto classes = lane.snapshot->metrics.find("classes");
      if (classes != lane.snapshot->metrics.end()) info.classes = std::uint32_t(classes->second);
    }
  }
  std::sort(info.loaded_versions.begin(), info.loaded_versions.end());
  info.loaded_versions.erase(std::unique(info.loaded_versions.begin(), info.loaded_versions.end()), info.loaded_versions.end());
  if (auto* main = find_lane(state, "main")) info.serving_version = main->version();
  const bool loaded = state.policy.type == version_policy::kind::bandit ? !bandit_probabilities(state).empty() : info.serving_version != 0;
  info.ready = loaded && !state.draining;
  return info;
}

router_actor::behavior_type router(router_pointer self, router_options options) {
  auto& state = self->state;
  options.lane.telemetry = options.telemetry;  // the lanes report where the router does
  state.options = options;
  if (options.follow_model_pointer && options.known_model_pointer) state.model_pointer = options.known_model_pointer->load();
  state.random = std::make_unique<random_source>(options.seed);
  auto& registry = *options.telemetry.metrics;
  const messaging::metrics::label_set model{{"model", options.model}};
  state.metrics.latency = &registry.get_histogram("rml_request_latency_seconds", "Time from admission by serving to its answer", model);
  state.metrics.answered = &answered_counter(state, "ok");
  state.metrics.draining = &registry.get_gauge("rml_draining", "1 while serving drains (admits no requests)", model);
  state.metrics.promoted = &registry.get_counter("rml_canary_decisions_total", "Canary decisions", {{"model", options.model}, {"decision", "promoted"}});
  state.metrics.rolled_back = &registry.get_counter("rml_canary_decisions_total", "Canary decisions", {{"model", options.model}, {"decision", "rolled_back"}});
  state.metrics.agree = &registry.get_counter("rml_shadow_comparisons_total", "Shadow answers compared with the served ones",
                                              {{"model", options.model}, {"result", "agree"}});
  state.metrics.disagree = &registry.get_counter("rml_shadow_comparisons_total", "Shadow answers compared with the served ones",
                                                 {{"model", options.model}, {"result", "disagree"}});
  state.metrics.lane_restarts = &registry.get_counter("rml_lane_restarts_total", "Serving lanes restarted after a crash", model);
  state.metrics.duplicates = &registry.get_counter("rml_requests_duplicate_dropped_total",
                                                   "Copies of requests from other nodes dropped, the first admitted", model);
  state.metrics.draining->set(0);
  supervision::dynamic_supervisor_spec lanes;
  lanes.name = "lanes/" + options.model;
  lanes.start = [lane = options.lane, model = options.model, router = self->address()](caf::actor_system& system, const caf::message& args) {
    RML_ASSERT(args.match_elements<std::string>(), "a lane is started with its role");
    auto options = lane;
    options.model = model;
    options.report_to = router;
    options.lane = args.get_as<std::string>(0);
    return caf::actor_cast<caf::actor>(spawn_batcher(system, options));
  };
  lanes.intensity = int(options.lane_restarts_max);
  lanes.period = options.lane_restart_window;
  lanes.report_to = caf::actor_cast<caf::actor>(self);
  state.lanes_supervisor = supervision::spawn_dynamic_supervisor(self->system(), std::move(lanes));
  self->monitor(state.lanes_supervisor);
  // The lanes live and die with their router.
  self->attach_functor([lanes = state.lanes_supervisor](const caf::error&) { caf::anon_send_exit(lanes, caf::exit_reason::user_shutdown); });
  self->set_down_handler([self](caf::down_msg& down) {
    if (down.source == self->state.lanes_supervisor.address()) on_lanes_supervisor_down(self, down);
  });
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (view.content().match_elements<messaging::child_replaced>()) {
      on_lane_replaced(self, view.content().get_as<messaging::child_replaced>(0));
      return caf::message{};
    }
    if (view.content().match_elements<messaging::child_restarted>()) return caf::message{};  // on_lane_replaced traces it
    if (!view.content().match_elements<drain_timeout_atom>()) return caf::sec::unexpected_message;
    auto& state = self->state;
    if (state.drain_promise) {
      trace(self, "drain_timed_out", std::to_string(state.in_flight) + " requests unanswered");
      state.drain_promise->deliver(state.in_flight);
      state.drain_promise.reset();
    }
    return caf::message{};
  });
  auto policy = parse_version_policy(options.policy);
  RML_ASSERT(bool(policy));  // validate() checked it
  apply_policy(self, *policy);
  return {
      [self](messaging::predict_request& request) {
        auto promise = self->make_response_promise<messaging::predict_reply>();
        route(self, request, answer_target{promise, nullptr, 0});
        flush(self);
        return promise;
      },
      [self](messaging::predict_burst& burst) {
        const auto asker = self->current_sender();
        if (!burst.origin.sender.empty()) admit_from_another_node(self, burst, asker);
        if (!burst.requests.empty() && !route_whole_burst(self, burst, asker)) {
          for (auto& item : burst.requests) route(self, item.request, answer_target{std::nullopt, asker, item.ticket});
        }
        flush(self);
      },
      [self](messaging::predict_answers& answers) { on_promised_answers(self, answers); },
      [self](messaging::lane_outcomes& outcomes) {
        on_lane_outcomes(self, outcomes);
        flush(self);
      },
      [self](messaging::model_snapshot& snapshot) {
        on_published(self, snapshot);
        flush(self);
      },
      [self](messaging::rollback_atom, messaging::model_snapshot& snapshot) {
        on_published(self, snapshot, true);
        flush(self);
      },
      [self](messaging::model_pointer_atom, std::uint64_t version) {
        on_model_pointer(self, version);
        flush(self);
      },
      [self](messaging::status_atom) {
        auto& state = self->state;
        auto status = state.counts;
        status.in_flight = state.in_flight;
        status.draining = state.draining;
        status.lanes = std::uint32_t(state.lanes.size());
        const auto arms = bandit_probabilities(state);
        for (auto& [role, lane] : state.lanes) {
          if (lane.closing) continue;
          double probability = 0;
          for (const auto& [arm, p] : arms) probability = arm == role ? p : probability;
          status.lane_evaluations.push_back({role, lane.version(), lane.feedback, lane.accuracy(), probability});
        }
        return status;
      },
      [self](messaging::batching_settings& settings) {
        self->state.options.lane.settings = settings;
        for (auto& [role, lane] : self->state.lanes) {
          if (lane.actor) self->send(lane.actor, settings);
        }
      },
      [self](messaging::prediction_feedback& feedback) { return on_feedback(self, feedback); },
      [self](messaging::policy_atom, std::string& spec) -> caf::result<std::string> {
        auto policy = parse_version_policy(spec);
        if (!policy) return messaging::make_error(policy.error().code(), policy.error().message());
        apply_policy(self, *policy);
        return to_string(*policy);
      },
      [self](messaging::info_atom) { return info_of(self->state); },
      [self](messaging::drain_atom, std::int64_t timeout_ms) -> caf::result<std::uint64_t> {
        auto& state = self->state;
        if (!state.draining) trace(self, "drain_started", std::to_string(state.in_flight) + " requests in flight");
        state.draining = true;
        state.metrics.draining->set(1);
        if (state.in_flight == 0) return std::uint64_t{0};
        auto promise = self->make_response_promise<std::uint64_t>();
        state.drain_promise = promise;
        caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), std::chrono::milliseconds(timeout_ms), drain_timeout_atom::value);
        return promise;
      },
  };
}
}  // namespace

router_actor spawn_router(caf::actor_system& system, const router_options& options) {
  return system.spawn(router, options);
}

}  // namespace rml::actors
