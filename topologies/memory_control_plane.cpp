#include "topologies/memory_control_plane.hpp"

#include <algorithm>

namespace rml::control {

memory_control_plane::memory_control_plane(clock now) : now_(std::move(now)) {}

const key_value* memory_control_plane::live(const std::string& key) const {
  auto found = history_.find(key);
  if (found == history_.end() || found->second.empty() || found->second.back().erased) return nullptr;
  return &found->second.back().kv;
}

bool memory_control_plane::holds(const compare& condition) const {
  const key_value* current = live(condition.key);
  if (condition.what == compare::field::value) {
    if (current == nullptr) return false;  // etcd: a missing key has no value to compare
    const int order = current->value.compare(condition.text);
    switch (condition.is) {
      case compare::relation::equal: return order == 0;
      case compare::relation::not_equal: return order != 0;
      case compare::relation::greater: return order > 0;
      case compare::relation::less: return order < 0;
    }
    return false;
  }
  std::int64_t actual = 0;
  if (current != nullptr) {
    switch (condition.what) {
      case compare::field::version: actual = current->version; break;
      case compare::field::create_revision: actual = current->create_revision; break;
      case compare::field::mod_revision: actual = current->mod_revision; break;
      case compare::field::lease: actual = current->lease; break;
      case compare::field::value: break;
    }
  }
  switch (condition.is) {
    case compare::relation::equal: return actual == condition.number;
    case compare::relation::not_equal: return actual != condition.number;
    case compare::relation::greater: return actual > condition.number;
    case compare::relation::less: return actual < condition.number;
  }
  return false;
}

void memory_control_plane::apply_put(const std::string& key, const std::string& value, lease_id lease, revision at) {
  const key_value* before = live(key);
  key_value stored;
  stored.key = key;
  stored.value = value;
  stored.create_revision = before != nullptr ? before->create_revision : at;
  stored.version = before != nullptr ? before->version + 1 : 1;
  stored.mod_revision = at;
  stored.lease = lease;
  if (before != nullptr && before->lease != 0 && before->lease != lease) {
    if (auto held = leases_.find(before->lease); held != leases_.end()) held->second.keys.erase(key);
  }
  if (lease != 0) leases_.at(lease).keys.insert(key);
  history_[key].push_back({stored, false});
  log_.push_back({at, {watch_event::kind::put, stored}});
}

std::int64_t memory_control_plane::apply_erase(const key_range& keys, revision at) {
  std::vector<std::string> doomed;
  for (auto it = history_.lower_bound(keys.key); it != history_.end() && keys.contains(it->first); ++it) {
    if (!it->second.empty() && !it->second.back().erased) doomed.push_back(it->first);
    if (keys.end.empty()) break;
  }
  for (const std::string& key : doomed) {
    const key_value* before = live(key);
    if (before->lease != 0) {
      if (auto held = leases_.find(before->lease); held != leases_.end()) held->second.keys.erase(key);
    }
    key_value gone;
    gone.key = key;
    gone.mod_revision = at;
    history_[key].push_back({gone, true});
    log_.push_back({at, {watch_event::kind::erase, gone}});
  }
  return std::int64_t(doomed.size());
}

void memory_control_plane::queue(revision at, std::vector<watch_event> events) {
  if (events.empty()) return;
  for (const auto& [id, each] : watchers_) {
    watch_response response;
    for (const watch_event& event : events) {
      if (each.keys.contains(event.kv.key)) response.events.push_back(event);
    }
    if (!response.events.empty()) outbox_.push_back({id, std::move(response)});
  }
  (void)at;
}

void memory_control_plane::deliver_queued() {
  if (delivering_) return;  // the outermost call delivers, keeping revision order
  delivering_ = true;
  while (!outbox_.empty()) {
    auto [id, response] = std::move(outbox_.front());
    outbox_.pop_front();
    auto found = watchers_.find(id);
    if (found == watchers_.end()) continue;  // cancelled meanwhile
    watch_callback deliver = found->second.deliver;  // a copy: the callback may cancel itself
    deliver(response);
  }
  delivering_ = false;
}

/// The events logged at revision `at` (the tail of the log).
static std::vector<watch_event> events_at(const std::deque<std::pair<revision, watch_event>>& log, revision at) {
  std::vector<watch_event> events;
  auto first = std::find_if(log.rbegin(), log.rend(), [at](const auto& entry) { return entry.first != at; });
  for (auto it = first.base(); it != log.end(); ++it) events.push_back(it->second);
  return events;
}

void memory_control_plane::erase_lease(lease_id lease) {
  auto found = leases_.find(lease);
  if (found == leases_.end()) return;
  const std::set<std::string> keys = found->second.keys;
  leases_.erase(found);
  if (keys.empty()) return;
  const revision at = revision_ + 1;
  for (const std::string& key : keys) apply_erase(key_range::single(key), at);
  revision_ = at;
  queue(at, events_at(log_, at));
}

void memory_control_plane::tick() {
  const auto now = now_();
  std::vector<lease_id> expired;
  for (const auto& [id, state] : leases_) {
    if (state.deadline <= now) expired.push_back(id);
  }
  for (lease_id id : expired) erase_lease(id);
  deliver_queued();
}

result<lease_id> memory_control_plane::grant(std::chrono::milliseconds ttl) {
  tick();
  if (ttl <= std::chrono::milliseconds(0)) {
    return error(errc::invalid_argument, "lease TTL must be positive, got " + std::to_string(ttl.count()) + " ms");
  }
  const lease_id id = next_lease_++;
  leases_[id] = {ttl, now_() + ttl, {}};
  return id;
}

result<std::chrono::milliseconds> memory_control_plane::keep_alive(lease_id lease) {
  tick();
  auto found = leases_.find(lease);
  if (found == leases_.end()) return error(errc::not_found, "lease " + std::to_string(lease) + " not found (expired or revoked)");
  found->second.deadline = now_() + found->second.ttl;
  return found->second.ttl;
}

status memory_control_plane::revoke(lease_id lease) {
  tick();
  if (leases_.find(lease) == leases_.end()) return error(errc::not_found, "lease " + std::to_string(lease) + " not found (expired or revoked)");
  erase_lease(lease);
  deliver_queued();
  return {};
}

result<transaction_result> memory_control_plane::commit(const transaction& request) {
  tick();
  const bool succeeded = std::all_of(request.compares.begin(), request.compares.end(),
                                     [this](const compare& condition) { return holds(condition); });
  const auto& branch = succeeded ? request.success : request.failure;
  // Checked before anything is applied: the transaction is all or nothing.
  std::set<std::string> put_keys;
  for (const operation& each : branch) {
    if (each.type != operation::kind::put) continue;
    if (each.lease != 0 && leases_.find(each.lease) == leases_.end()) {
      return error(errc::not_found, "put " + each.keys.key + ": lease " + std::to_string(each.lease) + " not found");
    }
    if (!put_keys.insert(each.keys.key).second) {
      return error(errc::invalid_argument, "transaction puts key " + each.keys.key + " twice");
    }
  }
  transaction_result outcome;
  outcome.succeeded = succeeded;
  const revision at = revision_ + 1;
  bool changed = false;
  for (const operation& each : branch) {
    operation_result done;
    switch (each.type) {
      case operation::kind::range:
        for (auto it = history_.lower_bound(each.keys.key); it != history_.end() && each.keys.contains(it->first); ++it) {
          if (const key_value* current = live(it->first)) done.found.push_back(*current);
          if (each.keys.end.empty()) break;
        }
        break;
      case operation::kind::put:
        apply_put(each.keys.key, each.value, each.lease, at);
        changed = true;
        break;
      case operation::kind::erase:
        done.deleted = apply_erase(each.keys, at);
        changed = changed || done.deleted > 0;
        break;
    }
    outcome.results.push_back(std::move(done));
  }
  if (changed) {
    revision_ = at;
    queue(at, events_at(log_, at));
  }
  outcome.at = revision_;
  deliver_queued();
  return outcome;
}

result<std::vector<key_value>> memory_control_plane::range(const key_range& keys, revision at) {
  tick();
  if (at == 0) at = revision_;
  if (at > revision_) {
    return error(errc::not_found, "revision " + std::to_string(at) + " is in the future (current " + std::to_string(revision_) + ")");
  }
  if (at < compacted_) {
    return error(errc::not_found, "revision " + std::to_string(at) + " has been compacted (compacted up to " +
                                      std::to_string(compacted_) + ")");
  }
  std::vector<key_value> found;
  for (auto it = history_.lower_bound(keys.key); it != history_.end() && keys.contains(it->first); ++it) {
    // The key's last version at or before `at`.
    const auto& versions = it->second;
    auto after = std::upper_bound(versions.begin(), versions.end(), at,
                                  [](revision wanted, const version& each) { return wanted < each.kv.mod_revision; });
    if (after != versions.begin() && !std::prev(after)->erased) found.push_back(std::prev(after)->kv);
    if (keys.end.empty()) break;
  }
  return found;
}

result<revision> memory_control_plane::current_revision() {
  tick();
  return revision_;
}

result<watch_id> memory_control_plane::watch(const key_range& keys, revision from, watch_callback deliver) {
  tick();
  const watch_id id = next_watch_++;
  if (from != 0 && from < compacted_) {
    // etcd cancels such a watch with the compact revision; the watcher re-lists from there.
    watch_response cancelled;
    cancelled.cancelled = true;
    cancelled.compact_revision = compacted_;
    deliver(cancelled);
    return id;
  }
  watchers_[id] = {keys, std::move(deliver)};
  if (from != 0) {
    // Past changes first, a response per revision, before anything newer.
    for (auto it = log_.begin(); it != log_.end();) {
      const revision at = it->first;
      watch_response past;
      for (; it != log_.end() && it->first == at; ++it) {
        if (at >= from && keys.contains(it->second.kv.key)) past.events.push_back(it->second);
      }
      if (!past.events.empty()) outbox_.push_back({id, std::move(past)});
    }
  }
  deliver_queued();
  return id;
}

void memory_control_plane::cancel(watch_id watch) { watchers_.erase(watch); }

status memory_control_plane::compact(revision up_to) {
  tick();
  if (up_to > revision_) {
    return error(errc::invalid_argument, "compact to revision " + std::to_string(up_to) + ": beyond the current " +
                                             std::to_string(revision_));
  }
  if (up_to <= compacted_) return {};
  compacted_ = up_to;
  while (!log_.empty() && log_.front().first < up_to) log_.pop_front();
  for (auto it = history_.begin(); it != history_.end();) {
    auto& versions = it->second;
    // Keep the version visible at `up_to` (unless it is an erase) and everything after it.
    auto after = std::upper_bound(versions.begin(), versions.end(), up_to,
                                  [](revision wanted, const version& each) { return wanted < each.kv.mod_revision; });
    if (after != versions.begin()) {
      auto visible = std::prev(after);
      versions.erase(versions.begin(), visible->erased ? after : visible);
    }
    it = versions.empty() ? history_.erase(it) : std::next(it);
  }
  return {};
}

}  // namespace rml::control
