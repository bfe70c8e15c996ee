#include "messaging/zmq_endpoint.hpp"

#include <caf/all.hpp>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include <deque>
#include <unordered_map>
#include <mutex>
#include <thread>

#include "compute/assert.hpp"
#include "messaging/actor_bridge.hpp"
#include "messaging/atoms.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/request_ledger.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {
namespace {
/// The frames that route a reply back: the client's identity and, for REQ clients, the
/// empty delimiter.
struct route {
  std::vector<std::string> envelope;
};

/// The message's bytes where ZeroMQ holds them: decoded from there, never copied first.
std::span<const std::byte> bytes_of(const zmq::message_t& message) { return {static_cast<const std::byte*>(message.data()), message.size()}; }

/// The largest frame the socket reads: twice the limit, and at least 1 MiB above it.
std::size_t hard_cap_bytes(std::size_t frame_bytes_max) { return std::max(2 * frame_bytes_max, frame_bytes_max + (1u << 20)); }

std::vector<std::byte> error_frame_of(const caf::error& failure, std::uint64_t id) {
  if (failure == caf::sec::request_timeout) return wire::encode_error(errc::deadline_exceeded, id, "request timed out");
  return wire::encode_error(client_code(failure), id, describe(failure));
}
}  // namespace

struct zmq_endpoint::implementation : ledger_listener<route> {
  caf::actor_system& system;
  zmq_endpoint_options options;
  zmq::context_t context{1};
  zmq::socket_t router{context, zmq::socket_type::router};
  std::string address;
  endpoint_counters counters;
  std::atomic<std::size_t> in_flight{0};
  int wakeup = -1;  // eventfd: replies queued, or stop
  std::atomic<bool> stopping{false};
  std::mutex replies_mutex;
  /// Answers for the socket thread to send, each ending a request it admitted.
  struct outgoing {
    route to;
    std::vector<std::byte> frame;
  };
  std::deque<outgoing> replies;
  std::thread thread;
  /// The predict requests' ledger (messaging/request_ledger.hpp): it holds them at serving,
  /// keeps their deadlines and hands their answers back here with their routes.
  caf::actor ledger;
  /// Per client (its routing id; socket thread only): requests admitted whose answers are
  /// not yet handed to ZeroMQ, and answers ZeroMQ could not take yet because the client's
  /// pipe was full (in order; `admitted` says whether the answer ends an admitted request).
  struct blocked_answer {
    route to;
    std::vector<std::byte> frame;
    bool admitted = false;
  };
  struct client_state {
    std::size_t in_flight = 0;
    std::deque<blocked_answer> blocked;
  };
  std::unordered_map<std::string, client_state> clients;
  std::size_t clients_blocked = 0;  // clients with a non-empty queue
  /// Answers queued for one client, refusals included, before further refusals to it are
  /// dropped: 16 times its in-flight bound (about 2 MB of error frames at the default).
  std::size_t refusals_queued_max() const { return 16 * options.client_in_flight_max; }

  /// The same counts for Prometheus, labelled by socket (predict or ingest).
  struct exported_counters {
    metrics::counter *malformed, *overloaded, *undeliverable, *refusals_dropped;
  } exported;

  implementation(caf::actor_system& actor_system, const zmq_endpoint_options& settings) : system(actor_system), options(settings) {
    auto& registry = *options.telemetry.metrics;
    const metrics::label_set socket{{"socket", options.role == endpoint_role::predict ? "predict" : "ingest"}};
    auto refused = [&](const char* reason) {
      auto labels = socket;
      labels.emplace_back("reason", reason);
      return &registry.get_counter("rml_zmq_refused_total", "ZeroMQ frames refused at once, by reason", labels);
    };
    exported = {refused("malformed"), refused("overloaded"),
                &registry.get_counter("rml_zmq_answers_undeliverable_total", "Answers whose ZeroMQ client had disconnected", socket),
                &registry.get_counter("rml_zmq_refusals_dropped_total",
                                      "Refusals not sent to a client that kept sending without reading", socket)};
  }

