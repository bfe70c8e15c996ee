// Scenario files: the shipped ones parse; every error names file, line, column and field.
#include <catch2/catch.hpp>

#include <filesystem>

#include "sim/scenario.hpp"

using namespace rml;

namespace {
const std::string scenarios = std::string(RML_SOURCE_DIR) + "/sim/scenarios";

/// The error parsing `body` (after a valid header) gives, or "" when it parses.
std::string refusal(const std::string& body) {
  const std::string text = "name: t\ntopology: cluster.yaml\n" + body;
  auto parsed = sim::parse_scenario(text, "t.yaml", scenarios);
  return parsed ? std::string() : parsed.error().message();
}
}  // namespace

TEST_CASE("every shipped scenario parses and names nodes its topology or groups declare") {
  std::size_t found = 0;
  for (const auto& entry : std::filesystem::directory_iterator(scenarios)) {
    if (entry.path().extension() != ".yaml" || entry.path().filename().string().rfind("cluster", 0) == 0) continue;
    CAPTURE(entry.path().string());
    auto parsed = sim::load_scenario(entry.path().string());
    if (!parsed) FAIL(parsed.error().message());
    REQUIRE_FALSE(parsed->nodes.empty());
    REQUIRE_FALSE(parsed->invariants.empty());
    ++found;
  }
  REQUIRE(found >= 8);
  auto hundred = sim::load_scenario(scenarios + "/hundred-nodes.yaml");
  REQUIRE(hundred.ok());
  REQUIRE(hundred->nodes.size() == 100);
  REQUIRE(hundred->nodes.back().name == "edge-99");
  REQUIRE(hundred->nodes.back().labels.at("role") == "serving");
}

