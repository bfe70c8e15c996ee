#pragma once
// The trainer: online mini-batch SGD through compute/ on featurised batches, with
// progressive validation (each row is predicted by the model before it trains on that row;
// the accuracy over the last window of rows is reported), checkpoints every N events
// (weights, optimizer state, feature pipeline, log offset), and a model snapshot sent to
// the registry every N steps.
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
#include "supervision/checkpoint_store.hpp"

namespace rml::actors {

/// A feature batch is answered with the log offset the trainer expects next.
using trainer_actor = caf::typed_actor<
    caf::replies_to<messaging::feature_batch>::with<std::uint64_t>,
    caf::replies_to<messaging::status_atom>::with<messaging::trainer_status>,
    caf::replies_to<messaging::snapshot_atom>::with<messaging::model_snapshot>>;

struct trainer_options {
  /// Names the trainer's checkpoint.
  std::string name = "trainer";
  /// A built-in architecture name ("mlp", "lenet") or a model spec.
  std::string architecture = "mlp";
  std::uint64_t seed = 1;
  nn::sgd_options sgd{0.05f, 0.9f, 0.0f};
  /// CPU threads of the trainer's compute backend.
  int compute_threads = 1;
  /// Save a checkpoint after at least this many newly trained events (0: never).
  std::uint64_t checkpoint_events = 10000;
  /// Send a snapshot to the registry every this many steps (0: never).
  std::uint64_t publish_steps = 200;
  /// Rows the rolling (progressive) accuracy covers.
  std::size_t rolling_window_rows = 1000;
};

/// Checks the options; the error names the field.
status validate(const trainer_options& options);

/// Spawns a trainer (options must be valid). `registry` receives model_snapshot messages;
/// when not set, the actor registered under messaging::names::registry does. A checkpoint that cannot be restored ends the trainer with an error, for its
/// supervisor to decide.
trainer_actor spawn_trainer(caf::actor_system& system, std::shared_ptr<supervision::checkpoint_store> store,
                            const trainer_options& options, caf::actor registry = {});

}  // namespace rml::actors
