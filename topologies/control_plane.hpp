#pragma once
// The cluster's control plane, as rml sees it: etcd's v3 model behind one interface, so that
// membership, election and failover run unchanged on a real etcd and, in deterministic tests
// and the simulator, on memory_control_plane (virtual time). rml implements no consensus:
// whichever implementation is behind this decides.
//
// The model (etcd's): one revision counter for the whole store, bumped once by every
// transaction that changes something; each key keeps its create revision, mod revision and
// version (puts since creation); leases carry keys and delete them when they expire; watches
// deliver every change in revision order from any revision not yet compacted; transactions
// compare, then run one branch atomically.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "compute/status.hpp"

namespace rml::control {

using revision = std::int64_t;
using lease_id = std::int64_t;
using watch_id = std::int64_t;

struct key_value {
  std::string key;
  std::string value;
  revision create_revision = 0;
  revision mod_revision = 0;
  /// Puts since the key was (last) created; 0 for a key that does not exist.
  std::int64_t version = 0;
  lease_id lease = 0;
  friend bool operator==(const key_value&, const key_value&) = default;
};

/// One key, or the keys in [key, end).
struct key_range {
  std::string key;
  std::string end;
  static key_range single(std::string key) { return {std::move(key), {}}; }
  /// Every key that starts with `prefix`.
  static key_range prefix(std::string prefix);
  bool contains(const std::string& candidate) const;
};

/// A condition on one key, as etcd's Compare: a key that does not exist has version,
/// create revision, mod revision and lease 0 and no value (a value comparison with it fails).
struct compare {
  enum class field : std::uint8_t { version, create_revision, mod_revision, value, lease };
  enum class relation : std::uint8_t { equal, not_equal, greater, less };
  std::string key;
  field what = field::version;
  relation is = relation::equal;
  std::int64_t number = 0;
  std::string text;

  static compare on(std::string key, field what, relation is, std::int64_t number) {
    return {std::move(key), what, is, number, {}};
  }
  static compare value_is(std::string key, relation is, std::string text) {
    return {std::move(key), field::value, is, 0, std::move(text)};
  }
  /// True when the key does not exist.
  static compare absent(std::string key) { return on(std::move(key), field::version, relation::equal, 0); }
};

struct operation {
  enum class kind : std::uint8_t { range, put, erase };
  kind type = kind::range;
  key_range keys;
  std::string value;
  lease_id lease = 0;

  static operation get(key_range keys) { return {kind::range, std::move(keys), {}, 0}; }
  static operation put(std::string key, std::string value, lease_id lease = 0) {
    return {kind::put, key_range::single(std::move(key)), std::move(value), lease};
  }
  static operation erase(key_range keys) { return {kind::erase, std::move(keys), {}, 0}; }
};

struct operation_result {
  /// A range's keys, in key order.
  std::vector<key_value> found;
  /// An erase's count of keys it deleted.
  std::int64_t deleted = 0;
};

struct transaction {
  std::vector<compare> compares;
  std::vector<operation> success;
  std::vector<operation> failure;
};

struct transaction_result {
  bool succeeded = false;
  /// The store's revision after the transaction (its own if it changed anything).
  revision at = 0;
  /// One per operation of the branch that ran.
  std::vector<operation_result> results;
};

struct watch_event {
  enum class kind : std::uint8_t { put, erase };
  kind type = kind::put;
  /// After a put, the key as stored; after an erase, the key with mod_revision the erase's
  /// revision and version 0.
  key_value kv;
};

/// What a watch delivers: events of one revision at a time, in revision order; or, once,
/// that it was cancelled because the revision it asked to start from was compacted away
/// (the watcher re-reads with range() and watches on from there).
struct watch_response {
  std::vector<watch_event> events;
  revision compact_revision = 0;
  bool cancelled = false;
};

using watch_callback = std::function<void(const watch_response&)>;

class control_plane {
 public:
  virtual ~control_plane() = default;

  /// A lease that lives `ttl` unless kept alive; its keys go with it.
  virtual result<lease_id> grant(std::chrono::milliseconds ttl) = 0;
  /// Renews a lease to its full TTL; not_found once it has expired or been revoked.
  virtual result<std::chrono::milliseconds> keep_alive(lease_id lease) = 0;
  /// Ends a lease now, deleting its keys in one revision.
  virtual status revoke(lease_id lease) = 0;

  /// Runs the success branch when every compare holds, else the failure branch, atomically.
  /// A put naming a lease that does not exist fails the whole transaction (not_found).
  virtual result<transaction_result> commit(const transaction& request) = 0;
  /// The keys in `keys` as they were at revision `at` (0: now); not_found when `at` was
  /// compacted away or is in the future.
  virtual result<std::vector<key_value>> range(const key_range& keys, revision at = 0) = 0;
  /// The current revision.
  virtual result<revision> current_revision() = 0;

  /// Delivers every change to `keys` from revision `from` (0: from the next one) to
  /// `deliver`, in revision order, until cancelled.
  virtual result<watch_id> watch(const key_range& keys, revision from, watch_callback deliver) = 0;
  virtual void cancel(watch_id watch) = 0;
};

/// Leader election as etcd's concurrency recipe, on any control plane: each candidate puts
/// a key under `election/<name>/` held by its lease; the candidate whose key has the lowest
/// create revision leads, and that revision is its epoch. A later candidate always gets a
/// higher revision, so a leader stays leader exactly as long as its key exists: the fence
/// for its writes is `still_leader(candidate)` in every transaction it commits.
class election {
 public:
  election(control_plane& plane, std::string name);

  const std::string& prefix() const { return prefix_; }

  /// Enters (or re-enters, returning the existing key) the candidate with `value`, held by
  /// `lease`. Leads when it is the oldest live candidate (is_leader).
  result<key_value> campaign(lease_id lease, const std::string& value);
  /// The leader now, if any candidate is alive.
  result<std::optional<key_value>> leader();
  result<bool> is_leader(const key_value& candidate);
  /// Leaves the election (deletes the candidate's key, if it is still the same one).
  status resign(const key_value& candidate);
  /// The compare that holds while `candidate` leads: its key exists with its create revision.
  static compare still_leader(const key_value& candidate);
  /// Calls `changed` with the leader now and after every change of leader (a leader's key
  /// gone, a first candidate in); the watch it runs on is returned for cancel(), which must
  /// come before this election object goes.
  result<watch_id> observe(std::function<void(const std::optional<key_value>&)> changed);

 private:
  control_plane& plane_;
  std::string prefix_;
};

}  // namespace rml::control