TEST_CASE("faults, clients and the network are read with their units and defaults") {
  auto parsed = sim::parse_scenario(
      "name: t\ntopology: cluster.yaml\nduration: 20s\nclients: [{node: edge-1, rate: 50, deadline: 250ms, start: 2s}]\n"
      "network: {latency_min: 400us, drop: 0.01}\n"
      "faults:\n  - {at: 9s, restart: edge-1, wipe: true}\n  - {at: 3s, crash: edge-1}\n  - {at: 4s, partition: [edge-2], from: [data]}\n"
      "  - {at: 5s, pause: leader, for: 1.5s}\ninvariants: [exactly_one_answer, recovery]\n",
      "t.yaml", scenarios);
  if (!parsed) FAIL(parsed.error().message());
  REQUIRE(parsed->duration == std::chrono::milliseconds(20'000));
  REQUIRE(parsed->clients.at(0).deadline == std::chrono::milliseconds(250));
  REQUIRE(parsed->clients.at(0).start == std::chrono::milliseconds(2000));
  REQUIRE(parsed->network.latency_min == std::chrono::microseconds(400));
  REQUIRE(parsed->network.drop == Approx(0.01));
  REQUIRE(parsed->network.connection_timeout == std::chrono::milliseconds(5000));
  // Faults are in time order, whatever order the file has.
  REQUIRE(parsed->faults.size() == 4);
  REQUIRE(parsed->faults[0].kind == sim::fault_kind::crash);
  REQUIRE(parsed->faults[1].other == std::vector<std::string>{"data"});
  REQUIRE(parsed->faults[2].length == std::chrono::milliseconds(1500));
  REQUIRE(parsed->faults[3].wipe);
  REQUIRE(parsed->invariants.size() == 2);
}

TEST_CASE("a scenario's errors name the file, line, column and field") {
  REQUIRE(refusal("").empty());
  REQUIRE(refusal("colour: red\n") == "t.yaml:3:1: colour: unknown field (allowed: name, description, topology, node_groups, data, clients, network, "
                                      "faults, random_faults, invariants, duration, lease_ttl, recovery_within, recovery_success, recovery_accuracy)");
  REQUIRE(refusal("faults: [{at: 1s, crash: edge-9}]\n") == "t.yaml:3:26: faults[0].crash: unknown node 'edge-9' (nodes: data, edge-1, edge-2)");
  REQUIRE(refusal("faults: [{at: 1s}]\n") == "t.yaml:3:10: faults[0]: needs exactly one of crash, restart, partition, heal, network, pause, bad_data, kill");
  REQUIRE(refusal("faults: [{at: 1s, crash: edge-1, restart: edge-1}]\n").find("needs exactly one of") != std::string::npos);
  REQUIRE(refusal("faults: [{at: soon, crash: edge-1}]\n") ==
          "t.yaml:3:15: faults[0].at: 'soon' is not a duration (a number with us, ms, s or m: 250ms, 1.5s)");
  REQUIRE(refusal("duration: 1.2.3s\n") == "t.yaml:3:11: duration: '1.2.3s' is not a duration (a number with us, ms, s or m: 250ms, 1.5s)");
  REQUIRE(refusal("duration: 10s\nfaults: [{at: 11s, crash: edge-1}]\n").find("faults[0].at: '11s' is out of range") != std::string::npos);
  REQUIRE(refusal("faults: [{at: 1s, crash: edge-1, wipe: true}]\n") == "t.yaml:3:40: faults[0].wipe: only a restart wipes a disk");
  REQUIRE(refusal("faults: [{at: 1s, pause: edge-1}]\n") == "t.yaml:3:10: faults[0].for: missing: how long the pause lasts");
  REQUIRE(refusal("clients: [{rate: 10}]\n") == "t.yaml:3:11: clients[0].node: missing: the node whose endpoint the client talks to");
  REQUIRE(refusal("clients: [{node: leader}]\n") == "t.yaml:3:18: clients[0].node: unknown node 'leader' (nodes: data, edge-1, edge-2)");
  REQUIRE(refusal("network: {drop: 2}\n") == "t.yaml:3:17: network.drop: '2' is out of range [0, 1]");
  REQUIRE(refusal("network: {jitter: 1ms}\n") ==
          "t.yaml:3:11: network.jitter: unknown field (allowed: latency_min, latency_tail, drop, duplicate, reorder, connection_timeout)");
  REQUIRE(refusal("invariants: [no_bugs]\n") ==
          "t.yaml:3:13: invariants: unknown invariant 'no_bugs' (known: exactly_one_answer, answers_in_time, versions_forward, one_controller, "
          "recovery)");
  REQUIRE(refusal("node_groups: [{prefix: edge-, count: 2}]\n") == "t.yaml:3:14: node_groups: node 'edge-1' is declared twice");
  REQUIRE(refusal("faults: [{at: 1s, partition: [etcd]}, {at: 2s, partition: edge-1, from: [etcd, data]}]\n").empty());
  REQUIRE(refusal("faults: [{at: 1s, crash: etcd}]\n") == "t.yaml:3:26: faults[0].crash: unknown node 'etcd' (nodes: data, edge-1, edge-2)");
  REQUIRE(refusal("faults: [{at: 1s, bad_data: garbage, events: 5}]\n") ==
          "t.yaml:3:29: faults[0].bad_data: unknown kind 'garbage' (allowed: nan, shape, label_noise, drift)");
  REQUIRE(refusal("faults: [{at: 1s, bad_data: nan}]\n") == "t.yaml:3:10: faults[0].events: missing: how many bad events the burst sends");
  REQUIRE(refusal("faults: [{at: 1s, crash: edge-1, events: 5}]\n").find("faults[0].events: only a bad_data burst has events") != std::string::npos);
  REQUIRE(refusal("faults: [{at: 1s, kill: trainr}]\n") ==
          "t.yaml:3:25: faults[0].kill: unknown component kind 'trainr' (allowed: source, ingest, feature, trainer, registry, serving, monitor)");
  REQUIRE(refusal("faults: [{at: 1s, kill: trainer, on: data}]\n").empty());
  auto no_topology = sim::parse_scenario("name: t\n", "t.yaml", scenarios);
  REQUIRE(no_topology.error().message() == "t.yaml:1:1: topology: missing: a topology file's path (relative to the scenario), or its text");
  auto missing_file = sim::parse_scenario("name: t\ntopology: nowhere.yaml\n", "t.yaml", scenarios);
  REQUIRE(missing_file.error().message() == "t.yaml:2:11: topology: cannot open '" + scenarios + "/nowhere.yaml'");
  auto bad_topology = sim::parse_scenario("name: t\ntopology: |\n  name: x\n  components: [{name: a, kind: trainr}]\n", "t.yaml", scenarios);
  REQUIRE(bad_topology.error().message().find("t.yaml:2:11: topology: t.yaml (topology):2:") == 0);
  auto not_yaml = sim::parse_scenario("name: [t\n", "t.yaml", scenarios);
  REQUIRE(not_yaml.error().message().find("t.yaml:") == 0);
  REQUIRE(sim::load_scenario("/nonexistent/s.yaml").error().message() == "/nonexistent/s.yaml: cannot open the scenario file");
}
