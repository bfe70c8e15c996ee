// The metrics registry renders Prometheus' text format exactly: HELP and TYPE lines,
// escaped label values, cumulative histogram buckets ending in +Inf, _sum and _count.
#include <catch2/catch.hpp>

#include "messaging/metrics_registry.hpp"

#include <atomic>
#include <string>
#include <thread>
#include <vector>
#include "messaging/trace.hpp"

using namespace rml::messaging;

TEST_CASE("counters, gauges and histograms render in the Prometheus text format") {
  metrics::registry registry;
  registry.get_counter("rml_test_total", "Things counted", {{"kind", "a\"b"}}).add(3);
  registry.get_gauge("rml_test_depth", "A depth").set(2.5);
  auto& histogram = registry.get_histogram("rml_test_seconds", "Latency", {{"model", "m"}}, {0.1, 1.0});
  histogram.observe(0.05);
  histogram.observe(0.5);
  histogram.observe(7);
  // The same series is found again, not created twice.
  registry.get_counter("rml_test_total", "Things counted", {{"kind", "a\"b"}}).add(1);
  REQUIRE(registry.render() ==
          "# HELP rml_test_depth A depth\n# TYPE rml_test_depth gauge\nrml_test_depth 2.5\n"
          "# HELP rml_test_seconds Latency\n# TYPE rml_test_seconds histogram\n"
          "rml_test_seconds_bucket{model=\"m\",le=\"0.10000000000000001\"} 1\n"
          "rml_test_seconds_bucket{model=\"m\",le=\"1\"} 2\n"
          "rml_test_seconds_bucket{model=\"m\",le=\"+Inf\"} 3\n"
          "rml_test_seconds_sum{model=\"m\"} 7.5499999999999998\n"
          "rml_test_seconds_count{model=\"m\"} 3\n"
          "# HELP rml_test_total Things counted\n# TYPE rml_test_total counter\nrml_test_total{kind=\"a\\\"b\"} 4\n");
}

TEST_CASE("the trace keeps the newest events and renders them as JSON lines") {
  trace_log trace;
  for (int index = 0; index < int(trace_log::ring_events_max) + 10; ++index) trace.record({index, "batcher/m/main", "batch_closed", "rows=1"});
  REQUIRE(trace.recorded() == trace_log::ring_events_max + 10);
  auto recent = trace.recent(2);
  REQUIRE(recent.size() == 2);
  REQUIRE(recent.back().timestamp_us == std::int64_t(trace_log::ring_events_max) + 9);
  REQUIRE(to_json_line({5, "router/m", "canary_promoted", "candidate=\"2\""}) ==
          "{\"timestamp_us\":5,\"component\":\"router/m\",\"kind\":\"canary_promoted\",\"detail\":\"candidate=\\\"2\\\"\"}");
}

// Run under ThreadSanitizer by scripts/setup.sh sanitize: the registry and the trace are
// written from every actor and endpoint thread while /metrics and /trace read them.
TEST_CASE("the registry and the trace take updates from many threads while they render", "[concurrency]") {
  metrics::registry registry;
  trace_log trace;
  constexpr int threads = 4, updates = 2000;
  std::atomic<bool> done{false};
  std::thread reader([&] {
    while (!done.load()) {
      (void)registry.render();
      (void)trace.recent(16);
    }
  });
  std::vector<std::thread> writers;
  for (int thread = 0; thread < threads; ++thread) {
    writers.emplace_back([&, thread] {
      for (int index = 0; index < updates; ++index) {
        registry.get_counter("rml_concurrent_total", "Counted from every thread", {{"thread", std::to_string(index % 3)}}).add();
        registry.get_histogram("rml_concurrent_seconds", "Observed from every thread").observe(0.001 * index);
        registry.get_gauge("rml_concurrent_gauge", "Set from every thread").set(thread);
        trace.record({index, "thread/" + std::to_string(thread), "update", "index=" + std::to_string(index)});
      }
    });
  }
  for (auto& writer : writers) writer.join();
  done = true;
  reader.join();
  const std::string text = registry.render();
  REQUIRE(text.find("rml_concurrent_seconds_count 8000\n") != std::string::npos);
  double counted = 0;
  for (int label = 0; label < 3; ++label) counted += registry.get_counter("rml_concurrent_total", "Counted from every thread", {{"thread", std::to_string(label)}}).value();
  REQUIRE(counted == threads * updates);
  REQUIRE(trace.recorded() == std::uint64_t(threads) * updates);
}
