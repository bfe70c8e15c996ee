#include "topologies/desired_state.hpp"

#include <charconv>

namespace rml::control {
namespace {
error deposed(const key_value& leader) {
  return error(errc::unauthorized, "controller " + leader.key + " (epoch " + std::to_string(leader.create_revision) +
                                       ") no longer leads: its write is refused");
}

result<std::uint64_t> parse_version(const std::string& model, const std::string& text) {
  std::uint64_t version = 0;
  auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), version);
  if (failure != std::errc() || end != text.data() + text.size()) {
    return error(errc::corrupted, "model pointer of " + model + " holds '" + text + "', not a version");
  }
  return version;
}
}  // namespace

desired_state::desired_state(control_plane& plane, std::string cluster)
    : plane_(plane), prefix_(std::move(cluster) + "/desired/") {}

status desired_state::write(const key_value& leader, const std::string& name, const std::string& value) {
  auto done = plane_.commit({{election::still_leader(leader)}, {operation::put(key(name), value)}, {}});
  if (!done) return done.error();
  if (!done->succeeded) return deposed(leader);
  return {};
}

result<std::optional<std::string>> desired_state::read(const std::string& name) {
  auto found = plane_.range(key_range::single(key(name)));
  if (!found) return found.error();
  if (found->empty()) return std::optional<std::string>();
  return std::optional<std::string>(found->front().value);
}

result<std::uint64_t> desired_state::model_pointer(const std::string& model) {
  auto found = plane_.range(key_range::single(key("models/" + model)));
  if (!found) return found.error();
  if (found->empty()) return std::uint64_t(0);
  return parse_version(model, found->front().value);
}

result<std::map<std::string, std::uint64_t>> desired_state::model_pointers() {
  const std::string models = key("models/");
  auto found = plane_.range(key_range::prefix(models));
  if (!found) return found.error();
  std::map<std::string, std::uint64_t> pointers;
  for (const auto& entry : *found) {
    const std::string model = entry.key.substr(models.size());
    auto parsed = parse_version(model, entry.value);
    if (!parsed) return parsed.error();
    pointers[model] = *parsed;
  }
  return pointers;
}

result<std::uint64_t> desired_state::advance_model(const key_value& leader, const std::string& model, std::uint64_t version) {
  const std::string pointer = key("models/" + model);
  // Read, then compare-and-set on the mod revision read; another writer in between makes
  // the compare fail and the loop read again.
  for (int attempt = 0; attempt < 16; ++attempt) {
    auto found = plane_.range(key_range::single(pointer));
    if (!found) return found.error();
    std::uint64_t current = 0;
    revision read_at = 0;
    if (!found->empty()) {
      auto parsed = parse_version(model, found->front().value);
      if (!parsed) return parsed.error();
      current = *parsed;
      read_at = found->front().mod_revision;
    }
    if (version < current) {
      return error(errc::invalid_argument, "model pointer of " + model + " is at version " + std::to_string(current) +
                                               "; " + std::to_string(version) + " would move it back");
    }
    if (version == current) return current;
    auto done = plane_.commit({{election::still_leader(leader),
                                compare::on(pointer, compare::field::mod_revision, compare::relation::equal, read_at)},
                               {operation::put(pointer, std::to_string(version))},
                               {operation::get(key_range::single(leader.key))}});
    if (!done) return done.error();
    if (done->succeeded) return version;
    const auto& still = done->results.at(0).found;
    if (still.empty() || still.front().create_revision != leader.create_revision) return deposed(leader);
  }
  return error(errc::overloaded, "model pointer of " + model + ": 16 concurrent writes in a row; try again");
}

}  // namespace rml::control
