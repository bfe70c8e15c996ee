#pragma once
// Atoms of rml's actor interfaces: the verbs of requests that carry no other data.

#include <caf/atom.hpp>

namespace rml::messaging {

/// Asks a component for its status.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// Asks a trainer for a snapshot of its current model.
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;
/// Asks a trainer where it stands: the log offset it expects next (training_position).
using position_atom = caf::atom_constant<caf::atom("position")>;
/// Asks a trainer to publish its current model now; it answers the version the registry gave.
using publish_atom = caf::atom_constant<caf::atom("publish")>;
/// Asks the registry for its current model version.
using latest_atom = caf::atom_constant<caf::atom("latest")>;
/// Asks the registry for one model version.
using version_atom = caf::atom_constant<caf::atom("version")>;
/// Makes an earlier model version current again (the one way versions move back).
using rollback_atom = caf::atom_constant<caf::atom("rollback")>;
/// Subscribes an actor to every change of the current model version.
using subscribe_atom = caf::atom_constant<caf::atom("subscribe")>;
/// Tells an actor to look for more work (its own timer or a nudge).
using poll_atom = caf::atom_constant<caf::atom("poll")>;
/// Stops admission and finishes the work in flight (graceful drain).
using drain_atom = caf::atom_constant<caf::atom("drain")>;
/// Asks serving what it offers (serving_info), or sets its version policy.
using info_atom = caf::atom_constant<caf::atom("info")>;
using policy_atom = caf::atom_constant<caf::atom("policy")>;
/// The cluster's model pointer (etcd) reached a version: serving that follows it takes
/// versions up to it as the latest (actors/serving/router.hpp).
using model_pointer_atom = caf::atom_constant<caf::atom("mpointer")>;
/// Asks a trainer to train a fresh model on the last N events of the log (drift's response):
/// it answers the version it had published before.
using retrain_atom = caf::atom_constant<caf::atom("retrain")>;

/// Names under which the pipeline's components register in the actor system's registry, so
/// that peers find a component's current instance after its supervisor restarted it.
namespace names {
inline constexpr caf::atom_value ingest = caf::atom("ingest");
inline constexpr caf::atom_value feature = caf::atom("feature");
inline constexpr caf::atom_value trainer = caf::atom("trainer");
inline constexpr caf::atom_value registry = caf::atom("registry");
inline constexpr caf::atom_value serving = caf::atom("serving");
inline constexpr caf::atom_value source = caf::atom("source");
inline constexpr caf::atom_value monitor = caf::atom("monitor");
/// The process's compute actor for its GPU (actors/compute/compute_actor.hpp).
inline constexpr caf::atom_value compute = caf::atom("compute");
}  // namespace names

}  // namespace rml::messaging
