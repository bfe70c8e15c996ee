#include "actors/monitoring/drift.hpp"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <random>
#include <vector>

using namespace rml::actors::drift;

namespace {
/// Uniform in [0, 1) from a seeded generator, the same on every standard library.
struct uniform_source {
  std::mt19937_64 generator;
  explicit uniform_source(std::uint64_t seed) : generator(seed) {}
  double next() { return double(generator() >> 11) * 0x1.0p-53; }
};

/// Error bits with rate `rate(index)`.
std::vector<bool> error_stream(std::uint64_t seed, std::size_t length, const std::function<double(std::size_t)>& rate) {
  uniform_source source(seed);
  std::vector<bool> bits(length);
  for (std::size_t index = 0; index < length; ++index) bits[index] = source.next() < rate(index);
  return bits;
}

/// Where each detector first fired at or after `change`, and how often it fired before.
struct detection {
  std::optional<std::size_t> first_after;
  std::size_t before = 0;
};

template <class Fires>
detection detect(const std::vector<bool>& bits, std::size_t change, Fires fires) {
  detection found;
  for (std::size_t index = 0; index < bits.size(); ++index) {
    if (!fires(bits[index])) continue;
    if (index < change) ++found.before;
    else if (!found.first_after) found.first_after = index;
  }
  return found;
}

constexpr std::size_t change_at = 10'000;
constexpr std::size_t stream_length = 20'000;
constexpr int seeds = 20;

double abrupt(std::size_t index) { return index < change_at ? 0.2 : 0.5; }
double gradual(std::size_t index) {
  if (index < change_at) return 0.2;
  return 0.2 + 0.3 * std::min(1.0, double(index - change_at) / 2000.0);  // 0.2 → 0.5 over 2000
}
double stationary(std::size_t) { return 0.2; }

/// Median delay and total false alarms of one detector kind over `seeds` streams.
template <class Make>
std::pair<double, std::size_t> sweep(const std::function<double(std::size_t)>& rate, Make make, std::size_t* missed = nullptr) {
  std::vector<double> delays;
  std::size_t false_alarms = 0, misses = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    auto detector = make();
    auto found = detect(error_stream(std::uint64_t(seed), stream_length, rate), change_at, [&](bool bit) { return detector(bit); });
    false_alarms += found.before;
    if (found.first_after) delays.push_back(double(*found.first_after - change_at));
    else ++misses;
  }
  if (missed) *missed = misses;
  std::sort(delays.begin(), delays.end());
  return {delays.empty() ? 1e9 : delays[delays.size() / 2], false_alarms};
}

auto make_adwin = [] { return [detector = adwin()](bool bit) mutable { return detector.update(bit ? 1.0 : 0.0); }; };
auto make_page_hinkley = [] {
  return [detector = page_hinkley({.watch = page_hinkley_options::direction::up})](bool bit) mutable { return detector.update(bit ? 1.0 : 0.0); };
};
auto make_ddm = [] { return [detector = ddm()](bool bit) mutable { return detector.update(bit) == ddm_level::drift; }; };
}  // namespace

// The bounds below hold these parameters to the behaviour measured for them (and, in
// bench/RESULTS.md, for River's implementations on streams of the same kinds), checked on
// 20 seeded streams of error bits: 0.2 before the change at 10 000, 0.5 after it (abrupt)
// or rising to 0.5 over 2000 values (gradual).

TEST_CASE("ADWIN finds an abrupt rise in the error rate within 300 values and raises no false alarm at delta 0.002") {
  std::size_t missed = 0;
  auto [delay, false_alarms] = sweep(abrupt, make_adwin, &missed);
  CHECK(missed == 0);
  CHECK(delay < 300);
  // ADWIN's guarantee: a false cut with probability at most delta per test.
  CHECK(false_alarms <= 1);
}

TEST_CASE("ADWIN finds a gradual rise in the error rate before it completes") {
  std::size_t missed = 0;
  auto [delay, false_alarms] = sweep(gradual, make_adwin, &missed);
  CHECK(missed == 0);
  CHECK(delay < 2000);
  CHECK(false_alarms <= 1);
}

