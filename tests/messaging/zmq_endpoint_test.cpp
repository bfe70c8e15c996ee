// The ZeroMQ endpoint against a real socket on loopback: pipelined requests from a client
// each get exactly one answer; random and truncated frames get error frames and leave the
// endpoint serving; beyond the in-flight bound requests are refused `overloaded` at once;
// target errors and timeouts come back as error frames. The targets are small test actors.
#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <zmq.hpp>

#include <deque>
#include <random>
#include <set>
#include <thread>

#include "messaging/errors.hpp"
#include "tests/serving_fakes.hpp"
#include "messaging/zmq_endpoint.hpp"

using namespace rml;
using namespace rml::messaging;
using namespace std::chrono_literals;

namespace {
struct system_fixture {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  std::vector<caf::actor> targets;
  system_fixture() {
    config.set("logger.verbosity", caf::atom("quiet"));
    register_messaging(config);
    system = std::make_unique<caf::actor_system>(config);
  }
  ~system_fixture() {
    for (auto& target : targets) caf::anon_send_exit(target, caf::exit_reason::kill);
  }
  /// Spawns a fake serving replica, registered as "serving"; killed with the fixture.
  caf::actor serve(std::chrono::milliseconds delay);
};

/// A stand-in for serving: answers with one class per row, fails request 13, and answers
/// request ids ≥ 1000 only after `delay`.
struct fake_serving_state {
  std::deque<std::pair<caf::typed_response_promise<predict_reply>, predict_reply>> late;
};

caf::behavior fake_serving(caf::stateful_actor<fake_serving_state>* self, std::chrono::milliseconds delay) {
  return {
      [self, delay](predict_request& request) -> caf::result<predict_reply> {
        if (request.request_id == 13) return make_error(errc::invalid_argument, "request 13: unlucky");
        predict_reply reply{request.request_id, 4, request.rows, 2, {std::vector<float>(request.rows * 2, 0.5f)},
                            std::vector<std::int32_t>(request.rows, 1)};
        if (request.request_id < 1000) return reply;
        auto promise = self->make_response_promise<predict_reply>();
        self->state.late.emplace_back(promise, reply);
        self->delayed_send(self, delay, caf::atom("late"));
        return promise;
      },
      rml::test::answer_bursts_one_by_one(self),
      [](prediction_feedback& feedback) { return feedback.request_id == 42; },
      [self](caf::atom_value) {
        auto [promise, reply] = self->state.late.front();
        self->state.late.pop_front();
        promise.deliver(reply);
      },
  };
}

caf::actor system_fixture::serve(std::chrono::milliseconds delay) {
  auto serving = system->spawn(fake_serving, delay);
  system->registry().erase(caf::atom("serving"));
  system->registry().put(caf::atom("serving"), serving);
  targets.push_back(serving);
  return serving;
}

struct client {
  zmq::context_t context;
  zmq::socket_t socket{context, zmq::socket_type::dealer};
  explicit client(const std::string& address) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::rcvtimeo, 5000);
    socket.connect(address);
  }
  void send(const std::vector<std::byte>& frame) { socket.send(zmq::buffer(frame.data(), frame.size())); }
  std::vector<std::byte> receive() {
    zmq::message_t message;
    auto received = socket.recv(message);
    REQUIRE(received.has_value());
    const auto* data = static_cast<const std::byte*>(message.data());
    return {data, data + message.size()};
  }
};

predict_request request_with(std::uint64_t id, std::uint32_t rows = 1) {
  predict_request request;
  request.request_id = id;
  request.rows = rows;
  request.features.values().assign(std::size_t(rows) * 4, 0.25f);
  return request;
}

zmq_endpoint_options predict_options(std::size_t in_flight_max = 64) {
  zmq_endpoint_options options;
  options.bind = "tcp://127.0.0.1:0";
  options.features = 4;
  options.in_flight_max = in_flight_max;
  options.default_timeout = 2000ms;
  return options;
}
}  // namespace

TEST_CASE("pipelined predict requests each get exactly one answer") {
  system_fixture f;
  f.serve(0ms);
  auto endpoint = zmq_endpoint::start(*f.system, predict_options());
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  for (std::uint64_t id = 1; id <= 50; ++id) c.send(wire::encode_predict_request(request_with(id, 2), 4, 0));
  std::set<std::uint64_t> answered;
  for (int index = 0; index < 50; ++index) {
    auto frame = c.receive();
    if (*wire::peek_kind(frame) == wire::frame_kind::error_reply) {
      auto failure = wire::decode_error(frame);
      REQUIRE(failure->request_id == 13);
      REQUIRE(failure->message == "request 13: unlucky");
      REQUIRE(answered.insert(13).second);
      continue;
    }
    auto reply = wire::decode_predict_reply(frame);
    REQUIRE(reply.ok());
    REQUIRE(reply->rows == 2);
    REQUIRE(reply->model_version == 4);
    REQUIRE(answered.insert(reply->request_id).second);
  }
  REQUIRE(answered.size() == 50);
  REQUIRE((*endpoint)->counters().answered == 49);
  REQUIRE((*endpoint)->counters().failed == 1);
}

