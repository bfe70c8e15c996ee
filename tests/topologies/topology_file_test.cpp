// Topology files: the default topology and the shipped examples parse and place; every kind
// of mistake is refused with file, line, column, field and what is allowed.
#include "topologies/topology_file.hpp"

#include <catch2/catch.hpp>

#include <set>
#include <string>

using namespace rml;
using namespace rml::topologies;

namespace {
/// The error message of a topology that must be refused.
std::string refusal(const std::string& text) {
  auto parsed = parse_topology(text, "t.yaml");
  if (parsed) FAIL("accepted:\n" << text);
  return parsed.error().message();
}

const std::string pipeline_components = R"(components:
  - {name: src, kind: source}
  - {name: in, kind: ingest}
  - {name: serve, kind: serving}
)";

std::string node_of(const placement_plan& plan, const std::string& component, std::uint32_t replica = 0) {
  for (const auto& placed : plan.replicas) {
    if (placed.component == component && placed.replica == replica) return placed.node;
  }
  return "";
}
}  // namespace

TEST_CASE("the default topology and the examples are valid and place every replica") {
  auto declared = parse_topology(default_topology_text(), "default.yaml");
  REQUIRE(declared);
  REQUIRE(declared->components.size() == 7);
  REQUIRE(declared->supervisors.size() == 1);
  auto plan = plan_placement(*declared);
  REQUIRE(plan);
  REQUIRE(plan->replicas.size() == 7);
  REQUIRE(node_of(*plan, "trainer") == "local");

  auto two = load_topology(RML_SOURCE_DIR "/topologies/examples/two-node.yaml");
  REQUIRE(two);
  auto two_plan = plan_placement(*two);
  REQUIRE(two_plan);
  // Anti-affinity puts the two serving replicas on different nodes.
  REQUIRE(node_of(*two_plan, "serving", 0) != node_of(*two_plan, "serving", 1));
  REQUIRE(node_of(*two_plan, "trainer") == "data");
  REQUIRE(node_of(*two_plan, "monitor") == "edge");
  REQUIRE(describe(*two, *two_plan).find("serving [serving] replica 2 of 2 (scales to 4)") != std::string::npos);

  auto three = load_topology(RML_SOURCE_DIR "/topologies/examples/three-node.yaml");
  REQUIRE(three);
  auto three_plan = plan_placement(*three);
  REQUIRE(three_plan);
  REQUIRE(node_of(*three_plan, "trainer") == "edge-1");  // the only node labelled gpu: "1"
  std::set<std::string> serving_nodes;
  for (std::uint32_t replica = 0; replica < 3; ++replica) serving_nodes.insert(node_of(*three_plan, "serving", replica));
  REQUIRE(serving_nodes.size() == 3);
}

TEST_CASE("a file that is not YAML, or not a topology, is refused with its position") {
  REQUIRE(refusal("name: [unclosed\n") .find("t.yaml:") == 0);
  REQUIRE(refusal("name: [unclosed\n").find("not YAML") != std::string::npos);
  REQUIRE(refusal("- a list\n") == "t.yaml:1:1: expected a topology (a map with name, nodes, components, streams, supervision)");
  REQUIRE(refusal("name: x\n" + pipeline_components + "stream: []\n") ==
          "t.yaml:6:1: stream: unknown field (allowed: components, name, nodes, streams, supervision)");
  REQUIRE(refusal("components:\n  - {name: a, kind: source}\n") == "t.yaml:1:1: name: missing (a topology has a name)");
  REQUIRE(refusal("name: 'has space'\n" + pipeline_components).find("t.yaml:1:7: name: 'has space' is not a name") == 0);
}

TEST_CASE("components: unknown kinds, fields, options, duplicates and replicas out of range are refused by name") {
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: a, kind: trainr}\n") ==
          "t.yaml:3:21: components[0].kind: unknown kind 'trainr' (allowed: source, ingest, feature, trainer, registry, serving, monitor)");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: a, kind: source, replica: 2}\n") ==
          "t.yaml:3:29: components[0].replica: unknown field (allowed: kind, name, options, placement, replicas, scaling)");
  REQUIRE(refusal("name: x\ncomponents:\n  - name: a\n    kind: trainer\n    options: {learning_rate: 0.1}\n") ==
          "t.yaml:5:15: components[0].options.learning_rate: not an option of a trainer (allowed: model, batch, lr, momentum, "
          "weight-decay, seed, threads, device, publish-steps, clip-gradient-norm, drift-reference-rows)");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: a, kind: source}\n  - {name: a, kind: ingest}\n") ==
          "t.yaml:4:12: components[1].name: component 'a' is declared twice (first at t.yaml:3:5)");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: t, kind: trainer, replicas: 2}\n") ==
          "t.yaml:3:40: components[0].replicas: 2 is out of range (a whole number in [1, 1]); a trainer runs at most 1");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: 0}\n") ==
          "t.yaml:3:40: components[0].replicas: 0 is out of range (a whole number in [1, 256])");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: {min: 3, max: 2}}\n") ==
          "t.yaml:3:40: components[0].replicas: max (2) is below min (3)");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: many}\n") ==
          "t.yaml:3:40: components[0].replicas: 'many' is not a whole number in [1, 256]");
  REQUIRE(refusal("name: x\ncomponents: []\n") == "t.yaml:2:13: components: expected a non-empty list of components");
}

