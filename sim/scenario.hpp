#pragma once
// A simulation scenario (YAML, yaml-cpp): the topology the cluster runs, the simulated nodes,
// the workload, the network, the faults and the invariants checked, and how long it runs.
// `rml sim SCENARIO --seed N` runs one (sim/world.hpp); sim/scenarios/ ships the scenarios
// and docs/simulation.md describes every field. Errors name file, line, column and field,
// as topology files' do:
//   "node-loss.yaml:12:9: faults[1].crash: unknown node 'edge-9' (nodes: data, edge-1, edge-2)"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "compute/status.hpp"
#include "topologies/topology_file.hpp"

namespace rml::sim {

using std::chrono::milliseconds;
using std::chrono::microseconds;

/// Nodes besides the topology's own, for clusters larger than a file lists: `count` nodes
/// named prefix1..prefixN.
struct node_group {
  std::string prefix;
  std::uint32_t count = 0;
  std::map<std::string, std::string> labels;
  std::uint32_t cores = 4;
};

/// What a client on a node sends: predictions through the node's request ledger (the one an
/// endpoint holds a client's connection with), one row each, at a rate, with a deadline.
struct client_spec {
  std::string node;
  double requests_per_second = 100;
  milliseconds deadline{200};
  /// When it starts sending (a cluster serves once its first model is published).
  milliseconds start{0};
};

/// The simulated network between nodes. Latency is drawn per message: `latency_min` plus an
/// exponential tail of mean `latency_tail`; a link is FIFO (as BASP over TCP is) unless
/// `reorder`. A partition longer than `connection_timeout` ends the links across it (BASP's
/// heartbeat: its proxies go down).
struct network_spec {
  microseconds latency_min{200};
  microseconds latency_tail{300};
  double drop = 0;
  double duplicate = 0;
  bool reorder = false;
  milliseconds connection_timeout{5000};
  friend bool operator==(const network_spec&, const network_spec&) = default;
};

/// The synthetic stream the source replays (Gaussian blobs from the seed): small, so that the
/// real trainer and serving run fast in virtual time.
struct data_spec {
  std::uint32_t rows = 2048;
  std::uint32_t features = 16;
  std::uint32_t classes = 4;
  double events_per_second = 200;
  /// Blob spread: larger is harder.
  double noise = 1.0;
};

enum class fault_kind {
  crash,       // the node's process dies: its actors stop, its lease runs out
  restart,     // a crashed node starts again (a new incarnation), with its disk (or without: wipe)
  partition,   // the nodes of `nodes` cannot reach those of `other` (default: every other node);
               // "etcd" on either side cuts the control plane off instead (alone: from every node)
  heal,        // partitions end (all of them)
  network,     // the network changes (latency, drop, duplicate, reorder) from now on
  pause,       // the node's process stops for `length` (a GC or VM pause): no message, no renewal
  bad_data,    // a burst of `events` bad events to ingest, of `data_kind`
  kill,        // a component (`component`) dies on the nodes named (default: every node running
               // it); its supervisor restarts it
};

/// What a bad-data burst sends: features that are NaN, rows of the wrong width, true rows
/// with random labels, or rows from a shifted distribution (every feature + 3 standard
/// deviations) with their true labels.
enum class bad_data_kind { nan, shape, label_noise, drift };

struct fault {
  milliseconds at{0};
  fault_kind kind = fault_kind::crash;
  /// Node names; "leader" (the placement controller when the fault happens) and "random" (a
  /// node drawn from the seed) are resolved then.
  std::vector<std::string> nodes;
  std::vector<std::string> other;
  /// restart: the node's data directory is wiped first (a lost disk).
  bool wipe = false;
  network_spec network;
  milliseconds length{0};
  bad_data_kind data_kind = bad_data_kind::nan;
  std::string component;
  std::uint32_t events = 0;
  topologies::source_position position;
};

/// Faults drawn from the seed: on average `per_minute` node crashes a minute among the nodes
/// named (or all but the first when none are), each restarted `restart_after` later, and as
/// many partitions isolating one node for `partition_length`; none after `until`.
struct random_faults {
  double crashes_per_minute = 0;
  double partitions_per_minute = 0;
  milliseconds restart_after{5000};
  milliseconds partition_length{3000};
  std::vector<std::string> nodes;
  milliseconds until{0};
};

enum class invariant {
  exactly_one_answer,  // every request gets exactly one answer (a prediction or an error)
  answers_in_time,     // every answer comes by its deadline plus the ledger's grace
  versions_forward,    // the model pointer never moves back; no answer from above it
  one_controller,      // at most one controller acts per epoch: no deposed controller's write lands
  recovery,            // after the last fault, predictions succeed again within `recovery_within`
                       // (and are right at `recovery_accuracy`, when set)
};

const char* to_string(invariant check);
const char* to_string(fault_kind kind);
const char* to_string(bad_data_kind kind);

struct scenario {
  std::string name;
  std::string file;
  std::string description;
  /// The topology's text and what it declares (nodes, components, placement).
  std::string topology_text;
  topologies::topology topology;
  std::vector<node_group> node_groups;
  /// The nodes in order: the topology's, then the groups'.
  std::vector<topologies::node_spec> nodes;
  data_spec data;
  std::vector<client_spec> clients;
  network_spec network;
  std::vector<fault> faults;
  random_faults random;
  std::vector<invariant> invariants;
  milliseconds duration{30'000};
  /// Membership lease TTL of every node.
  milliseconds lease_ttl{3000};
  /// After the last fault: within this, the success share of a second's predictions is back
  /// above `recovery_success` (the recovery invariant).
  milliseconds recovery_within{10'000};
  double recovery_success = 0.95;
  /// The share of right answers that second must reach too (0: not checked).
  double recovery_accuracy = 0;
};

/// Reads a scenario file; a relative `topology:` path is read from the scenario's directory.
result<scenario> load_scenario(const std::string& path);
/// Parses scenario text; `file` names it in errors, `directory` resolves a topology path.
result<scenario> parse_scenario(const std::string& text, const std::string& file, const std::string& directory);

/// "250ms", "3s", "1.5s", "400us", "2m": the error names `field`.
result<microseconds> parse_duration(const std::string& text, const std::string& field);

}  // namespace rml::sim