TEST_CASE("a predict request's features reach serving as a view of the frame ZeroMQ received, not a copy") {
  system_fixture f;
  // Answers with the features it was given and, as its one class, whether they were a view.
  auto serving = f.system->spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {
        [](predict_request& request) {
          std::vector<float> seen(request.features.size());
          request.features.copy_to(seen.data());
          return predict_reply{request.request_id, 1, request.rows, 4, float_payload{seen}, {request.features.is_view() ? 1 : 0}};
        },
        rml::test::answer_bursts_one_by_one(self),
    };
  });
  f.system->registry().put(caf::atom("serving"), serving);
  f.targets.push_back(serving);
  auto endpoint = zmq_endpoint::start(*f.system, predict_options());
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  auto request = request_with(7);
  request.features.values() = {1.0f, -2.0f, 3.5f, 255.0f};
  c.send(wire::encode_predict_request(request, 4, 0));
  auto reply = wire::decode_predict_reply(c.receive());
  REQUIRE(reply.ok());
  REQUIRE(reply->probabilities.values == std::vector<float>{1.0f, -2.0f, 3.5f, 255.0f});
  REQUIRE(reply->top_classes == std::vector<std::int32_t>{1});
}

TEST_CASE("random and truncated frames get error frames and the endpoint keeps serving") {
  system_fixture f;
  f.serve(0ms);
  auto endpoint = zmq_endpoint::start(*f.system, predict_options());
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  std::mt19937_64 generator(Catch::rngSeed());
  const auto valid = wire::encode_predict_request(request_with(7), 4, 0);
  const int frames = 300;
  std::uint64_t malformed = 0;
  for (int trial = 0; trial < frames; ++trial) {
    std::vector<std::byte> frame;
    if (trial % 3 == 0) {
      frame.assign(valid.begin(), valid.begin() + std::ptrdiff_t(generator() % valid.size()));  // truncated
    } else {
      frame.resize(generator() % 100);
      for (auto& value : frame) value = std::byte(generator() & 0xff);
      if (frame.size() > 1) frame[1] = std::byte{1};
    }
    // A random frame can happen to be well-formed feedback: serving then answers it.
    const bool feedback = wire::decode_feedback(frame).ok();
    malformed += feedback ? 0 : 1;
    c.send(frame);
    auto reply = c.receive();
    if (feedback) {
      REQUIRE(*wire::peek_kind(reply) == wire::frame_kind::feedback_ack);
      continue;
    }
    REQUIRE(*wire::peek_kind(reply) == wire::frame_kind::error_reply);
    REQUIRE_FALSE(wire::decode_error(reply)->message.empty());
  }
  REQUIRE(malformed >= std::uint64_t(frames) - 5);
  REQUIRE((*endpoint)->counters().malformed == malformed);
  // Wrong feature count: refused by name before reaching serving.
  auto narrow = request_with(8);
  narrow.features.values().resize(3);
  c.send(wire::encode_predict_request(narrow, 3, 0));
  auto wrong = wire::decode_error(c.receive());
  REQUIRE(wrong->code == errc::shape_mismatch);
  REQUIRE(wrong->message == "predict request 8: 3 features, the model takes 4");
  // Still serving.
  c.send(valid);
  REQUIRE(wire::decode_predict_reply(c.receive())->request_id == 7);
}

TEST_CASE("beyond the in-flight bound requests are refused overloaded, each answered once") {
  system_fixture f;
  f.serve(200ms);
  auto endpoint = zmq_endpoint::start(*f.system, predict_options(2));
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  for (std::uint64_t id = 1000; id < 1010; ++id) c.send(wire::encode_predict_request(request_with(id), 4, 0));
  std::set<std::uint64_t> seen;
  int overloaded = 0;
  for (int index = 0; index < 10; ++index) {
    auto frame = c.receive();
    if (*wire::peek_kind(frame) == wire::frame_kind::error_reply) {
      auto failure = wire::decode_error(frame);
      REQUIRE(failure->code == errc::overloaded);
      REQUIRE(seen.insert(failure->request_id).second);
      ++overloaded;
    } else {
      REQUIRE(seen.insert(wire::decode_predict_reply(frame)->request_id).second);
    }
  }
  REQUIRE(seen.size() == 10);
  REQUIRE(overloaded >= 1);
  REQUIRE((*endpoint)->counters().overloaded == std::uint64_t(overloaded));
}

