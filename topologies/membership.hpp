#pragma once
// Cluster membership on the control plane: a node is a member while it holds a lease and the
// key `<cluster>/members/<name>` under it (address, cores, GPUs, labels); its incarnation is
// that key's create revision, new each time the node joins. A node that cannot renew its
// lease stops serving before the lease can have expired (may_serve), so no two nodes act
// under one name; the control plane, not the network, decides who is alive.

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "topologies/control_plane.hpp"

namespace rml::control {

struct member_info {
  std::string name;
  /// host:port of its actor system.
  std::string address;
  std::uint32_t cores = 1;
  std::uint32_t gpus = 0;
  std::map<std::string, std::string> labels;
  friend bool operator==(const member_info&, const member_info&) = default;
};

struct member {
  member_info info;
  /// The create revision of its member key: new on every join.
  revision incarnation = 0;
  lease_id lease = 0;
};

/// "address=h:p;cores=2;gpus=1;labels=k:v,k2:v2", and back; the error names the field.
std::string encode_member(const member_info& info);
result<member_info> decode_member(const std::string& name, std::string_view text);

class membership {
 public:
  membership(control_plane& plane, std::string cluster = "rml");

  /// The prefix of the member keys ("rml/members/").
  const std::string& prefix() const { return prefix_; }

  /// Joins as `self` under a new lease of `ttl` at time `now`. Refused (not_ready) while a
  /// live member holds the name: a node restarted quickly waits out its old lease.
  result<member> join(const member_info& self, std::chrono::milliseconds ttl, std::chrono::milliseconds now);
  /// Renews the lease (call every ttl/3 or so); an error once it has expired: the node has
  /// stopped being a member and must stop serving and join again.
  status renew(std::chrono::milliseconds now);
  /// Whether the node may still serve at `now`: less than two thirds of its TTL have passed
  /// since the last renewal that succeeded (a margin for the clock and the control plane's
  /// own delay), and it has not left.
  bool may_serve(std::chrono::milliseconds now) const;
  status leave();
  const member& self() const { return self_; }

  /// The members now, by name.
  result<std::vector<member>> members();
  /// Calls `changed` with the members after every join, leave or expiry (and once now; a
  /// change made while it starts may be told twice); the watch returned must be cancelled
  /// before this object goes.
  result<watch_id> follow(std::function<void(const std::vector<member>&)> changed);

 private:
  control_plane& plane_;
  std::string prefix_;
  member self_;
  std::chrono::milliseconds ttl_{0};
  std::chrono::milliseconds renewed_{0};
  bool joined_ = false;
};

}  // namespace rml::control
