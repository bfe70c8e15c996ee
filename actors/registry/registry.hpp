#pragma once
// The model registry: every published model version on disk under its directory, the
// current one, lookup by version, explicit rollback, and a push of the current snapshot to
// every subscriber (serving replicas) whenever it changes.
//
// Versions only move forward (DESIGN.md contract 3): a snapshot sent without a version (0)
// gets the next one, above every stored version; one that names a version not above them is
// refused. So is one that fails the validation gate: its model file does not decode, a
// weight or a metric is not finite, its rolling accuracy is below the absolute gate, or it
// is more than `accuracy_drop_max` below the current version's (bad data must not reach
// serving). Only rollback makes an earlier version current again. A snapshot is durable on
// disk — the file and the directory entry synced — before it becomes current.
//
// A component that cannot load a published version says so (model_refused): the registry
// counts it (rml_models_refused_total), records it in the trace and prints it on stderr.

#include <caf/typed_actor.hpp>

#include <string>

#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

using registry_actor = caf::typed_actor<
    caf::replies_to<messaging::model_snapshot>::with<std::uint64_t>,
    caf::replies_to<messaging::latest_atom>::with<messaging::model_snapshot>,
    caf::replies_to<messaging::version_atom, std::uint64_t>::with<messaging::model_snapshot>,
    caf::replies_to<messaging::rollback_atom, std::uint64_t>::with<std::uint64_t>,
    caf::reacts_to<messaging::subscribe_atom, caf::actor>,
    caf::reacts_to<messaging::model_refused>>;

struct registry_options {
  /// Where versions are stored (created when absent): v<version>.snapshot files.
  std::string directory;
  /// A snapshot whose "rolling_accuracy" metric is below this is refused (0 accepts all).
  double min_rolling_accuracy = 0.0;
  /// Stored versions kept on disk; older ones are deleted (0 keeps all).
  std::size_t versions_kept_max = 64;
  /// A snapshot whose rolling accuracy is more than this below the current version's is
  /// refused (0: no relative gate).
  double accuracy_drop_max = 0.1;
  /// Where its metrics and trace events go (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
};

/// Spawns a registry; it reloads the versions already in its directory.
registry_actor spawn_registry(caf::actor_system& system, const registry_options& options);

}  // namespace rml::actors