TEST_CASE("a request whose timeout passes gets a deadline error, and a missing target not_ready") {
  system_fixture f;
  auto endpoint = zmq_endpoint::start(*f.system, predict_options());
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  c.send(wire::encode_predict_request(request_with(1), 4, 0));
  REQUIRE(wire::decode_error(c.receive())->code == errc::not_ready);
  f.serve(500ms);
  c.send(wire::encode_predict_request(request_with(1001), 4, 50));
  auto late = wire::decode_error(c.receive());
  REQUIRE(late->code == errc::deadline_exceeded);
  REQUIRE(late->request_id == 1001);
}

TEST_CASE("feedback frames reach serving and are acked, a hanging serving still meets deadlines") {
  system_fixture f;
  f.serve(2000ms);
  auto endpoint = zmq_endpoint::start(*f.system, predict_options());
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  c.send(wire::encode_feedback({42, 3}));
  auto ack = wire::decode_feedback_ack(c.receive());
  REQUIRE(ack.ok());
  REQUIRE(ack->first == 42);
  REQUIRE(ack->second);
  c.send(wire::encode_feedback({43, 3}));
  REQUIRE_FALSE(wire::decode_feedback_ack(c.receive())->second);
  // Serving takes 2 s, the client allows 100 ms: the endpoint answers the deadline itself.
  const auto sent = std::chrono::steady_clock::now();
  c.send(wire::encode_predict_request(request_with(1002), 4, 100));
  auto late = wire::decode_error(c.receive());
  REQUIRE(late->code == errc::deadline_exceeded);
  REQUIRE(late->request_id == 1002);
  REQUIRE(std::chrono::steady_clock::now() - sent < 1000ms);
}

TEST_CASE("an address that cannot be bound is an error naming it") {
  system_fixture f;
  auto options = predict_options();
  options.bind = "tcp://127.0.0.1:not-a-port";
  auto endpoint = zmq_endpoint::start(*f.system, options);
  REQUIRE_FALSE(endpoint.ok());
  REQUIRE(endpoint.error().message().rfind("tcp://127.0.0.1:not-a-port: cannot bind", 0) == 0);
}

TEST_CASE("the ingest socket acks batches and answers random frames with errors") {
  system_fixture f;
  // A stand-in for ingest: acks every batch, numbering events from 0.
  auto ingest = f.system->spawn([](caf::event_based_actor*) -> caf::behavior {
    auto next = std::make_shared<std::uint64_t>(0);
    return {[next](event_batch& batch) {
      event_acked ack{batch.batch_id, *next, std::uint32_t(batch.events.size()), 0};
      *next += batch.events.size();
      return ack;
    }};
  });
  f.targets.push_back(ingest);
  f.system->registry().put(caf::atom("ingest"), ingest);
  auto options = predict_options();
  options.role = endpoint_role::ingest;
  options.target = caf::atom("ingest");
  auto endpoint = zmq_endpoint::start(*f.system, options);
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  event_batch batch{5, {{1, 0, {{1, 2, 3, 4}}, 2}, {2, 0, {{5, 6, 7, 8}}, 3}}};
  const auto valid = wire::encode_ingest_request(batch, 4);
  c.send(valid);
  REQUIRE(*wire::decode_ingest_ack(c.receive()) == event_acked{5, 0, 2, 0});
  std::mt19937_64 generator(Catch::rngSeed());
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<std::byte> frame(valid.begin(), valid.begin() + std::ptrdiff_t(generator() % valid.size()));
    if (trial % 2 == 1) {
      frame.resize(generator() % 120);
      for (auto& value : frame) value = std::byte(generator() & 0xff);
      if (frame.size() > 1) frame[1] = std::byte{1};
    }
    c.send(frame);
    REQUIRE(*wire::peek_kind(c.receive()) == wire::frame_kind::error_reply);
  }
  REQUIRE((*endpoint)->counters().malformed == 200);
  c.send(valid);
  REQUIRE(wire::decode_ingest_ack(c.receive())->first_offset == 2);
}