TEST_CASE("ADWIN keeps a stationary stream's window growing and its mean near the rate") {
  adwin detector;
  std::size_t alarms = 0;
  for (bool bit : error_stream(7, 100'000, stationary)) alarms += detector.update(bit ? 1.0 : 0.0) ? 1 : 0;
  CHECK(alarms <= 1);
  CHECK(detector.width() > 50'000);
  CHECK(detector.mean() == Approx(0.2).margin(0.01));
  CHECK(detector.variance() == Approx(0.16).margin(0.01));
}

TEST_CASE("ADWIN's window drops the values before a change and its mean follows the new level") {
  adwin detector;
  for (bool bit : error_stream(3, 20'000, abrupt)) detector.update(bit ? 1.0 : 0.0);
  CHECK(detector.width() < 11'000);  // the 10 000 after the change and at most a bucket before
  CHECK(detector.mean() == Approx(0.5).margin(0.03));
}

TEST_CASE("ADWIN's memory stays logarithmic in the values it saw") {
  adwin detector;
  for (int index = 0; index < 1'000'000; ++index) detector.update(double(index % 2));
  CHECK(detector.width() == 1'000'000);
  CHECK(detector.mean() == Approx(0.5));
}

TEST_CASE("Page-Hinkley finds an abrupt rise in the error rate with at most 4 false alarms per 100 000 values at threshold 50") {
  std::size_t missed = 0;
  auto [delay, false_alarms] = sweep(abrupt, make_page_hinkley, &missed);
  CHECK(missed == 0);
  // The deviation grows by about (0.5 − mean − delta) a value: λ = 50 takes a few hundred.
  CHECK(delay < 400);
  // λ = 50 on Bernoulli(0.2) noise: 1.5 to 3 false alarms per 100 000 values, River's too on
  // the same streams (bench/RESULTS.md); 20 streams × 10 000 values before the change.
  CHECK(false_alarms <= 8);
  auto [gradual_delay, gradual_false] = sweep(gradual, make_page_hinkley, &missed);
  CHECK(missed == 0);
  CHECK(gradual_delay < 2000);
  CHECK(gradual_false <= 8);
}

TEST_CASE("Page-Hinkley watches the direction it is told to") {
  page_hinkley down({.watch = page_hinkley_options::direction::down});
  page_hinkley up({.watch = page_hinkley_options::direction::up});
  bool down_fired = false, up_fired = false;
  for (bool bit : error_stream(5, 20'000, abrupt)) {
    down_fired |= down.update(bit ? 1.0 : 0.0);
    up_fired |= up.update(bit ? 1.0 : 0.0);
  }
  CHECK(up_fired);
  CHECK_FALSE(down_fired);  // the error rate only rose
}

TEST_CASE("DDM finds an abrupt rise in the error rate later than the others and warns first") {
  std::size_t missed = 0;
  auto [delay, false_alarms] = sweep(abrupt, make_ddm, &missed);
  CHECK(missed == 0);
  // DDM's known weakness: its reference (p_min + s_min) only falls as the stream grows, so
  // it is slow on a stream that was long stationary (a median near 1000 values here and in
  // River on the same streams) and raises an occasional false alarm (2 to 6 per 100 000).
  CHECK(delay < 1500);
  CHECK(false_alarms <= 16);
  ddm detector;
  bool warned_before_drift = false;
  for (bool bit : error_stream(11, 20'000, abrupt)) {
    const auto level = detector.update(bit);
    if (level == ddm_level::warning) warned_before_drift = true;
    if (level == ddm_level::drift) break;
  }
  CHECK(warned_before_drift);
}

TEST_CASE("concept drift runs the three detectors over one stream of error bits") {
  concept_drift detectors;
  concept_drift_alarms fired;
  std::size_t before_change = 0;
  const auto bits = error_stream(13, 20'000, abrupt);
  for (std::size_t index = 0; index < bits.size(); ++index) {
    auto alarms = detectors.update(bits[index]);
    if (index < change_at) before_change += alarms.any() ? 1 : 0;
    fired.adwin |= alarms.adwin;
    fired.page_hinkley |= alarms.page_hinkley;
    fired.ddm |= alarms.ddm;
  }
  CHECK(fired.adwin);
  CHECK(fired.page_hinkley);
  CHECK(fired.ddm);
  CHECK(before_change <= 1);
  CHECK(detectors.seen() == 20'000);
}

TEST_CASE("monitoring's detector settings raise no alarm while a model learns and its error falls") {
  // Error 0.9 at first, falling to 0.2 as the model learns (a time constant of 1000 values).
  std::size_t page_hinkley_alarms = 0, other_alarms = 0;
  for (int seed = 1; seed <= seeds; ++seed) {
    concept_drift detectors;  // monitoring's defaults
    page_hinkley faded({.watch = page_hinkley_options::direction::up});  // River's: α 0.9999
    std::size_t faded_alarms = 0;
    for (bool bit : error_stream(std::uint64_t(100 + seed), 20'000, [](std::size_t index) { return 0.2 + 0.7 * std::exp(-double(index) / 1000.0); })) {
      auto alarms = detectors.update(bit);
      page_hinkley_alarms += alarms.page_hinkley ? 1 : 0;
      other_alarms += (alarms.adwin ? 1 : 0) + (alarms.ddm ? 1 : 0);
      faded_alarms += faded.update(bit ? 1.0 : 0.0) ? 1 : 0;
    }
    CHECK(faded_alarms >= 1);  // why monitoring does not fade: the falling error alarms it
  }
  CHECK(page_hinkley_alarms == 0);
  CHECK(other_alarms <= 2);
}

TEST_CASE("drift detector parameters out of range are refused with the parameter named") {
  concept_drift_options options;
  CHECK(check(options).ok());
  options.adwin.delta = 0;
  REQUIRE_FALSE(check(options).ok());
  CHECK(check(options).error().message() == "adwin delta must be in (0, 1), got 0.000000");
  options = {};
  options.ddm.drift_threshold = 1.0;
  REQUIRE_FALSE(check(options).ok());
  CHECK_THAT(check(options).error().message(), Catch::Contains("ddm thresholds"));
  options = {};
  options.page_hinkley.threshold = -1;
  CHECK_THAT(check(options).error().message(), Catch::Contains("page-hinkley threshold"));
  input_drift_options input;
  CHECK(check(input).ok());
  input.window_rows = 4;
  input.blocks = 8;
  CHECK_THAT(check(input).error().message(), Catch::Contains("at least one row per block"));
}

namespace {
/// Rows of `features` values: feature f uniform in [0, 1) + shift[f].
std::vector<float> uniform_rows(std::uint64_t seed, std::size_t count, std::size_t features, const std::vector<float>& shift = {}) {
  uniform_source source(seed);
  std::vector<float> rows(count * features);
  for (std::size_t row = 0; row < count; ++row) {
    for (std::size_t feature = 0; feature < features; ++feature) {
      rows[row * features + feature] = float(source.next()) + (shift.empty() ? 0.0f : shift[feature]);
    }
  }
  return rows;
}
}  // namespace

TEST_CASE("the training reference has quantile bins and their shares") {
  auto reference = build_reference(uniform_rows(1, 10'000, 3), 3, 10);
  REQUIRE(reference.features() == 3);
  CHECK(reference.rows == 10'000);
  for (std::size_t feature = 0; feature < 3; ++feature) {
    CHECK(reference.edges[feature].size() == 10);  // 9 quantiles and the maximum
    CHECK(reference.shares[feature].size() == 11);
    double total = 0;
    for (double share : reference.shares[feature]) total += share;
    CHECK(total == Approx(1.0));
    CHECK(reference.shares[feature][0] == Approx(0.1).margin(0.03));  // edges from 512 of the rows
    CHECK(reference.shares[feature][10] == 0.0);  // nothing above the maximum
  }
  // A feature always 0 (a border pixel): "0" and "above anything trained on".
  std::vector<float> zeros(1000 * 2, 0.0f);
  auto constant = build_reference(zeros, 2, 10);
  CHECK(constant.edges[0] == std::vector<float>{0.0f});
  CHECK(constant.shares[0] == std::vector<double>{1.0, 0.0});
}

TEST_CASE("input drift stays quiet on rows like the training data and alarms on shifted ones") {
  constexpr std::size_t features = 20;
  auto reference = build_reference(uniform_rows(1, 20'000, features), features, 10);
  input_drift_options options;
  options.window_rows = 2048;
  input_drift same(reference, options);
  auto fresh = uniform_rows(2, 4096, features);
  for (std::size_t row = 0; row < 4096; ++row) REQUIRE(same.add(std::span(fresh).subspan(row * features, features)));
  auto quiet = same.statistics();
  CHECK(quiet.rows == 2048);  // the window, not everything added
  CHECK_FALSE(quiet.alarm);
  CHECK(quiet.drifted_features == 0);
  CHECK(quiet.psi_max < 0.05);
  CHECK(quiet.ks_differing == 0);

  // Two features of twenty shifted by a third of their range: 10 % drifted, above the 5 % alarm.
  std::vector<float> shift(features, 0.0f);
  shift[3] = shift[17] = 0.33f;
  auto shifted_rows = uniform_rows(3, 2048, features, shift);
  input_drift shifted(reference, options);
  for (std::size_t row = 0; row < 2048; ++row) shifted.add(std::span(shifted_rows).subspan(row * features, features));
  auto loud = shifted.statistics();
  CHECK(loud.alarm);
  CHECK(loud.drifted_features == 2);
  CHECK(loud.ks_differing == 2);
  CHECK((loud.psi_max_feature == 3 || loud.psi_max_feature == 17));
  CHECK(loud.psi[3] > 0.5);
  CHECK(loud.ks[17] == Approx(0.33).margin(0.05));
}

TEST_CASE("input drift forgets rows older than its window, refuses rows of another width, and bins NaN apart") {
  constexpr std::size_t features = 4;
  auto reference = build_reference(uniform_rows(1, 5000, features), features, 10);
  input_drift_options options;
  options.window_rows = 1024;
  options.blocks = 4;
  options.rows_min = 256;
  input_drift drift(reference, options);
  std::vector<float> shift(features, 2.0f);  // every feature above anything trained on
  auto shifted_rows = uniform_rows(2, 1024, features, shift);
  for (std::size_t row = 0; row < 1024; ++row) drift.add(std::span(shifted_rows).subspan(row * features, features));
  CHECK(drift.statistics().alarm);
  auto normal_rows = uniform_rows(3, 1024, features);
  for (std::size_t row = 0; row < 1024; ++row) drift.add(std::span(normal_rows).subspan(row * features, features));
  auto after = drift.statistics();
  CHECK(after.rows == 1024);
  CHECK_FALSE(after.alarm);  // the shifted rows left the window block by block

  std::vector<float> wrong(features + 1, 0.5f);
  CHECK_FALSE(drift.add(wrong));
  CHECK(drift.rows_in_window() == 1024);

  input_drift nans(reference, options);
  std::vector<float> nan_row(features, std::nanf(""));
  for (int row = 0; row < 300; ++row) nans.add(nan_row);
  CHECK(nans.statistics().alarm);
}