  /// Called from actor threads: queue replies and wake the socket thread, once per burst.
  void post(outgoing reply) {
    {
      std::lock_guard<std::mutex> lock(replies_mutex);
      replies.push_back(std::move(reply));
    }
    wake();
  }

  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wakeup, &one, sizeof(one));
  }

  /// The ledger's answers (on its actor thread): encoded here, sent by the socket thread.
  void answered(std::vector<routed_answer<route>>& answers) override {
    std::vector<outgoing> ready;
    ready.reserve(answers.size());
    std::size_t failures = 0;
    for (auto& [to, answer] : answers) {
      if (answer.ok()) {
        ready.push_back({std::move(to), wire::encode_predict_reply(answer.reply)});
      } else {
        ++failures;
        ready.push_back({std::move(to), error_frame_of(answer.failure, answer.request_id)});
      }
    }
    counters.answered += answers.size() - failures;
    counters.failed += failures;
    {
      std::lock_guard<std::mutex> lock(replies_mutex);
      for (auto& reply : ready) replies.push_back(std::move(reply));
    }
    wake();
    in_flight -= answers.size();  // last: the endpoint may be destroyed once nothing is in flight
  }

  /// Socket thread: sends queued answers to whoever asked.
  void send_replies() {
    std::deque<outgoing> ready;
    {
      std::lock_guard<std::mutex> lock(replies_mutex);
      ready.swap(replies);
    }
    for (auto& reply : ready) deliver(reply.to, std::move(reply.frame), true);
  }

  enum class send_outcome { sent, blocked, gone };

  /// Hands a frame to ZeroMQ without blocking. With ZMQ_ROUTER_MANDATORY a full pipe is
  /// EAGAIN (blocked) and an unknown client EHOSTUNREACH (gone); the first part decides,
  /// the rest of the message always follows it.
  send_outcome try_send(const route& to, const std::vector<std::byte>& frame) {
    try {
      for (const std::string& part : to.envelope) {
        if (!router.send(zmq::buffer(part), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return send_outcome::blocked;
      }
      if (!router.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait)) return send_outcome::blocked;
      return send_outcome::sent;
    } catch (const zmq::error_t&) {
      return send_outcome::gone;
    }
  }

  /// Sends an answer to its client, or queues it behind the client's earlier blocked ones.
  /// `admitted`: the answer ends a request admitted into the client's in-flight count.
  void deliver(const route& to, std::vector<std::byte> frame, bool admitted) {
    auto client = clients.find(to.envelope.front());
    if (client == clients.end()) client = clients.emplace(to.envelope.front(), client_state{}).first;
    auto& state = client->second;
    if (state.blocked.empty()) {
      const auto outcome = try_send(to, frame);
      if (outcome != send_outcome::blocked) {
        settle(client, outcome, admitted);
        return;
      }
      ++clients_blocked;
    } else if (!admitted && state.blocked.size() >= refusals_queued_max()) {
      // A client that keeps sending without reading any answer: its refusals are not kept
      // without bound (its admitted requests' answers always are, at most its bound).
      counters.refusals_dropped++;
      exported.refusals_dropped->add();
      return;
    }
    state.blocked.push_back({to, std::move(frame), admitted});
  }

  /// Ends an answer's delivery (sent, or its client gone); forgets a client with nothing
  /// left. Returns whether it did.
  bool settle(std::unordered_map<std::string, client_state>::iterator client, send_outcome outcome, bool admitted) {
    if (outcome == send_outcome::gone) {
      counters.undeliverable++;
      exported.undeliverable->add();
    }
    auto& state = client->second;
    if (admitted) {
      RML_ASSERT(state.in_flight > 0, "an admitted answer ends a request counted in flight");
      --state.in_flight;
    }
    if (state.in_flight > 0 || !state.blocked.empty()) return false;
    clients.erase(client);
    return true;
  }

  /// Retries the queues of clients whose pipes were full, each in order.
  void flush_blocked() {
    for (auto client = clients.begin(); client != clients.end() && clients_blocked > 0;) {
      auto current = client++;
      auto& blocked = current->second.blocked;
      while (!blocked.empty()) {
        const auto outcome = try_send(blocked.front().to, blocked.front().frame);
        if (outcome == send_outcome::blocked) break;
        const bool admitted = blocked.front().admitted;
        blocked.pop_front();
        if (blocked.empty()) --clients_blocked;
        if (settle(current, outcome, admitted)) break;  // forgotten: `blocked` is gone with it
      }
    }
  }

  /// Requests of the current receive burst, handed to the ledger as one message.
  ledger_intake<route> burst;
  static constexpr std::size_t burst_requests_max = 512;

  void forward_predict(route to, wire::predict_frame decoded) {
    const auto timeout = decoded.timeout_ms > 0 ? std::chrono::milliseconds(decoded.timeout_ms) : options.default_timeout;
    decoded.request.deadline_us =
        std::chrono::duration_cast<std::chrono::microseconds>(system.clock().now().time_since_epoch() + timeout).count();
    burst.requests.push_back(std::move(decoded.request));
    burst.routes.push_back(std::move(to));
    if (burst.requests.size() >= burst_requests_max) send_burst();
  }

  void send_burst() {
    if (burst.requests.empty()) return;
    caf::anon_send(ledger, std::move(burst));
    burst = {};
    burst.requests.reserve(burst_reserved);
    burst.routes.reserve(burst_reserved);
  }
  /// What a new burst has room for before it grows: most bursts are smaller.
  static constexpr std::size_t burst_reserved = 32;

  void forward_feedback(route to, prediction_feedback feedback) {
    auto target = find_named(system, options.target);
    const std::uint64_t id = feedback.request_id;
    if (!target) return finish(std::move(to), wire::encode_error(errc::not_ready, id, "no serving actor running"), false);
    auto* self = this;
    ask_from_outside<bool>(
        system, target, options.default_timeout, feedback,
        [self, to, id](bool matched) { self->finish(to, wire::encode_feedback_ack(id, matched), true); },
        [self, to, id](caf::error& failure) { self->finish(to, error_frame_of(failure, id), false); });
  }

  void forward_ingest(route to, event_batch batch) {
    auto target = find_named(system, options.target);
    const std::uint64_t id = batch.batch_id;
    if (!target) return finish(std::move(to), wire::encode_error(errc::not_ready, id, "no ingest actor running"), false);
    auto* self = this;
    const auto timeout = options.default_timeout;
    ask_from_outside<event_acked>(
        system, target, timeout, std::move(batch), [self, to](event_acked& ack) { self->finish(to, wire::encode_ingest_ack(ack), true); },
        [self, to, id](caf::error& failure) { self->finish(to, error_frame_of(failure, id), false); });
  }

  void finish(route to, std::vector<std::byte> frame, bool answered) {
    (answered ? counters.answered : counters.failed)++;
    post({std::move(to), std::move(frame)});
    in_flight--;
  }

  void on_request(route to, zmq::message_t& message) {
    counters.frames++;
    // A predict request's features stay in the frame ZeroMQ received (a view kept alive by
    // shared ownership of the message): the lane's gather is their one copy. Moved before it
    // is read, as a small message keeps its bytes inside the message_t itself.
    std::shared_ptr<zmq::message_t> kept;
    if (options.role == endpoint_role::predict) kept = std::make_shared<zmq::message_t>(std::move(message));
    const std::span<const std::byte> frame = bytes_of(kept ? *kept : message);
    auto refuse = [&](const rml::error& failure) {
      counters.malformed++;
      exported.malformed->add();
      deliver(to, wire::encode_error(failure.code(), wire::peek_request_id(frame), failure.message()), false);
    };
    const auto kind = wire::peek_kind(frame);
    if (options.role == endpoint_role::predict && kind && *kind == wire::frame_kind::feedback) {
      auto decoded = wire::decode_feedback(frame);
      if (!decoded) return refuse(decoded.error());
      if (!admit(to, decoded->request_id)) return;
      return forward_feedback(std::move(to), decoded.value());
    }
    if (options.role == endpoint_role::predict) {
      // A copy of the owner: `frame` must stay valid here too, for a refusal's request id.
      auto decoded = wire::decode_predict_request(frame, options.limits, kept);
      if (!decoded) return refuse(decoded.error());
      if (decoded->features != options.features) {
        return refuse(rml::error(errc::shape_mismatch, "predict request " + std::to_string(decoded->request.request_id) + ": " +
                                                           std::to_string(decoded->features) + " features, the model takes " +
                                                           std::to_string(options.features)));
      }
      if (!admit(to, decoded->request.request_id)) return;
      forward_predict(std::move(to), std::move(decoded.value()));
    } else {
      auto decoded = wire::decode_ingest_request(frame, options.limits);
      if (!decoded) return refuse(decoded.error());
      if (decoded->events.front().features.values.size() != options.features) {
        return refuse(rml::error(errc::shape_mismatch, "ingest batch " + std::to_string(decoded->batch_id) + ": " +
                                                           std::to_string(decoded->events.front().features.values.size()) +
                                                           " features, expected " + std::to_string(options.features)));
      }
      if (!admit(to, decoded->batch_id)) return;
      forward_ingest(std::move(to), std::move(decoded.value()));
    }
  }

  /// Takes a place among the requests in flight, the endpoint's and the client's, or answers
  /// `overloaded` at once.
  bool admit(const route& to, std::uint64_t id) {
    auto client = clients.find(to.envelope.front());
    const std::size_t client_in_flight = client == clients.end() ? 0 : client->second.in_flight;
    if (client_in_flight >= options.client_in_flight_max) {
      counters.overloaded++;
      exported.overloaded->add();
      deliver(to, wire::encode_error(errc::overloaded, id, "request " + std::to_string(id) + ": this client has " +
                                                               std::to_string(client_in_flight) + " requests unanswered (the bound)"),
              false);
      return false;
    }
    if (in_flight.fetch_add(1) >= options.in_flight_max) {
      in_flight--;
      counters.overloaded++;
      exported.overloaded->add();
      deliver(to, wire::encode_error(errc::overloaded, id, "request " + std::to_string(id) + ": more than " +
                                                               std::to_string(options.in_flight_max) + " requests in flight"),
              false);
      return false;
    }
    if (client == clients.end()) client = clients.emplace(to.envelope.front(), client_state{}).first;
    ++client->second.in_flight;
    return true;
  }

  void run() {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wakeup, ZMQ_POLLIN, 0}};
    while (!stopping.load()) {
      // ROUTER has no per-client writability to wait for: while a client's pipe is full,
      // look again every millisecond; else sleep until a frame or an answer arrives.
      const auto timeout = std::chrono::milliseconds(clients_blocked > 0 ? 1 : -1);
      try {
        zmq::poll(items, 2, timeout);
      } catch (const zmq::error_t&) {
        return;
      }
      if (clients_blocked > 0) flush_blocked();
      if (items[1].revents & ZMQ_POLLIN) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto read = ::read(wakeup, &count, sizeof(count));
        send_replies();
      }
      if (items[0].revents & ZMQ_POLLIN) receive_all();
    }
    // Answers that arrived while stopping still go out (the socket lingers to send them).
    send_replies();
    flush_blocked();
  }

  /// The frames of the message being received (kept: no allocation per message).
  std::vector<zmq::message_t> parts;

  void receive_all() {
    while (true) {
      parts.clear();
      zmq::message_t part;
      if (!router.recv(part, zmq::recv_flags::dontwait)) return send_burst();
      parts.push_back(std::move(part));
      while (parts.back().more()) {
        zmq::message_t next;
        if (!router.recv(next, zmq::recv_flags::none)) break;
        parts.push_back(std::move(next));
      }
      if (parts.size() < 2) continue;  // a ROUTER always prefixes the identity
      route to;
      to.envelope.reserve(parts.size() - 1);
      for (std::size_t index = 0; index + 1 < parts.size(); ++index) to.envelope.push_back(parts[index].to_string());
      if (parts.back().size() > options.limits.frame_bytes_max) {
        counters.frames++;
        counters.malformed++;
        exported.malformed->add();
        const auto bytes = bytes_of(parts.back());
        const std::uint64_t id = wire::peek_request_id(bytes);
        deliver(to, wire::encode_error(errc::invalid_argument, id, "request " + std::to_string(id) + ": frame of " +
                                                                       std::to_string(bytes.size()) + " bytes exceeds the limit of " +
                                                                       std::to_string(options.limits.frame_bytes_max)),
                false);
        continue;
      }
      on_request(std::move(to), parts.back());
    }
  }
};