TEST_CASE("nodes and placement: duplicates, unknown nodes and impossible placements are refused, naming why each node does not fit") {
  const std::string nodes = "name: x\nnodes:\n  - {name: a, cores: 2, labels: {gpu: '1'}}\n  - {name: b, cores: 1}\n";
  REQUIRE(refusal("name: x\nnodes:\n  - {name: a}\n  - {name: a}\ncomponents:\n  - {name: s, kind: source}\n") ==
          "t.yaml:4:12: nodes[1].name: node 'a' is declared twice (first at t.yaml:3:5)");
  REQUIRE(refusal(nodes + "components:\n  - {name: s, kind: source, placement: {node: c}}\n") ==
          "t.yaml:6:47: components[0].placement.node: unknown node 'c' (declared: a, b)");
  REQUIRE(refusal(nodes + "components:\n  - {name: s, kind: serving, replicas: 3, placement: {anti_affinity: true}}\n") ==
          "t.yaml:6:5: components.s: replica 3 of 3 fits no node (a: already runs a replica (anti_affinity); b: already runs a "
          "replica (anti_affinity))");
  REQUIRE(refusal(nodes + "components:\n  - {name: t, kind: trainer, placement: {node_selector: {gpu: '2'}}}\n") ==
          "t.yaml:6:5: components.t: replica 1 of 1 fits no node (a: lacks label gpu=2; b: lacks label gpu=2)");
  REQUIRE(refusal(nodes + "components:\n  - {name: s, kind: serving, replicas: 2, placement: {cores: 2}}\n") ==
          "t.yaml:6:5: components.s: replica 2 of 2 fits no node (a: 0 of 2 cores free, needs 2; b: 1 of 1 cores free, needs 2)");
  // GPUs: a replica that asks for one goes only where one is free.
  const std::string gpu_nodes = "name: x\nnodes:\n  - {name: a, cores: 4, gpus: 1}\n  - {name: b, cores: 8}\n";
  REQUIRE(refusal(gpu_nodes + "components:\n  - {name: t, kind: serving, replicas: 2, placement: {gpus: 1}}\n") ==
          "t.yaml:6:5: components.t: replica 2 of 2 fits no node (a: 0 of 1 GPUs free, needs 1; b: 0 of 0 GPUs free, needs 1)");
  REQUIRE(refusal(gpu_nodes + "components:\n  - {name: t, kind: trainer, placement: {gpus: 65}}\n").find("placement.gpus") != std::string::npos);
  auto gpu_plan = plan_placement(*parse_topology(gpu_nodes + "components:\n  - {name: t, kind: trainer, placement: {gpus: 1}}\n", "t.yaml"));
  REQUIRE(node_of(*gpu_plan, "t", 0) == "a");  // though b has more cores free
  REQUIRE(gpu_plan->gpus_used.at("a") == 1);
  REQUIRE(refusal(nodes + "components:\n  - {name: s, kind: source, placement: {anti_affinity: maybe}}\n") ==
          "t.yaml:6:56: components[0].placement.anti_affinity: 'maybe' is not true or false");
  // Placement is by free cores: the second serving replica goes where more is left.
  auto declared = parse_topology(nodes + "components:\n  - {name: s, kind: serving, replicas: 2}\n", "t.yaml");
  REQUIRE(declared);
  auto plan = plan_placement(*declared);
  REQUIRE(plan);
  REQUIRE(node_of(*plan, "s", 0) == "a");
  REQUIRE(node_of(*plan, "s", 1) == "a");  // a had 1 free of 2, b 1 of 1: ties go to the node declared first
  REQUIRE(plan->cores_used.at("a") == 2);
}

TEST_CASE("streams: unknown components, duplicates and directions data does not flow are refused") {
  const std::string head = "name: x\n" + pipeline_components;
  REQUIRE(refusal(head + "streams:\n  - {from: src, to: trainer}\n") == "t.yaml:7:21: streams[0].to: unknown component 'trainer' (declared: src, in, serve)");
  REQUIRE(refusal(head + "streams:\n  - {from: serve, to: src}\n") ==
          "t.yaml:7:5: streams[0]: a serving (serve) cannot stream to a source (src); a serving streams to: monitor");
  REQUIRE(refusal(head + "streams:\n  - {from: src, to: in}\n  - {from: src, to: in}\n") ==
          "t.yaml:8:5: streams[1]: declared twice (first at t.yaml:7:5)");
}

