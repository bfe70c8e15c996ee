#pragma once
// Atoms of rml's actor interfaces: the verbs of requests that carry no other data.

#include <caf/atom.hpp>

namespace rml::messaging {

/// Asks a component for its status.
using status_atom = caf::atom_constant<caf::atom("status")>;
/// Asks a trainer for a snapshot of its current model.
using snapshot_atom = caf::atom_constant<caf::atom("snapshot")>;

}  // namespace rml::messaging
