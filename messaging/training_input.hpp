#pragma once
// What a producer of training rows (the feature reader) needs of a trainer, and nothing more:
// components depend on each other through messaging/, not on each other's headers. A
// trainer's full interface (actors/training/trainer.hpp) includes this one, so its handle is
// found under names::trainer as a training_input_actor.

#include <caf/typed_actor.hpp>

#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging {

/// A feature batch is answered with the log offset the trainer expects next; position_atom
/// with where it stands (to resume from after a restart of either side).
using training_input_actor = caf::typed_actor<caf::replies_to<feature_batch>::with<std::uint64_t>,
                                              caf::replies_to<position_atom>::with<training_position>>;

}  // namespace rml::messaging