TEST_CASE("supervision: one tree over every component, known strategies and children") {
  const std::string head = "name: x\n" + pipeline_components + "supervision:\n";
  REQUIRE(refusal(head + "  - {name: root, strategy: all_for_one, children: [src, in, serve]}\n") ==
          "t.yaml:7:28: supervision[0].strategy: unknown strategy 'all_for_one' (allowed: one_for_all, one_for_one, rest_for_one)");
  REQUIRE(refusal(head + "  - {name: root, children: [src, in, serve, ghost]}\n") == "t.yaml:7:5: supervision.root.children: unknown child 'ghost'");
  REQUIRE(refusal(head + "  - {name: root, children: [src, in]}\n") == "t.yaml:5:5: components.serve: no supervisor has it among its children");
  REQUIRE(refusal(head + "  - {name: root, children: [src, in, serve]}\n  - {name: other, children: [src]}\n") ==
          "t.yaml:8:5: supervision.other.children: 'src' is already supervised by root (one parent each)");
  REQUIRE(refusal(head + "  - {name: a, children: [src, in]}\n  - {name: b, children: [serve]}\n") ==
          "t.yaml:7:5: supervision: expected one root supervisor, found a, b");
  REQUIRE(refusal(head + "  - {name: root, children: [src, in, serve]}\n  - {name: p, children: [q]}\n  - {name: q, children: [p]}\n") ==
          "t.yaml:8:5: supervision.p: not under the root supervisor root (supervisors that supervise each other in a cycle)");
  REQUIRE(refusal(head + "  - {name: src, children: [in]}\n") == "t.yaml:7:12: supervision[0].name: 'src' already names a component");
  REQUIRE(refusal(head + "  - {name: root, children: []}\n") ==
          "t.yaml:7:28: supervision[0].children: expected a non-empty list of component or supervisor names");
}

TEST_CASE("feature is placed where ingest is (it reads ingest's event log), and says so when it cannot be") {
  const std::string nodes = R"(name: t
nodes:
  - {name: big, cores: 16, labels: {role: data}}
  - {name: small, cores: 4, labels: {role: data}}
)";
  // Declared before ingest, with room on the bigger node: still placed with ingest.
  auto declared = parse_topology(nodes + R"(components:
  - {name: feat, kind: feature, placement: {node_selector: {role: data}}}
  - {name: in, kind: ingest, placement: {node: small}}
)", "t.yaml");
  REQUIRE(declared);
  auto plan = plan_placement(*declared);
  REQUIRE(plan);
  CHECK(node_of(*plan, "in") == "small");
  CHECK(node_of(*plan, "feat") == "small");

  // Declared with nodes, the file itself is refused: the plan is checked as it is read.
  const auto why = refusal(nodes + R"(components:
  - {name: in, kind: ingest, placement: {node: small}}
  - {name: feat, kind: feature, placement: {node: big}}
)");
  CHECK(why.find("components.feat: replica 1 of 1 fits no node (big: runs no ingest (feature reads the event log of ingest, in its "
                 "process); small: not node big)") != std::string::npos);
}

TEST_CASE("scaling: only a component with replicas {min, max} scales, and its looks and fraction are checked by name") {
  auto parsed = parse_topology("name: x\ncomponents:\n  - name: s\n    kind: serving\n    replicas: {min: 1, max: 3}\n"
                               "    scaling: {up_after: 3, down_after: 7, down_utilization: 0.25}\n", "t.yaml");
  REQUIRE(parsed.ok());
  REQUIRE(parsed->components[0].scaling.up_after == 3);
  REQUIRE(parsed->components[0].scaling.down_after == 7);
  REQUIRE(parsed->components[0].scaling.down_utilization == 0.25);
  auto defaults = parse_topology("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: {min: 1, max: 3}}\n", "t.yaml");
  REQUIRE(defaults->components[0].scaling.up_after == 2);
  REQUIRE(defaults->components[0].scaling.down_after == 10);
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: 2, scaling: {up_after: 2}}\n") ==
          "t.yaml:3:52: components[0].scaling: only a component with replicas {min, max} and max above min scales");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: {min: 1, max: 2}, scaling: {up_afte: 2}}\n") ==
          "t.yaml:3:68: components[0].scaling.up_afte: unknown field (allowed: down_after, down_utilization, up_after)");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: {min: 1, max: 2}, scaling: {down_after: 0}}\n") ==
          "t.yaml:3:80: components[0].scaling.down_after: 0 is out of range (a whole number in [1, 1000])");
  REQUIRE(refusal("name: x\ncomponents:\n  - {name: s, kind: serving, replicas: {min: 1, max: 2}, scaling: {down_utilization: 1.5}}\n") ==
          "t.yaml:3:86: components[0].scaling.down_utilization: '1.5' is not a fraction in (0, 1]");
}
