// Monitoring's drift watch: error bits from the labelled streams and sampled request rows go
// through the detectors; alarms are traced, counted on /metrics and reported; a new version
// brings its own reference. The monitor actor hands what it receives to the watch.
#include "actors/monitoring/drift_watch.hpp"

#include <random>

#include "actors/monitoring/drift_reference.hpp"
#include "actors/monitoring/monitor.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
/// Error bits at `rate`, seeded.
std::vector<std::uint8_t> error_bits(std::uint64_t seed, std::size_t count, double rate) {
  std::mt19937_64 generator(seed);
  std::vector<std::uint8_t> bits(count);
  for (auto& bit : bits) bit = double(generator() >> 11) * 0x1.0p-53 < rate ? 1 : 0;
  return bits;
}

/// `count` rows of `features` values uniform in [shift, shift + 1).
std::vector<float> rows_of(std::uint64_t seed, std::size_t count, std::size_t features, float shift) {
  std::mt19937_64 generator(seed);
  std::vector<float> rows(count * features);
  for (auto& value : rows) value = float(double(generator() >> 11) * 0x1.0p-53) + shift;
  return rows;
}

std::size_t traced(const telemetry& telemetry, const std::string& kind) {
  std::size_t count = 0;
  for (const auto& event : telemetry.trace->recent(trace_log::ring_events_max)) count += event.kind == kind ? 1 : 0;
  return count;
}

constexpr std::size_t features = 8;

inputs_sampled sample_of(std::uint64_t version, std::vector<float> rows, const input_reference* reference, std::string pipeline = "") {
  inputs_sampled sampled;
  sampled.model_version = version;
  sampled.columns = features;
  sampled.values.values = std::move(rows);
  if (reference) {
    sampled.reference = *reference;
    sampled.feature_pipeline = std::move(pipeline);
  }
  return sampled;
}
}  // namespace

TEST_CASE("the drift watch raises concept-drift alarms when the feedback error rate rises, not before") {
  telemetry telemetry;
  actors::drift_watch watch({}, telemetry);
  std::vector<actors::drift_alarm> before, after;
  for (int batch = 0; batch < 100; ++batch) {  // 6400 outcomes at 0.1
    auto alarms = watch.observe({"feedback", 3, error_bits(std::uint64_t(batch), 64, 0.1)}, batch);
    before.insert(before.end(), alarms.begin(), alarms.end());
  }
  for (int batch = 100; batch < 140; ++batch) {  // 2560 at 0.5
    auto alarms = watch.observe({"feedback", 3, error_bits(std::uint64_t(batch), 64, 0.5)}, batch);
    after.insert(after.end(), alarms.begin(), alarms.end());
  }
  CHECK(before.size() <= 1);
  REQUIRE_FALSE(after.empty());
  std::set<std::string> detectors;
  for (const auto& alarm : after) {
    CHECK(alarm.stream == "feedback");
    CHECK(alarm.model_version == 3);
    detectors.insert(alarm.detector);
  }
  CHECK(detectors.count("adwin") == 1);
  CHECK(detectors.count("page_hinkley") == 1);
  CHECK(traced(telemetry, "concept_drift") == before.size() + after.size());
  const auto rendered = telemetry.metrics->render();
  CHECK(rendered.find("rml_drift_alarms_total{stream=\"feedback\",detector=\"adwin\"}") != std::string::npos);
  CHECK(rendered.find("rml_drift_outcomes_total{stream=\"feedback\"} 8960") != std::string::npos);
  const auto report = watch.report();
  CHECK(report.at("feedback_error_rate") == Approx(0.5).margin(0.1));
  CHECK(report.at("feedback_alarms") == double(before.size() + after.size()));
}

TEST_CASE("a falling error rate (a better model) raises no concept-drift alarm") {
  telemetry telemetry;
  actors::drift_watch watch({}, telemetry);
  std::size_t alarms = 0;
  for (int batch = 0; batch < 100; ++batch) alarms += watch.observe({"training", 1, error_bits(std::uint64_t(batch), 64, 0.5)}, batch).size();
  for (int batch = 100; batch < 200; ++batch) alarms += watch.observe({"training", 2, error_bits(std::uint64_t(batch), 64, 0.1)}, batch).size();
  CHECK(alarms <= 1);
  CHECK(watch.report().at("training_error_rate") < 0.2);
}

