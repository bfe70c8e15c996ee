#pragma once
// The cluster's placement: what `rml deploy` asked for, placed on the nodes that are members
// now, by the one controller the election chose. Every node runs `reconcile` on its renewal
// tick; only the leader's writes land (each is fenced by its election key), so a deposed
// controller's late write is refused. Placement is sticky (plan_placement's `keep`): a lost
// node's replicas move to surviving nodes that satisfy their constraints, and nothing else
// moves; a node that joins takes new replicas without moving running ones. What fits no node
// waits (desired/placement_error says why) while the rest is placed.
//
// Keys under `<cluster>/`:
//   requested/topology          the topology file's text (rml deploy; erased by rml undeploy)
//   requested/scale/<component> replicas wanted, within the component's min..max (rml scale)
//   desired/topology            the text placed, desired/placement the plan, one line per
//                               replica ("component replica node cores gpus"), desired/
//                               placement_error why the request could not be placed (or "")

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "topologies/autoscaler.hpp"
#include "topologies/control_plane.hpp"
#include "topologies/topology_file.hpp"

namespace rml::control {

/// A component that scales: the replicas wanted now, its bounds, and who chose the count.
struct component_scale {
  std::string component;
  std::uint32_t replicas = 0;
  std::uint32_t min = 0, max = 0;
  /// "autoscaler", "rml scale" or "min".
  std::string chosen_by;
};

/// What rml status shows of the cluster's placement.
struct placement_view {
  /// The topology placed; empty when nothing is deployed.
  std::string topology_name;
  std::vector<topologies::placed_replica> replicas;
  /// Why the replicas not placed could not be ("" when all are).
  std::string error;
  /// The leading controller's value (its node's name), if any.
  std::optional<std::string> controller;
  revision controller_epoch = 0;
  /// The components that scale (replicas max above min).
  std::vector<component_scale> scaling;
};

/// The plan as stored (one line per replica), and back; the error names the line.
std::string encode_placement(const topologies::placement_plan& plan);
result<topologies::placement_plan> decode_placement(const std::string& text);

/// What is deployed now: the topology placed (its text) and the plan in force.
struct deployment {
  std::string topology_text;
  topologies::placement_plan plan;
};

/// What a deployment asks of one node: the component kinds placed on it, and for each kind
/// placed only elsewhere the member nodes running it, preferred first. A kind on several
/// nodes (serving replicas) has them all, in plan order; for serving, each node starts the
/// list at a different place (its name's hash), so that nodes forwarding predictions spread
/// over the replicas and a replica added takes the share of the nodes that now prefer it.
/// Nodes not in `members` (lost) are left out. `rml node` and the simulator follow this.
struct node_assignment {
  std::set<std::string> here;
  std::map<std::string, std::vector<std::string>> elsewhere;
};
node_assignment assignment_of(const topologies::topology& declared, const topologies::placement_plan& plan,
                              const std::set<std::string>& members, const std::string& node);

class placement_controller {
 public:
  explicit placement_controller(control_plane& plane, std::string cluster = "rml");

  /// The election the controllers run in ("<cluster>/placement").
  election& controllers() { return election_; }

  /// One pass: when `leader` leads, places the requested topology (with its scale requests)
  /// on the members now and writes desired state if it changed. Returns whether it wrote;
  /// unauthorized when `leader` no longer leads.
  result<bool> reconcile(const key_value& leader);

  /// One look of the autoscaler (autoscaler.hpp) when `leader` leads: reads the nodes' load
  /// reports and writes the replicas it decides on; returns what it decided. Call it once per
  /// renewal tick (a look is a unit of its hysteresis). Unauthorized when `leader` no longer leads.
  result<std::vector<scaling_decision>> autoscale(const key_value& leader);

  /// What is deployed and where (for rml status).
  result<placement_view> view();
  /// The topology placed and its plan, as the nodes follow them; nothing when none is.
  result<std::optional<deployment>> deployed();

  /// rml deploy: validates `text` (a topology file, `file` names it in errors) and asks for it.
  status request_deploy(const std::string& text, const std::string& file);
  /// rml undeploy: withdraws the request (the controller clears desired state).
  status request_undeploy();
  /// rml scale: asks for `replicas` of `component`, checked against the requested topology.
  status request_scale(const std::string& component, std::uint32_t replicas);

 private:
  std::string key(const std::string& name) const { return prefix_ + name; }
  result<std::optional<std::string>> read(const std::string& name);
  /// The replicas `component` should have now (the autoscaler's count, else the user's, else
  /// min) and who chose it; `base` is what an autoscaler's count must start from to hold.
  result<component_scale> wanted_replicas(const topologies::component_spec& component, revision& base);

  /// The deployed topology's text parsed, from the last parse of the same text: a controller
  /// reconciles on every renewal, and parsing YAML is most of a pass's cost.
  result<topologies::topology> parse_deployed(const std::string& text);
  std::string deployed_text_;
  std::optional<result<topologies::topology>> deployed_parse_;
  control_plane& plane_;
  std::string cluster_;
  std::string prefix_;
  election election_;
  /// The autoscaler's hysteresis, by component, for the epoch it was counted under.
  std::map<std::string, scaling_looks> looks_;
  revision looks_epoch_ = 0;
};

}  // namespace rml::control
