#pragma once
// The default topology, in one process: what `rml run` runs. Its wiring lives here, in one
// place; topologies/default.yaml declares the same pipeline as a topology file, whose
// options, serving replicas and supervisor intensity `rml run` takes (topology_file.hpp).
//
//   source ──► ingest ──► durable log ──► feature ──► trainer ──► registry ──► serving
//   (serving: the router; per version a lane of batching queue + replica pool)
//
// A monitor collects every component's metrics and the restart reports.
// Every component runs under one supervisor (one_for_one): a crashed component restarts,
// recovers (the trainer from its checkpoint, the feature reader from the trainer's
// position, the registry from disk, serving from the registry) and its peers find the new
// instance by name in the actor system's registry (messaging/atoms.hpp names).
// Durable state lives under `data_dir`: log/ (events, offsets, checkpoints), registry/.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "actors/feature/feature.hpp"
#include "actors/ingestion/dataset_source.hpp"
#include "actors/ingestion/ingest.hpp"
#include "actors/monitoring/monitor.hpp"
#include "actors/registry/registry.hpp"
#include "actors/serving/router.hpp"
#include "actors/training/trainer.hpp"
#include "messaging/telemetry.hpp"

namespace rml::topologies {

struct pipeline_options {
  /// Root of all durable state.
  std::string data_dir = "rml-data";
  /// The dataset the source replays (features raw: the pipeline scales them).
  std::shared_ptr<const data::dataset> train;
  actors::dataset_source_options source;
  actors::ingest_options ingest;
  actors::feature_options feature;
  actors::trainer_options trainer;
  /// The registry's validation gate (its directory is data_dir/registry).
  double registry_accuracy_drop_max = 0.1;
  /// Serving: version policy, batching and the replica pools (what the sockets talk to).
  actors::router_options serving;
  actors::monitor_options monitor;
  /// Restart intensity of the pipeline's supervisor.
  int restart_intensity = 10;
  std::chrono::milliseconds restart_period{10'000};
  /// Receives a messaging::child_restarted per restart, besides the monitor, when set.
  caf::actor restart_reports;
  /// The node's metrics and trace, handed to every component (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
  /// The component kinds this process runs (source, ingest, feature, trainer, registry,
  /// serving, monitor); empty: all of them. A cluster node runs the ones placed on it and
  /// finds the others on their nodes (topologies/peer_directory.hpp). Feature reads the
  /// event log ingest writes, so the two run in one process.
  std::set<std::string> local_kinds;
};

/// The name each component kind registers under in its actor system (messaging/atoms.hpp
/// names), by kind: how a node, or the simulator's, finds and erases a component's entry.
const std::map<std::string, caf::atom_value>& component_names();

/// The group a kind runs in on a node, under one supervisor: ingest, feature and the trainer
/// share the event log (its events, offsets and checkpoints), so they start and stop
/// together ("log"); every other kind is a group of its own, so a change in what is placed on
/// a node restarts only what changed.
std::string process_group(const std::string& kind);

/// Whether `options` runs components of `kind` in this process.
bool runs_locally(const pipeline_options& options, const std::string& kind);

/// Checks every component's options; the error names the component and field.
status validate(const pipeline_options& options);

struct running_pipeline {
  caf::actor supervisor;
  /// The event log, when a component that uses it (ingest, feature, trainer) runs here.
  std::shared_ptr<messaging::event_log> log;
};

/// Opens the durable state and starts the supervised components. The error names what
/// could not be opened.
result<running_pipeline> start_pipeline(caf::actor_system& system, pipeline_options options);

}  // namespace rml::topologies
