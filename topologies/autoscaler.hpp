#pragma once
// Scaling serving across nodes. Each node that runs a component which scales (replicas
// {min, max}, max above min) reports its load under `<cluster>/load/<node>/<component>`,
// held by its lease (gone with the node), on every renewal: the share of its lanes' looks
// that found a backlog and the replica time spent computing, per second, since its last
// report. The placement controller takes one look per renewal over the reports of the nodes
// the component is placed on and decides with hysteresis (the component's `scaling:`,
// topologies/topology_file.hpp):
//   - `up_after` looks in a row with a backlog (on average half the looks or more) add a
//     replica, up to max;
//   - `down_after` looks in a row with no backlog anywhere and so little compute that one
//     replica fewer would each carry at most `down_utilization` of the compute per replica
//     that last made a backlog (queues form long before a replica is busy all the time; of a
//     replica's whole time when none has yet) remove one, down to min;
//   - any decision, and any look that fits neither, resets both counts (no oscillation).
// The decision is desired state like the rest: `desired/scale/<component>` = "COUNT BASE",
// written only by the leading controller (fenced by its epoch), where BASE is the mod
// revision of the user's `requested/scale/<component>` it started from (0: none). An
// `rml scale` later moves that revision, so the user's count wins and scaling goes on from
// it. The counts of looks live in the controller and start again at 0 with a new one.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "topologies/control_plane.hpp"
#include "topologies/topology_file.hpp"

namespace rml::control {

/// What a node says of one component's load since its previous report.
struct load_report {
  /// Share of its lanes' looks that found a backlog, in [0, 1].
  double backlog_share = 0;
  /// Replica compute seconds per wall second (1 = one replica always busy).
  double busy = 0;
  /// Replicas the component runs on the node.
  double replicas = 0;
  /// Looks taken since the previous report (0: no information).
  std::uint64_t looks = 0;
};

std::string encode_load(const load_report& report);
/// The error names the text and what was wrong.
result<load_report> decode_load(const std::string& text);

/// The key a node reports `component`'s load under.
std::string load_key(const std::string& cluster, const std::string& node, const std::string& component);

/// The count the autoscaler chose and the user request it started from.
struct scaled_count {
  std::uint32_t count = 0;
  revision base = 0;
};
std::string encode_scaled(const scaled_count& scaled);
std::optional<scaled_count> decode_scaled(const std::string& text);

/// What one look decided for one component.
struct scaling_decision {
  std::string component;
  std::uint32_t from = 0;
  std::uint32_t to = 0;
  /// Why, in words (the loads seen).
  std::string why;
};

/// The look counts of one component: the hysteresis.
struct scaling_looks {
  std::uint32_t backlog = 0;
  std::uint32_t idle = 0;
  /// Compute per replica (replica-seconds per second) when a backlog last added one; 0: none yet.
  double pressed_busy = 0;
};

/// One look for one component placed on `replicas` nodes with these reports (by node; a node
/// without one gives no information): updates `looks`, returns the count wanted (`replicas`
/// when unchanged) and why.
std::pair<std::uint32_t, std::string> decide_scale(const topologies::component_spec& component, std::uint32_t replicas,
                                                    const std::vector<load_report>& reports, scaling_looks& looks);

}  // namespace rml::control