TEST_CASE("refusals name the request they answer whenever its id was readable") {
  system_fixture f;
  f.serve(0ms);
  auto options = predict_options();
  options.limits.feature_magnitude_max = 100;
  auto endpoint = zmq_endpoint::start(*f.system, options);
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  auto refused = [&](const std::vector<std::byte>& frame) {
    c.send(frame);
    auto failure = wire::decode_error(c.receive());
    REQUIRE(failure.ok());
    return *failure;
  };
  auto too_many_rows = request_with(21);
  too_many_rows.rows = 5000;
  REQUIRE(refused(wire::encode_predict_request(too_many_rows, 4, 0)).request_id == 21);
  auto narrow = request_with(22);
  narrow.features.values().resize(3);
  REQUIRE(refused(wire::encode_predict_request(narrow, 3, 0)).request_id == 22);
  auto longer = wire::encode_predict_request(request_with(23), 4, 0);
  longer.resize(longer.size() + 4);
  auto length = refused(longer);
  REQUIRE(length.request_id == 23);
  REQUIRE(length.message == "predict request 23: 20 bytes of features, expected 16 (1 rows × 4 floats)");
  auto nan = request_with(24);
  nan.features.values()[2] = std::nanf("");
  REQUIRE(refused(wire::encode_predict_request(nan, 4, 0)).message == "predict request 24: row 0 feature 2 is NaN");
  auto huge = request_with(25);
  huge.features.values()[1] = -3e38f;
  auto poisonous = refused(wire::encode_predict_request(huge, 4, 0));
  REQUIRE(poisonous.request_id == 25);
  REQUIRE(poisonous.message == "predict request 25: row 0 feature 1 is -3e+38, beyond the bound of ±100");
}

TEST_CASE("a frame over the size limit is answered, and the other answers on its connection still arrive") {
  system_fixture f;
  f.serve(200ms);
  auto options = predict_options();
  options.limits.frame_bytes_max = 64 << 10;
  auto endpoint = zmq_endpoint::start(*f.system, options);
  REQUIRE(endpoint.ok());
  client c((*endpoint)->address());
  c.send(wire::encode_predict_request(request_with(1000), 4, 0));  // answered after 200 ms
  auto oversized = wire::encode_predict_request(request_with(77), 4, 0);
  oversized.resize(options.limits.frame_bytes_max + 1024);
  c.send(oversized);
  c.send(wire::encode_predict_request(request_with(5), 4, 0));
  std::set<std::uint64_t> answered;
  for (int index = 0; index < 3; ++index) {
    auto frame = c.receive();
    if (*wire::peek_kind(frame) == wire::frame_kind::error_reply) {
      auto failure = wire::decode_error(frame);
      REQUIRE(failure->request_id == 77);
      REQUIRE(failure->message == "request 77: frame of 66560 bytes exceeds the limit of 65536");
      answered.insert(77);
    } else {
      answered.insert(wire::decode_predict_reply(frame)->request_id);
    }
  }
  REQUIRE(answered == std::set<std::uint64_t>{5, 77, 1000});
}

TEST_CASE("one client pipelining far beyond the socket's high-water mark loses no answer") {
  system_fixture f;
  f.serve(0ms);
  auto options = predict_options(4096);
  options.client_in_flight_max = 500;
  auto endpoint = zmq_endpoint::start(*f.system, options);
  REQUIRE(endpoint.ok());
  // A client that sends 3000 requests of 256 rows (3 KB answers, 9 MB in all, more than the
  // kernel's socket buffers hold) and only then starts reading, through a small receive
  // queue: the server's pipe to it fills, and ZeroMQ's default would drop answers.
  zmq::context_t context;
  zmq::socket_t dealer{context, zmq::socket_type::dealer};
  dealer.set(zmq::sockopt::linger, 0);
  dealer.set(zmq::sockopt::rcvhwm, 50);
  dealer.set(zmq::sockopt::sndhwm, 0);
  dealer.set(zmq::sockopt::rcvtimeo, 5000);
  dealer.set(zmq::sockopt::rcvbuf, 4096);
  dealer.connect((*endpoint)->address());
  constexpr std::uint64_t requests = 3000;
  for (std::uint64_t id = 1; id <= requests; ++id) {
    const auto frame = wire::encode_predict_request(request_with(id + 20000, 256), 4, 0);
    dealer.send(zmq::buffer(frame.data(), frame.size()));
  }
  std::this_thread::sleep_for(500ms);
  std::set<std::uint64_t> answered;
  std::uint64_t overloaded = 0;
  for (std::uint64_t index = 0; index < requests; ++index) {
    zmq::message_t message;
    REQUIRE(dealer.recv(message).has_value());
    std::span<const std::byte> frame(static_cast<const std::byte*>(message.data()), message.size());
    if (*wire::peek_kind(frame) == wire::frame_kind::error_reply) {
      auto failure = wire::decode_error(frame);
      REQUIRE(failure->code == errc::overloaded);
      REQUIRE(answered.insert(failure->request_id).second);
      ++overloaded;
    } else {
      REQUIRE(answered.insert(wire::decode_predict_reply(frame)->request_id).second);
    }
  }
  REQUIRE(answered.size() == requests);
  REQUIRE((*endpoint)->counters().undeliverable == 0);
  INFO("refused overloaded: " << overloaded);
  REQUIRE((*endpoint)->counters().overloaded == overloaded);
}
