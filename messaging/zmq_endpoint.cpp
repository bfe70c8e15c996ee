#include "messaging/zmq_endpoint.hpp"

#include <caf/all.hpp>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.hpp>

#include <deque>
#include <mutex>
#include <thread>

#include "messaging/actor_bridge.hpp"
#include "messaging/atoms.hpp"
#include "messaging/errors.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {
namespace {
/// The frames that route a reply back: the client's identity and, for REQ clients, the
/// empty delimiter.
struct route {
  std::vector<std::string> envelope;
};

std::vector<std::byte> as_bytes(const zmq::message_t& message) {
  const auto* data = static_cast<const std::byte*>(message.data());
  return {data, data + message.size()};
}

std::vector<std::byte> error_frame_of(const caf::error& failure, std::uint64_t id) {
  if (failure == caf::sec::request_timeout) return wire::encode_error(errc::deadline_exceeded, id, "request timed out");
  return wire::encode_error(client_code(failure), id, describe(failure));
}
}  // namespace

struct zmq_endpoint::implementation {
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
  std::deque<std::pair<route, std::vector<std::byte>>> replies;
  std::thread thread;

  implementation(caf::actor_system& actor_system, const zmq_endpoint_options& settings)
      : system(actor_system), options(settings) {}

  /// Called from actor threads: queue a reply and wake the socket thread.
  void post(route to, std::vector<std::byte> frame) {
    {
      std::lock_guard<std::mutex> lock(replies_mutex);
      replies.emplace_back(std::move(to), std::move(frame));
    }
    const std::uint64_t one = 1;
    [[maybe_unused]] auto written = ::write(wakeup, &one, sizeof(one));
  }

  void send(const route& to, const std::vector<std::byte>& frame) {
    for (const std::string& part : to.envelope) router.send(zmq::buffer(part), zmq::send_flags::sndmore);
    router.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait);
  }

  void forward_predict(route to, wire::predict_frame decoded) {
    auto target = system.registry().get<caf::actor>(options.target);
    const std::uint64_t id = decoded.request.request_id;
    if (!target) return finish(std::move(to), wire::encode_error(errc::not_ready, id, "no serving replica running"), false);
    const auto timeout = decoded.timeout_ms > 0 ? std::chrono::milliseconds(decoded.timeout_ms) : options.default_timeout;
    decoded.request.deadline_us =
        std::chrono::duration_cast<std::chrono::microseconds>(system.clock().now().time_since_epoch() + timeout).count();
    auto* self = this;
    ask_from_outside<predict_reply>(
        system, target, timeout, std::move(decoded.request),
        [self, to](predict_reply& reply) { self->finish(to, wire::encode_predict_reply(reply), true); },
        [self, to, id](caf::error& failure) { self->finish(to, error_frame_of(failure, id), false); });
  }

  void forward_ingest(route to, event_batch batch) {
    auto target = system.registry().get<caf::actor>(options.target);
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
    in_flight--;
    post(std::move(to), std::move(frame));
  }

  void on_request(route to, const std::vector<std::byte>& frame) {
    counters.frames++;
    auto refuse = [&](const rml::error& failure) {
      counters.malformed++;
      send(to, wire::encode_error(failure.code(), 0, failure.message()));
    };
    if (options.role == endpoint_role::predict) {
      auto decoded = wire::decode_predict_request(frame, options.limits);
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

  /// Takes a place among the requests in flight, or answers `overloaded` at once.
  bool admit(const route& to, std::uint64_t id) {
    if (in_flight.fetch_add(1) >= options.in_flight_max) {
      in_flight--;
      counters.overloaded++;
      send(to, wire::encode_error(errc::overloaded, id,
                                  "more than " + std::to_string(options.in_flight_max) + " requests in flight"));
      return false;
    }
    return true;
  }

  void run() {
    zmq::pollitem_t items[] = {{router.handle(), 0, ZMQ_POLLIN, 0}, {nullptr, wakeup, ZMQ_POLLIN, 0}};
    while (!stopping.load()) {
      try {
        zmq::poll(items, 2, std::chrono::milliseconds(-1));
      } catch (const zmq::error_t&) {
        return;
      }
      if (items[1].revents & ZMQ_POLLIN) {
        std::uint64_t count = 0;
        [[maybe_unused]] auto read = ::read(wakeup, &count, sizeof(count));
        std::deque<std::pair<route, std::vector<std::byte>>> ready;
        {
          std::lock_guard<std::mutex> lock(replies_mutex);
          ready.swap(replies);
        }
        for (auto& [to, frame] : ready) send(to, frame);
      }
      if (items[0].revents & ZMQ_POLLIN) receive_all();
    }
    // Answers that arrived while stopping still go out (the socket lingers to send them).
    std::deque<std::pair<route, std::vector<std::byte>>> ready;
    {
      std::lock_guard<std::mutex> lock(replies_mutex);
      ready.swap(replies);
    }
    for (auto& [to, frame] : ready) send(to, frame);
  }

  void receive_all() {
    while (true) {
      std::vector<zmq::message_t> parts;
      zmq::message_t part;
      if (!router.recv(part, zmq::recv_flags::dontwait)) return;
      parts.push_back(std::move(part));
      while (parts.back().more()) {
        zmq::message_t next;
        if (!router.recv(next, zmq::recv_flags::none)) break;
        parts.push_back(std::move(next));
      }
      if (parts.size() < 2) continue;  // a ROUTER always prefixes the identity
      route to;
      for (std::size_t index = 0; index + 1 < parts.size(); ++index) to.envelope.push_back(parts[index].to_string());
      if (parts.back().size() > options.limits.frame_bytes_max) {
        counters.frames++;
        counters.malformed++;
        send(to, wire::encode_error(errc::invalid_argument, 0, "frame of " + std::to_string(parts.back().size()) + " bytes exceeds the limit"));
        continue;
      }
      on_request(std::move(to), as_bytes(parts.back()));
    }
  }
};

result<std::unique_ptr<zmq_endpoint>> zmq_endpoint::start(caf::actor_system& system, const zmq_endpoint_options& options) {
  auto self = std::make_unique<implementation>(system, options);
  try {
    self->router.set(zmq::sockopt::linger, 0);
    self->router.set(zmq::sockopt::maxmsgsize, std::int64_t(options.limits.frame_bytes_max) + 1024);
    self->router.bind(options.bind);
    self->address = self->router.get(zmq::sockopt::last_endpoint);
  } catch (const zmq::error_t& failure) {
    return error(errc::io_error, options.bind + ": cannot bind: " + failure.what());
  }
  self->wakeup = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (self->wakeup < 0) return error(errc::io_error, "eventfd: cannot create");
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
  self_->router.set(zmq::sockopt::linger, 1000);
  self_->router.close();
  ::close(self_->wakeup);
}

const std::string& zmq_endpoint::address() const { return self_->address; }
const endpoint_counters& zmq_endpoint::counters() const { return self_->counters; }

}  // namespace rml::messaging
