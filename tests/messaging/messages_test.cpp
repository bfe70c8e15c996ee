// Messages: every type round-trips through CAF's binary serializer, float payloads travel as
// one block of bytes, and rml errors cross as caf::error with their code and message.
#include <catch2/catch.hpp>

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>

#include <cstring>
#include <memory>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
template <class T>
T round_trip(const T& original, std::size_t* bytes = nullptr) {
  std::vector<char> buffer;
  caf::binary_serializer sink{nullptr, buffer};
  T copy = original;
  REQUIRE_FALSE(sink(copy));
  if (bytes != nullptr) *bytes = buffer.size();
  T decoded;
  caf::binary_deserializer source{nullptr, buffer};
  REQUIRE_FALSE(source(decoded));
  return decoded;
}
}  // namespace

TEST_CASE("every message type round-trips through CAF's binary serializer") {
  event fact{42, 1'700'000'000'000'000, {{0.5f, -1.25f, 3.0f}}, 7};
  REQUIRE(round_trip(fact) == fact);
  event_batch batch{9, {fact, event{43, 5, {{1.0f}}, no_label}}};
  REQUIRE(round_trip(batch) == batch);
  REQUIRE(round_trip(event_acked{9, 100, 2, 1}) == event_acked{9, 100, 2, 1});
  feature_batch features{2, 3, {{1, 2, 3, 4, 5, 6}}, {0, 1}, {42, 43}, 100, 101, "scale(2)", {{0.5f}}};
  REQUIRE(round_trip(features) == features);
  model_snapshot snapshot{3, 2, {'R', 'M', 'L', '\0', '\xff'}, "scale(255)", {{0.1f, 0.2f}}, {{"accuracy", 0.83}}, 5000,
                          input_reference{1024, {1, 2}, {0.5f, 0.1f, 0.9f}, {0.2, 0.8, 0.1, 0.3, 0.6}}};
  REQUIRE(round_trip(snapshot) == snapshot);
  outcomes_observed outcomes{"feedback", 3, {0, 1, 1, 0}};
  REQUIRE(round_trip(outcomes) == outcomes);
  inputs_sampled sampled{3, 2, {{1, 2, 3, 4}}, snapshot.reference, "scale(2)", {{0.5f}}};
  REQUIRE(round_trip(sampled) == sampled);
  drift_alarmed alarmed{"training", "adwin", 3, 123, "detector=adwin", 900};
  REQUIRE(round_trip(alarmed) == alarmed);
  predict_request request{77, 123456, 1, 3, 0, feature_block(std::vector<float>(784, 0.25f))};
  REQUIRE(round_trip(request) == request);
  predict_reply reply{77, 3, 1, 10, {std::vector<float>(10, 0.1f)}, {4, 2, 9}};
  REQUIRE(round_trip(reply) == reply);
  metrics_sample sample{"trainer", 99, {{"events_per_s", 1e5}, {"accuracy", 0.8}}};
  REQUIRE(round_trip(sample) == sample);
  child_restarted restarted{"pipeline", "trainer", "exit_reason(kill)", 3};
  REQUIRE(round_trip(restarted) == restarted);
  trainer_checkpoint checkpoint{{'R', 'M'}, {{{1, 2}}, {{3}}}, "standardize", {{0.1f}}, 640, 640, 10, 2};
  REQUIRE(round_trip(checkpoint) == checkpoint);
  trainer_status status{640, 640, 10, 2, 0.75, 0.6};
  REQUIRE(round_trip(status) == status);
}

TEST_CASE("a float payload serialises as its bytes plus a length") {
  std::size_t bytes = 0;
  float_payload payload{std::vector<float>(1000, 1.5f)};
  REQUIRE(round_trip(payload, &bytes) == payload);
  REQUIRE(bytes <= 1000 * sizeof(float) + 10);
  REQUIRE(round_trip(float_payload{}) == float_payload{});
}

TEST_CASE("a feature block viewing a receive buffer serialises as the floats it views and arrives owned") {
  // Floats at an odd offset, as ZeroMQ can leave them in its receive buffer.
  const std::vector<float> floats{0.5f, -1.25f, 3.0f, 255.0f};
  auto buffer = std::make_shared<std::vector<std::byte>>(1 + floats.size() * sizeof(float));
  std::memcpy(buffer->data() + 1, floats.data(), floats.size() * sizeof(float));
  auto view = feature_block::view_of(buffer, std::span<const std::byte>(*buffer).subspan(1));
  REQUIRE(view.is_view());
  REQUIRE(view.size() == floats.size());
  REQUIRE(view.at(3) == 255.0f);
  REQUIRE(view == feature_block(floats));
  std::vector<float> copied(floats.size());
  view.copy_to(copied.data());
  REQUIRE(copied == floats);

  predict_request request{5, 0, 1, 1, 0, view};
  const auto arrived = round_trip(request);
  REQUIRE(arrived == request);
  REQUIRE_FALSE(arrived.features.is_view());

  // values() makes a view an owned vector and lets the buffer go.
  const std::weak_ptr<std::vector<std::byte>> watched = buffer;
  buffer.reset();
  REQUIRE_FALSE(watched.expired());  // the views keep it
  auto changed = request.features;
  changed.values()[0] = 9.0f;
  REQUIRE_FALSE(changed.is_view());
  REQUIRE(request.features.at(0) == 0.5f);
  request = {};
  view = {};
  REQUIRE(watched.expired());
}

TEST_CASE("a truncated message is refused by the deserializer, not crashed on") {
  std::vector<char> buffer;
  caf::binary_serializer sink{nullptr, buffer};
  predict_request request{1, 2, 1, 1, 0, feature_block(std::vector<float>(100, 1.0f))};
  REQUIRE_FALSE(sink(request));
  for (std::size_t cut : {std::size_t(0), std::size_t(5), buffer.size() / 2, buffer.size() - 1}) {
    CAPTURE(cut);
    predict_request decoded;
    caf::binary_deserializer source{nullptr, buffer.data(), cut};
    REQUIRE(source(decoded));
  }
}

TEST_CASE("rml errors cross actor boundaries as caf::error with code and message") {
  caf::error failure = make_error(errc::shape_mismatch, "input of shape [1, 783] does not fit");
  REQUIRE(rml_code(failure) == errc::shape_mismatch);
  REQUIRE(describe(failure) == "input of shape [1, 783] does not fit");
  caf::error converted = to_caf_error(rml::error(errc::truncated, "model.rml: truncated"));
  REQUIRE(rml_code(converted) == errc::truncated);
  REQUIRE_FALSE(rml_code(caf::error{}).has_value());
}
