#pragma once
// The simulated cluster: the real components and the real cluster code, in virtual time,
// with only the outside simulated.
//
// Each node is its own CAF actor system under the deterministic test_coordinator (its own
// registry, so components find their peers by name exactly as on a real node); the world
// moves every node's clock together, to the next timer any of them has, and runs their
// actors until all are idle. One seeded generator draws every random choice, in an order the
// deterministic schedulers fix: same build, scenario and seed, same run, byte for byte.
//
// What is real: the components (start_pipeline: source, ingest, feature, trainer, registry,
// serving, monitor, under their supervisors), the request ledger that holds a client's
// requests and retries them on another node, membership and leases, the controller's
// election and fenced placement, the model pointer (topologies/), the at-most-once filter.
// What is simulated:
//   - etcd: memory_control_plane on the world's clock;
//   - the network: a name a node does not run is entered in its registry as a *link* — an
//     actor in the system of the node that runs it, as a BASP proxy is a local stand-in for
//     a remote actor — that delivers each message after a drawn latency (FIFO unless the
//     scenario reorders), drops or duplicates it as the network says, drops everything
//     across a partition, and goes down when its node is lost or a partition outlasts the
//     connection timeout (BASP with heartbeats). A one-way message's sender is seen on the
//     far node as a link back to it (as BASP delivers a proxy of the sender), so answers
//     to it cross the network too, and so do the versions the registry pushes to its
//     subscribers; only the response to a CAF request goes straight back (docs/simulation.md);
//   - the node's process around the components: what `rml node` does each tick (renew the
//     lease, campaign, reconcile when leading, move the model pointer, follow desired
//     state) is done here with the same classes, without its thread and sockets;
//   - clients: one per scenario client, sending predictions to its node's ledger;
//   - disks: each node's data directory is a real directory under the run's (a crash keeps
//     it, a wiping restart removes it).
//
// Faults come from the scenario at fixed times and from the seed at rates. The world records
// a trace (one line per fact: faults, joins, leaders, placements, versions, answers' counts
// per second) and every answer, and checks the invariants over them (sim/invariants.hpp).

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "sim/scenario.hpp"
#include "topologies/default_topology.hpp"

namespace rml::sim {

/// Test-only switches that plant known bugs, so that tests show the invariants catch them.
struct planted_bugs {
  /// The request ledger forgets the requests a lost node held instead of sending them again
  /// (messaging/request_ledger.hpp: planted_forget_lost_requests).
  bool drop_requests_of_lost_node = false;
};

struct world_options {
  std::uint64_t seed = 1;
  /// Where the nodes' data directories go (a fresh directory per run is made under it).
  std::string scratch_directory;
  /// The components' options, as `rml run` builds them from the topology (the world sets
  /// the data directory, the dataset and the local kinds per node).
  topologies::pipeline_options components;
  planted_bugs bugs;
  /// Called with virtual milliseconds done and the duration, about every simulated second.
  std::function<void(std::int64_t, std::int64_t)> progress;
};

/// One answer as the client saw it.
struct answer_record {
  std::uint64_t request_id = 0;
  std::int64_t sent_us = 0, deadline_us = 0, answered_us = 0;
  /// 0: a prediction; else the error code (messaging/errors.hpp errc).
  std::uint8_t error = 0;
  std::uint64_t model_version = 0;
};

struct violation {
  std::string invariant;
  std::int64_t at_ms = 0;
  std::string what;
};

struct run_report {
  std::string scenario;
  std::uint64_t seed = 0;
  std::string trace;
  /// xxHash64 of the trace, hex.
  std::string trace_hash;
  std::vector<violation> violations;
  std::uint64_t requests = 0, answered_ok = 0, answered_error = 0, unanswered = 0, answered_twice = 0;
  std::uint64_t highest_version = 0;
  std::uint64_t faults = 0;
  double simulated_seconds = 0, wall_seconds = 0;
  /// Per simulated second: predictions answered ok, errors, p99 latency (ms), model version,
  /// whether a fault was active (for the report's timeline).
  struct second {
    std::uint32_t ok = 0, errors = 0;
    double p99_ms = 0;
    std::uint64_t version = 0;
    /// Share of the predictions answered ok that named the row's true class.
    double accuracy = 0;
    bool faulted = false;
  };
  std::vector<second> timeline;
  std::vector<std::pair<double, std::string>> events;
};

/// The stream a scenario's source replays: Gaussian blobs as `spec` says (class centres and
/// rows from `seed`; `rml sim` uses one fixed seed, so every run of a sweep trains on the
/// same data and the seeds vary the faults and the timing).
std::shared_ptr<data::dataset> synthetic_stream(const data_spec& spec, std::uint64_t seed);

/// Runs `plan` once with `options`. The error says why it could not run at all (the
/// components' options, the scratch directory); violations are in the report.
result<run_report> run_scenario(const scenario& plan, const world_options& options);

/// The report as an SVG timeline (throughput, errors, p99 latency, model version; fault
/// windows shaded; events marked).
std::string timeline_svg(const run_report& report);

}  // namespace rml::sim
