#pragma once
// The trainer: online mini-batch SGD through compute/ on featurised batches, with
// progressive validation (each row is predicted by the model before it trains on that row;
// the accuracy over the last window of rows is reported), checkpoints every N events
// (weights, optimizer state, feature pipeline, log offset), and a model snapshot sent to
// the registry every N steps.
//
// Bad data does not reach the model's weights: a step whose loss or gradients are not
// finite is skipped (counted), gradients beyond a global norm are scaled down to it, and
// every few steps the weights are checked: finite, they become the last good state; not,
// they are restored from it (counted, traced). Snapshots go to the registry as requests
// without a version: the registry numbers them (above every stored one) or refuses them at
// its gate, and the trainer counts and traces a refusal instead of losing it.
//
// Recovery: on start it loads its checkpoint, if any, and resumes from the offset recorded
// there; batches whose events it has already trained on (a replay after a restart) are
// acknowledged and skipped, so replaying the log from the checkpoint's offset gives the
// same weights as an uninterrupted run.

#include <caf/typed_actor.hpp>

#include <memory>

#include "compute/nn/optimizer.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"
#include "messaging/training_input.hpp"
#include "supervision/checkpoint_store.hpp"

namespace rml::actors {

/// A feature batch is answered with the log offset the trainer expects next. retrain_atom N
/// starts a fresh model (new weights, seeded) on the log's last N events: the trainer moves
/// its offset back, the feature reader resynchronises to it, and the snapshots it publishes
/// from then on are the retrained model's; it answers the version it had published before.
using trainer_actor = messaging::training_input_actor::extend<
    caf::replies_to<messaging::status_atom>::with<messaging::trainer_status>,
    caf::replies_to<messaging::snapshot_atom>::with<messaging::model_snapshot>,
    caf::replies_to<messaging::publish_atom>::with<std::uint64_t>,
    caf::replies_to<messaging::retrain_atom, std::uint64_t>::with<std::uint64_t>>;

struct trainer_options {
  /// Names the trainer's checkpoint.
  std::string name = "trainer";
  /// A built-in architecture name ("mlp", "lenet") or a model spec.
  std::string architecture = "mlp";
  std::uint64_t seed = 1;
  nn::sgd_options sgd{0.05f, 0.9f, 0.0f};
  /// CPU threads of the trainer's compute backend.
  int compute_threads = 1;
  /// Where it trains: the CPU, or a GPU (a machine without one trains on the CPU and the
  /// trainer traces a compute_fallback event and says so on stderr).
  device_kind device = device_kind::cpu;
  /// Save a checkpoint after at least this many newly trained events (0: never).
  std::uint64_t checkpoint_events = 10000;
  /// Send a snapshot to the registry every this many steps (0: never).
  std::uint64_t publish_steps = 200;
  /// Rows the rolling (progressive) accuracy covers.
  std::size_t rolling_window_rows = 1000;
  /// Gradients whose global L2 norm exceeds this are scaled down to it (0: no clipping).
  float gradient_norm_max = 10.0f;
  /// Steps between two checks that the weights are finite (each finite one is kept as the
  /// last good state; each publish and checkpoint checks too).
  std::uint64_t weight_check_steps = 10;
  /// Training rows kept as a uniform sample (seeded by `seed`) for the data-drift reference
  /// every snapshot carries (0: none), and the quantile bins per feature it is cut into.
  std::size_t reference_rows_max = 1024;
  std::size_t reference_bins = 10;
  /// Where its metrics and trace events go (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
};

/// Checks the options; the error names the field.
status validate(const trainer_options& options);

/// Spawns a trainer (options must be valid). `registry` receives model_snapshot requests;
/// when not set, the actor registered under messaging::names::registry does. A checkpoint that cannot be restored ends the trainer with an error, for its
/// supervisor to decide.
trainer_actor spawn_trainer(caf::actor_system& system, std::shared_ptr<supervision::checkpoint_store> store,
                            const trainer_options& options, caf::actor registry = {});

}  // namespace rml::actors
