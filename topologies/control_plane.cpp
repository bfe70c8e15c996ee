#include "topologies/control_plane.hpp"

#include <algorithm>
#include <memory>

namespace rml::control {

key_range key_range::prefix(std::string prefix) {
  // etcd's prefix end: the prefix with its last byte below 0xff incremented and what follows
  // dropped; an all-0xff (or empty) prefix ranges to the end ("\0").
  std::string end = prefix;
  while (!end.empty() && static_cast<unsigned char>(end.back()) == 0xff) end.pop_back();
  if (end.empty()) return {std::move(prefix), std::string(1, '\0')};
  end.back() = char(static_cast<unsigned char>(end.back()) + 1);
  return {std::move(prefix), std::move(end)};
}

bool key_range::contains(const std::string& candidate) const {
  if (end.empty()) return candidate == key;
  if (end == std::string(1, '\0')) return candidate >= key;
  return candidate >= key && candidate < end;
}

election::election(control_plane& plane, std::string name) : plane_(plane), prefix_("election/" + name + "/") {}

namespace {
std::string hex(lease_id lease) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string text;
  auto value = static_cast<std::uint64_t>(lease);
  do {
    text.insert(text.begin(), digits[value & 0xf]);
    value >>= 4;
  } while (value != 0);
  return text;
}

std::optional<key_value> oldest(const std::vector<key_value>& candidates) {
  if (candidates.empty()) return std::nullopt;
  return *std::min_element(candidates.begin(), candidates.end(), [](const key_value& a, const key_value& b) {
    return a.create_revision < b.create_revision;
  });
}
}  // namespace

result<key_value> election::campaign(lease_id lease, const std::string& value) {
  const std::string key = prefix_ + hex(lease);
  transaction enter{{compare::absent(key)}, {operation::put(key, value, lease)}, {operation::get(key_range::single(key))}};
  auto entered = plane_.commit(enter);
  if (!entered) return entered.error();
  auto found = plane_.range(key_range::single(key));
  if (!found) return found.error();
  if (found->empty()) {
    return error(errc::not_found, "election " + prefix_ + ": candidate " + key + " vanished as it entered (lease " +
                                      std::to_string(lease) + " expired?)");
  }
  return found->front();
}

result<std::optional<key_value>> election::leader() {
  auto candidates = plane_.range(key_range::prefix(prefix_));
  if (!candidates) return candidates.error();
  return oldest(*candidates);
}

result<bool> election::is_leader(const key_value& candidate) {
  auto current = leader();
  if (!current) return current.error();
  return current->has_value() && (*current)->key == candidate.key &&
         (*current)->create_revision == candidate.create_revision;
}

status election::resign(const key_value& candidate) {
  auto left = plane_.commit({{still_leader(candidate)}, {operation::erase(key_range::single(candidate.key))}, {}});
  if (!left) return left.error();
  return {};
}

compare election::still_leader(const key_value& candidate) {
  return compare::on(candidate.key, compare::field::create_revision, compare::relation::equal, candidate.create_revision);
}

result<watch_id> election::observe(std::function<void(const std::optional<key_value>&)> changed) {
  auto last = std::make_shared<std::optional<key_value>>();
  // Watched from the revision before the first read: a change between the two is seen (on a
  // real etcd other nodes write meanwhile), never missed.
  auto before = plane_.current_revision();
  if (!before) return before.error();
  auto now = leader();
  if (!now) return now.error();
  *last = *now;
  changed(*last);
  return plane_.watch(key_range::prefix(prefix_), *before + 1, [this, last, changed](const watch_response&) {
    auto current = leader();
    if (!current) return;
    const bool same = current->has_value() == last->has_value() &&
                      (!current->has_value() || ((*current)->key == (*last)->key &&
                                                 (*current)->create_revision == (*last)->create_revision));
    if (same) return;
    *last = *current;
    changed(*last);
  });
}

}  // namespace rml::control