result<std::unique_ptr<zmq_endpoint>> zmq_endpoint::start(caf::actor_system& system, const zmq_endpoint_options& options) {
  auto self = std::make_unique<implementation>(system, options);
  try {
    self->router.set(zmq::sockopt::linger, 0);
    // Frames up to the hard cap reach rml and are answered (an error when over the limit);
    // libzmq drops a connection that sends more, before anything could read it.
    self->router.set(zmq::sockopt::maxmsgsize, std::int64_t(hard_cap_bytes(options.limits.frame_bytes_max)));
    self->router.set(zmq::sockopt::router_mandatory, 1);
    self->router.set(zmq::sockopt::sndhwm, int(std::max<std::size_t>(1000, 2 * options.client_in_flight_max)));
    self->router.bind(options.bind);
    self->address = self->router.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& failure) {
    return error(errc::io_error, options.bind + ": cannot bind: " + failure.what());
  }
  self->wakeup = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (self->wakeup < 0) return error(errc::io_error, "eventfd: cannot create");
  if (options.role == endpoint_role::predict) {
    ledger_options ledger;
    ledger.target = options.target;
    ledger.wait_for_target = options.wait_for_target;
    ledger.identity = options.identity;
    self->ledger = spawn_request_ledger<route>(system, self.get(), ledger);
  }
  self->thread = std::thread([raw = self.get()] { raw->run(); });
  return std::unique_ptr<zmq_endpoint>(new zmq_endpoint(std::move(self)));
}

