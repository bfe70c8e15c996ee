// The ZeroMQ wire format: every frame kind round-trips; every truncation of a valid frame,
// every flipped byte and thousands of random frames are refused with an error (or, for a
// flip inside the float payload, decoded to finite values) — never a crash, never an
// allocation beyond the limits. Random frames are drawn from Catch's --rng-seed.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "messaging/wire.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
predict_request sample_request() {
  predict_request request;
  request.request_id = 77;
  request.rows = 2;
  request.top_k = 3;
  request.model_version = 5;
  for (int index = 0; index < 2 * 6; ++index) request.features.values().push_back(float(index) * 0.5f);
  return request;
}

event_batch sample_batch() {
  event_batch batch{9, {}};
  for (std::uint64_t id = 1; id <= 3; ++id) batch.events.push_back({id, std::int64_t(id) * 10, {{1.0f, 2.0f, float(id)}}, std::int32_t(id)});
  return batch;
}
}  // namespace

TEST_CASE("every frame kind round-trips") {
  const auto request = sample_request();
  auto decoded = wire::decode_predict_request(wire::encode_predict_request(request, 6, 250), {});
  REQUIRE(decoded.ok());
  REQUIRE(decoded->request == request);
  REQUIRE(decoded->features == 6);
  REQUIRE(decoded->timeout_ms == 250);

  predict_reply reply{77, 5, 2, 3, {{0.1f, 0.2f, 0.7f, 0.3f, 0.3f, 0.4f}}, {2, 1, 2, 0}};
  REQUIRE(*wire::decode_predict_reply(wire::encode_predict_reply(reply)) == reply);

  const auto batch = sample_batch();
  REQUIRE(*wire::decode_ingest_request(wire::encode_ingest_request(batch, 3), {}) == batch);
  REQUIRE(*wire::decode_ingest_ack(wire::encode_ingest_ack({9, 100, 2, 1})) == event_acked{9, 100, 2, 1});

  auto failure = wire::decode_error(wire::encode_error(errc::overloaded, 77, "queue full"));
  REQUIRE(failure->code == errc::overloaded);
  REQUIRE(failure->request_id == 77);
  REQUIRE(failure->message == "queue full");
  REQUIRE(*wire::peek_kind(wire::encode_ingest_ack({})) == wire::frame_kind::ingest_ack);
  REQUIRE(*wire::decode_feedback(wire::encode_feedback({12, 4})) == prediction_feedback{12, 4});
  REQUIRE(*wire::decode_feedback_ack(wire::encode_feedback_ack(12, true)) == std::make_pair(std::uint64_t{12}, true));
  REQUIRE(wire::decode_feedback(wire::encode_feedback({12, -2})).error().message() == "feedback for request 12: label -2 is negative");
}

TEST_CASE("malformed frames are refused naming the field") {
  auto frame = wire::encode_predict_request(sample_request(), 6, 0);
  frame[1] = std::byte{9};
  REQUIRE(wire::decode_predict_request(frame, {}).error().code() == errc::unsupported_version);

  auto wrong_count = wire::encode_predict_request(sample_request(), 5, 0);
  auto refused = wire::decode_predict_request(wrong_count, {});
  REQUIRE(refused.error().message() ==
          "predict request 77: 48 bytes of features, expected 40 (2 rows × 5 floats)");

  auto nan_request = sample_request();
  nan_request.features.values()[7] = std::nanf("");
  REQUIRE(wire::decode_predict_request(wire::encode_predict_request(nan_request, 6, 0), {}).error().message() ==
          "predict request 77: row 1 feature 1 is NaN");

  wire::frame_limits tight;
  tight.rows_max = 1;
  REQUIRE(wire::decode_predict_request(wire::encode_predict_request(sample_request(), 6, 0), tight).error().message() ==
          "predict request 77: rows must be in [1, 1], got 2");
  auto poisonous = sample_request();
  poisonous.features.values()[4] = 3e38f;
  REQUIRE(wire::decode_predict_request(wire::encode_predict_request(poisonous, 6, 0), {}).error().message() ==
          "predict request 77: row 0 feature 4 is 3e+38, beyond the bound of ±1e+06");
  REQUIRE(wire::decode_ingest_request(wire::encode_predict_request(sample_request(), 6, 0), {}).error().message() ==
          "ingest request: frame kind 1, expected 3");
}

TEST_CASE("the request id of a frame is read without decoding it, so refusals can name it") {
  auto request = sample_request();
  request.request_id = 0x1122334455667788ull;
  REQUIRE(wire::peek_request_id(wire::encode_predict_request(request, 6, 0)) == 0x1122334455667788ull);
  auto batch = sample_batch();
  batch.batch_id = 99;
  REQUIRE(wire::peek_request_id(wire::encode_ingest_request(batch, 3)) == 99);
  REQUIRE(wire::peek_request_id(wire::encode_feedback({12, 3})) == 12);
  const auto predict = wire::encode_predict_request(request, 6, 0);
  REQUIRE(wire::peek_request_id(std::span(predict.data(), 23)) == 0);  // too short to hold it
  REQUIRE(wire::peek_request_id(wire::encode_error(errc::overloaded, 5, "x")) == 0);
}

TEST_CASE("every truncation of a valid frame is refused") {
  const auto predict = wire::encode_predict_request(sample_request(), 6, 0);
  for (std::size_t length = 0; length < predict.size(); ++length) {
    CAPTURE(length);
    REQUIRE_FALSE(wire::decode_predict_request(std::span(predict.data(), length), {}).ok());
  }
  const auto ingest = wire::encode_ingest_request(sample_batch(), 3);
  for (std::size_t length = 0; length < ingest.size(); ++length) {
    CAPTURE(length);
    REQUIRE_FALSE(wire::decode_ingest_request(std::span(ingest.data(), length), {}).ok());
  }
}

TEST_CASE("random and mutated frames never crash the decoders") {
  std::mt19937_64 generator(Catch::rngSeed());
  std::uniform_int_distribution<int> byte(0, 255);
  const auto valid = wire::encode_ingest_request(sample_batch(), 3);
  const auto valid_predict = wire::encode_predict_request(sample_request(), 6, 0);
  std::size_t accepted = 0;
  for (int trial = 0; trial < 20000; ++trial) {
    std::vector<std::byte> frame;
    if (trial % 2 == 0) {
      frame.resize(std::size_t(std::uniform_int_distribution<int>(0, 200)(generator)));
      for (auto& value : frame) value = std::byte(byte(generator));
      if (!frame.empty() && trial % 4 == 0) frame[0] = std::byte(1 + trial % 4);  // a plausible kind
      if (frame.size() > 1) frame[1] = std::byte{1};
    } else {
      frame = trial % 3 == 0 ? valid_predict : valid;
      for (int flips = 0; flips < 3; ++flips) frame[std::size_t(generator() % frame.size())] = std::byte(byte(generator));
    }
    auto predict = wire::decode_predict_request(frame, {});
    auto ingest = wire::decode_ingest_request(frame, {});
    (void)wire::decode_predict_reply(frame);
    (void)wire::decode_ingest_ack(frame);
    (void)wire::decode_error(frame);
    if (predict) {
      ++accepted;
      for (float value : predict->request.features.values()) REQUIRE(std::isfinite(value));
      REQUIRE(predict->request.features.values().size() == std::size_t(predict->request.rows) * predict->features);
    }
    if (ingest) {
      ++accepted;
      for (const auto& fact : ingest->events) REQUIRE(fact.features.values.size() == ingest->events.front().features.values.size());
    }
  }
  // Mutations that only touch payload floats decode; the rest are refused.
  REQUIRE(accepted > 0);
}
