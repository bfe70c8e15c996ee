#pragma once
// The control plane in memory, on a clock it is given (the actor clock, or the simulator's
// virtual time): one revision counter, MVCC history for reads at past revisions and watches
// from them, compaction, leases that expire when the clock passes their deadline, etcd's
// compare semantics. For deterministic tests and the simulator; a real cluster uses etcd.
//
// Not thread-safe: one caller at a time (an actor owns it, or the simulator's single
// thread). Watch callbacks run inside the call that caused the change, after it is applied,
// in revision order; a callback may call the plane again (its own changes are delivered
// after the ones already queued).

#include <chrono>
#include <deque>
#include <map>
#include <set>

#include "topologies/control_plane.hpp"

namespace rml::control {

class memory_control_plane final : public control_plane {
 public:
  using clock = std::function<std::chrono::milliseconds()>;
  explicit memory_control_plane(clock now);

  result<lease_id> grant(std::chrono::milliseconds ttl) override;
  result<std::chrono::milliseconds> keep_alive(lease_id lease) override;
  status revoke(lease_id lease) override;
  result<transaction_result> commit(const transaction& request) override;
  result<std::vector<key_value>> range(const key_range& keys, revision at = 0) override;
  result<revision> current_revision() override;
  result<watch_id> watch(const key_range& keys, revision from, watch_callback deliver) override;
  void cancel(watch_id watch) override;

  /// Expires every lease whose deadline the clock has passed (every call does this first;
  /// a driver calls it when time moves with nothing else to do).
  void tick();
  /// Forgets history before `up_to`: reads at and watches from earlier revisions fail.
  status compact(revision up_to);
  std::size_t live_leases() const { return leases_.size(); }

 private:
  struct version {
    key_value kv;
    bool erased = false;
  };
  struct lease_state {
    std::chrono::milliseconds ttl{};
    std::chrono::milliseconds deadline{};
    std::set<std::string> keys;
  };
  struct watcher {
    key_range keys;
    watch_callback deliver;
  };

  const key_value* live(const std::string& key) const;
  bool holds(const compare& condition) const;
  /// Applies one change at revision `at` and queues its event.
  void apply_put(const std::string& key, const std::string& value, lease_id lease, revision at);
  std::int64_t apply_erase(const key_range& keys, revision at);
  void erase_lease(lease_id lease);
  void queue(revision at, std::vector<watch_event> events);
  void deliver_queued();

  clock now_;
  revision revision_ = 1;
  revision compacted_ = 0;
  std::map<std::string, std::vector<version>> history_;
  /// Every change not yet compacted away, in revision order, for watches from the past.
  std::deque<std::pair<revision, watch_event>> log_;
  std::map<lease_id, lease_state> leases_;
  lease_id next_lease_ = 1;
  std::map<watch_id, watcher> watchers_;
  watch_id next_watch_ = 1;
  /// Responses waiting for delivery: (watch, response), in order.
  std::deque<std::pair<watch_id, watch_response>> outbox_;
  bool delivering_ = false;
};

}  // namespace rml::control
