// Monitoring: it keeps each component's latest sample, counts restarts per component, and
// writes one report line per component at its interval (virtual time); the latency
// histogram's quantiles bracket the recorded values.
#include "actors/monitoring/monitor.hpp"
#include "messaging/latency_histogram.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

TEST_CASE("the monitor keeps the latest sample per component and counts restarts") {
  test::actor_fixture f;
  std::vector<std::string> lines;
  actors::monitor_options options;
  options.report_interval = std::chrono::milliseconds(1000);
  options.sink = [&lines](const std::string& line) { lines.push_back(line); };
  auto monitor = f.hold(actors::spawn_monitor(*f.system, options));
  caf::anon_send(monitor, metrics_sample{"trainer", 1, {{"steps", 10}}});
  caf::anon_send(monitor, metrics_sample{"trainer", 2, {{"steps", 20}, {"rolling_accuracy", 0.75}}});
  caf::anon_send(monitor, child_restarted{"pipeline", "trainer", "exit_reason(kill)", 1});
  caf::anon_send(monitor, metrics_sample{"serving", 1'000'000, {{"requests", 200}}});
  caf::anon_send(monitor, metrics_sample{"serving", 3'000'000, {{"requests", 600}}});
  f.scheduler->run();
  auto report = *f.ask<actors::metrics_report>(monitor, status_atom::value).first;
  REQUIRE(report["trainer"]["steps"] == 20);
  REQUIRE(report["trainer"]["rolling_accuracy"] == 0.75);
  REQUIRE(report["trainer"]["restarts"] == 1);
  REQUIRE(report["serving"]["requests"] == 600);
  REQUIRE(report["serving"]["requests_per_s"] == Approx(200.0));
  REQUIRE(lines.empty());
  f.scheduler->advance_time(caf::timespan(std::chrono::milliseconds(1000)));
  f.scheduler->run();
  REQUIRE(lines == std::vector<std::string>{"serving: requests=600 requests_per_s=200",
                                            "trainer: restarts=1 rolling_accuracy=0.75 steps=20 steps_per_s=10000000"});
}

TEST_CASE("latency histogram quantiles bracket the recorded values") {
  latency_histogram histogram;
  for (int value = 1; value <= 1000; ++value) histogram.record(value);
  REQUIRE(histogram.count() == 1000);
  REQUIRE(histogram.max() == 1000);
  REQUIRE(histogram.quantile(0.5) >= 500);
  REQUIRE(histogram.quantile(0.5) <= 500 * 1.19);
  REQUIRE(histogram.quantile(0.99) >= 990);
  REQUIRE(histogram.quantile(1.0) == 1000);
  latency_histogram other;
  other.record(5000);
  histogram.merge(other);
  REQUIRE(histogram.max() == 5000);
  REQUIRE(histogram.count() == 1001);
}