zmq_endpoint::zmq_endpoint(std::unique_ptr<implementation> self) : self_(std::move(self)) {}

zmq_endpoint::~zmq_endpoint() {
  // Requests in flight are answered first (serving drains before the sockets close; a
  // request arriving meanwhile is refused by serving and that refusal is sent too).
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (self_->in_flight.load() > 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  self_->stopping = true;
  const std::uint64_t one = 1;
  [[maybe_unused]] auto written = ::write(self_->wakeup, &one, sizeof(one));
  if (self_->thread.joinable()) self_->thread.join();
  // Actors still answering requests would post into a destroyed endpoint: wait for them.
  while (self_->in_flight.load() > 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (self_->ledger) {
    // The ledger calls back into this endpoint: it must be gone before the endpoint is.
    caf::scoped_actor waiter{self_->system};
    waiter->monitor(self_->ledger);
    caf::anon_send_exit(self_->ledger, caf::exit_reason::user_shutdown);
    waiter->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  }
  self_->router.set(zmq::sockopt::linger, 1000);
  self_->router.close();
  ::close(self_->wakeup);
}

const std::string& zmq_endpoint::address() const { return self_->address; }
const endpoint_counters& zmq_endpoint::counters() const { return self_->counters; }

}  // namespace rml::messaging
