#pragma once
// Desired state (the deployed topology, placement, model-version pointers) under
// `<cluster>/desired/`, written only by the elected placement controller: every write is a
// transaction that compares the controller's election key (election::still_leader), so a
// deposed controller's writes fail however late they arrive. A model's version pointer only
// moves forward (compare-and-set on the key's mod revision), so two sides of a partition
// cannot both make different versions "latest".

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "topologies/control_plane.hpp"

namespace rml::control {

class desired_state {
 public:
  desired_state(control_plane& plane, std::string cluster = "rml");

  /// Writes `name` = `value` if `leader` still leads; unauthorized (naming its epoch) if not.
  status write(const key_value& leader, const std::string& name, const std::string& value);
  result<std::optional<std::string>> read(const std::string& name);

  /// Moves model `model`'s pointer to `version` if that is not backwards and `leader` still
  /// leads; returns the pointer after. Moving it back is refused (invalid_argument, naming
  /// both versions); the same version again is a no-op.
  result<std::uint64_t> advance_model(const key_value& leader, const std::string& model, std::uint64_t version);
  /// The model's pointer; 0 before any version was set.
  result<std::uint64_t> model_pointer(const std::string& model);
  /// Every model's pointer, by model name.
  result<std::map<std::string, std::uint64_t>> model_pointers();

 private:
  std::string key(const std::string& name) const { return prefix_ + name; }
  control_plane& plane_;
  std::string prefix_;
};

}  // namespace rml::control