TEST_CASE("the drift watch compares sampled inputs with the version's reference through its pipeline") {
  telemetry telemetry;
  actors::drift_watch_options options;
  options.input_drift.window_rows = 512;
  options.input_drift.rows_min = 256;
  options.input_evaluate_rows = 64;
  actors::drift_watch watch(options, telemetry);
  // The trainer saw rows in [0, 1) after scale(0.5): raw rows in [0, 2).
  const auto reference = actors::drift::to_message(actors::drift::build_reference(rows_of(1, 5000, features, 0.0f), features, 10));

  // Rows before any reference are counted, not judged.
  CHECK_FALSE(watch.sample(sample_of(4, rows_of(2, 16, features, 0.0f), nullptr), 0));
  CHECK(telemetry.metrics->render().find("rml_input_drift_unreferenced_rows_total 16") != std::string::npos);

  std::optional<actors::drift_alarm> alarm;
  auto raw = rows_of(3, 1024, features, 0.0f);
  for (auto& value : raw) value *= 2.0f;  // what clients send: the pipeline halves it
  alarm = watch.sample(sample_of(4, raw, &reference, "scale(0.5)"), 1);
  CHECK_FALSE(alarm);
  CHECK(watch.input_version() == 4);
  CHECK(watch.input_statistics().rows == 512);
  CHECK(watch.input_statistics().drifted_features == 0);

  // Clients' inputs shift by half the range: the alarm, once.
  auto shifted = rows_of(4, 512, features, 0.0f);
  for (auto& value : shifted) value = value * 2.0f + 1.0f;
  alarm = watch.sample(sample_of(4, shifted, nullptr), 2);
  REQUIRE(alarm);
  CHECK(alarm->stream == "inputs");
  CHECK(alarm->detector == "psi");
  CHECK(watch.input_statistics().drifted_features == features);
  CHECK_FALSE(watch.sample(sample_of(4, shifted, nullptr), 3));  // still drifted: no second alarm
  CHECK(traced(telemetry, "input_drift") == 1);
  CHECK(telemetry.metrics->render().find("rml_input_drift_alarm 1") != std::string::npos);

  // Back to the trained distribution: the alarm clears.
  watch.sample(sample_of(4, raw, nullptr), 4);
  CHECK(traced(telemetry, "input_drift_cleared") == 1);
  CHECK(telemetry.metrics->render().find("rml_input_drift_alarm 0") != std::string::npos);
  CHECK(watch.report().at("inputs_alarms") == 1);

  // A reference that does not fit the rows is refused, and the held one kept.
  input_reference broken = reference;
  broken.shares.pop_back();
  watch.sample(sample_of(5, raw, &broken, "scale(0.5)"), 5);
  CHECK(traced(telemetry, "input_reference_refused") == 1);
  CHECK(watch.input_version() == 4);
}

TEST_CASE("the monitor runs the drift watch over what serving and the trainer send, and reports it") {
  test::actor_fixture f;
  actors::monitor_options options;
  std::vector<actors::drift_alarm> alarms;
  options.on_alarm = [&alarms](const actors::drift_alarm& alarm) { alarms.push_back(alarm); };
  options.telemetry = f.telemetry;
  auto monitor = f.hold(actors::spawn_monitor(*f.system, options));
  for (int batch = 0; batch < 60; ++batch) caf::anon_send(monitor, outcomes_observed{"feedback", 2, error_bits(std::uint64_t(batch), 64, 0.1)});
  for (int batch = 60; batch < 100; ++batch) caf::anon_send(monitor, outcomes_observed{"feedback", 2, error_bits(std::uint64_t(batch), 64, 0.6)});
  f.scheduler->run();
  auto report = *f.ask<actors::metrics_report>(monitor, status_atom::value).first;
  REQUIRE(report.count("drift") == 1);
  CHECK(report["drift"]["feedback_error_rate"] == Approx(0.6).margin(0.1));
  CHECK(report["drift"]["feedback_alarms"] >= 1);
  REQUIRE_FALSE(alarms.empty());
  CHECK(alarms.front().stream == "feedback");
}
