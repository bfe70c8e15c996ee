#pragma once
// Topology files: what runs where, declared in YAML (yaml-cpp) and checked before anything
// starts. A topology names the nodes (or the labels and cores a node must have), the
// components (kind, options, replicas, placement), the streams between them and the
// supervision tree. `rml topology check FILE` validates one; `rml topology show FILE` prints
// the placement plan. docs/topologies.md describes the format; topologies/default.yaml is
// the default topology of `rml run` (embedded in the binary), topologies/examples/ has a
// two-node and a three-node one.
//
// Every error names the file, line and column, the field and what is allowed there:
//   "cluster.yaml:14:11: components[2].kind: unknown kind 'trainr' (allowed: source, ingest,
//    feature, trainer, registry, serving, monitor)"
//
// `rml run --topology FILE` runs a one-process topology (apps/rml/run_command.cpp: options,
// serving replicas, the supervisor's intensity); deploying a topology across nodes (the etcd
// control plane) builds on this format.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "compute/status.hpp"

namespace rml::topologies {

/// Where something was written: file, 1-based line and column.
struct source_position {
  std::string file;
  int line = 0;
  int column = 0;
};

std::string to_string(const source_position& at);

struct node_spec {
  std::string name;
  std::map<std::string, std::string> labels;
  /// Cores the node offers to components.
  std::uint32_t cores = 1;
  source_position at;
  /// GPUs the node offers (a replica that asks for GPUs goes only where enough are free).
  std::uint32_t gpus = 0;
};

struct placement_spec {
  /// Runs on this node only (by name), when set.
  std::string node;
  /// Runs only on nodes with all these labels.
  std::map<std::string, std::string> node_selector;
  /// No two replicas of the component on one node.
  bool anti_affinity = false;
  /// Cores one replica takes on its node.
  std::uint32_t cores = 1;
  /// GPUs one replica takes on its node (0: none needed).
  std::uint32_t gpus = 0;
};

/// How the cluster's placement controller scales a component between its replicas min and
/// max (topologies/autoscaler.hpp). A look is one pass of the controller (each node renews
/// its lease every third of the TTL; the leader looks then), over the load each node running
/// the component reported.
struct scaling_spec {
  /// Looks in a row with a backlog on its nodes (on average, half their lanes' looks or more)
  /// before a replica is added.
  std::uint32_t up_after = 2;
  /// Looks in a row with no backlog and the replicas' compute small enough that one fewer
  /// would each carry at most `down_utilization` of the compute per replica that last made a
  /// backlog (of a replica's whole time before any did), before one is removed.
  std::uint32_t down_after = 10;
  double down_utilization = 0.5;
};

struct component_spec {
  std::string name;
  std::string kind;
  std::map<std::string, std::string> options;
  std::uint32_t replicas_min = 1;
  std::uint32_t replicas_max = 1;
  scaling_spec scaling;
  placement_spec placement;
  source_position at;
};

struct stream_spec {
  std::string from;
  std::string to;
  source_position at;
};

struct supervisor_spec {
  std::string name;
  /// one_for_one, one_for_all or rest_for_one (supervision/supervisor.hpp).
  std::string strategy = "one_for_one";
  std::uint32_t intensity = 10;
  std::uint32_t period_ms = 10'000;
  /// Components and supervisors, by name.
  std::vector<std::string> children;
  source_position at;
};

struct topology {
  std::string name;
  std::vector<node_spec> nodes;
  std::vector<component_spec> components;
  std::vector<stream_spec> streams;
  std::vector<supervisor_spec> supervisors;
};

/// The component kinds a topology may name. Streams go only the way data flows (source →
/// ingest → feature → trainer → registry → serving, and any of them → monitor), so a
/// topology's streams cannot form a cycle.
const std::vector<std::string>& component_kinds();

/// Parses and validates a topology; `file` names it in errors. Any error makes the whole
/// topology invalid: the first one found is returned.
result<topology> parse_topology(const std::string& text, const std::string& file);

/// Reads, parses and validates the topology in `path`.
result<topology> load_topology(const std::string& path);

/// The default topology of `rml run` (topologies/default.yaml, embedded).
const std::string& default_topology_text();

/// Where each replica runs.
struct placed_replica {
  std::string component;
  std::uint32_t replica = 0;  // 0-based
  std::string node;
  std::uint32_t cores = 0;
  std::uint32_t gpus = 0;
};

struct placement_plan {
  std::vector<placed_replica> replicas;
  /// Cores and GPUs used per node, by node name.
  std::map<std::string, std::uint32_t> cores_used;
  std::map<std::string, std::uint32_t> gpus_used;
  /// With partial placement: why each replica that fits no node was left out.
  std::vector<std::string> unplaced;
};

/// Places every component's minimum replicas on the topology's nodes: each replica on the
/// eligible node (its node, selector, free cores and GPUs, anti-affinity) with the most free cores,
/// ties to the node declared first — deterministic. With `keep` (the plan in force), a
/// replica stays on its node while that node is still eligible, so a change (a node lost or
/// joined, a component scaled) moves only what it must. The error names the component, what
/// it needs and why each node does not fit; with `partial`, that reason goes to the plan's
/// `unplaced` instead and the rest is placed.
result<placement_plan> plan_placement(const topology& declared, const placement_plan* keep = nullptr, bool partial = false);

/// The plan as text: one block per node with its components, then replica ranges.
std::string describe(const topology& declared, const placement_plan& plan);

}  // namespace rml::topologies
