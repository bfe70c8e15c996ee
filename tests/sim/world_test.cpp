// The simulator in-process (also under the sanitizers): a three-node cluster in virtual time
// answers every request exactly once through a serving node's crash, the same seed gives the
// same trace byte for byte (another seed another), and a planted bug in the request ledger
// is caught by the exactly-one-answer invariant.
#include <catch2/catch.hpp>

#include "sim/world.hpp"

using namespace rml;

namespace {

const std::string scenarios = std::string(RML_SOURCE_DIR) + "/sim/scenarios";

sim::world_options options_for(std::uint64_t seed) {
  sim::world_options options;
  options.seed = seed;
  auto& components = options.components;
  sim::data_spec stream;
  stream.rows = 1024;
  components.train = sim::synthetic_stream(stream, 7);
  components.feature.feature_count = 16;
  components.feature.pipeline = "standardize";
  components.feature.rows_per_batch = 32;
  components.ingest.feature_count = 16;
  components.ingest.classes = 4;
  components.trainer.architecture = "input(16); linear(16,16); relu; linear(16,4)";
  components.trainer.publish_steps = 20;
  components.source.events_per_second = 200;
  components.source.epochs = 4;
  components.serving.model = "model";
  return options;
}

sim::scenario crash_scenario() {
  auto parsed = sim::parse_scenario(
      "name: crash\ntopology: cluster.yaml\nduration: 16s\n"
      "clients: [{node: data, rate: 300, deadline: 300ms, start: 4s}]\n"
      "network: {latency_min: 500us, latency_tail: 1ms}\n"
      "faults: [{at: 9s, crash: edge-2}, {at: 12s, restart: edge-2}]\n",
      "crash.yaml", scenarios);
  if (!parsed) FAIL(parsed.error().message());
  return parsed.value();
}

}  // namespace

TEST_CASE("a simulated serving node's crash leaves no request unanswered, and a seed replays byte for byte") {
  const auto plan = crash_scenario();
  auto first = sim::run_scenario(plan, options_for(3));
  if (!first) FAIL(first.error().message());
  CAPTURE(first->trace);
  REQUIRE(first->violations.empty());
  REQUIRE(first->requests > 2000);
  REQUIRE(first->answered_ok == first->requests);
  REQUIRE(first->highest_version >= 1);
  REQUIRE(first->trace.find("edge-2 crashes (fault)") != std::string::npos);
  REQUIRE(first->trace.find("edge-2 joins as incarnation") != std::string::npos);
  auto again = sim::run_scenario(plan, options_for(3));
  REQUIRE(again.ok());
  REQUIRE(again->trace == first->trace);
  REQUIRE(again->trace_hash == first->trace_hash);
  auto other = sim::run_scenario(plan, options_for(4));
  REQUIRE(other.ok());
  REQUIRE(other->trace_hash != first->trace_hash);
  REQUIRE(sim::timeline_svg(*first).find("<svg") == 0);
}

TEST_CASE("the ledger forgetting a lost node's requests is caught as requests without an answer") {
  const auto plan = crash_scenario();
  std::size_t caught = 0;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    auto options = options_for(seed);
    options.bugs.drop_requests_of_lost_node = true;
    auto report = sim::run_scenario(plan, options);
    REQUIRE(report.ok());
    if (report->unanswered > 0) {
      REQUIRE(report->violations.front().invariant == "exactly_one_answer");
      REQUIRE(report->violations.front().what.find("got no answer") != std::string::npos);
      ++caught;
    }
  }
  REQUIRE(caught >= 2);
}
