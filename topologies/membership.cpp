#include "topologies/membership.hpp"

#include <charconv>
#include <memory>

namespace rml::control {
namespace {

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) break;
    text.remove_prefix(at + 1);
  }
  return parts;
}

result<std::uint32_t> number(const std::string& name, std::string_view field, std::string_view text) {
  std::uint32_t value = 0;
  auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (failure != std::errc() || end != text.data() + text.size()) {
    return error(errc::parse_error, "member " + name + ": " + std::string(field) + " '" + std::string(text) + "' is not a count");
  }
  return value;
}

}  // namespace

std::string encode_member(const member_info& info) {
  std::string text = "address=" + info.address + ";cores=" + std::to_string(info.cores) + ";gpus=" + std::to_string(info.gpus) + ";labels=";
  bool first = true;
  for (const auto& [key, value] : info.labels) {
    text += (first ? "" : ",") + key + ":" + value;
    first = false;
  }
  return text;
}

result<member_info> decode_member(const std::string& name, std::string_view text) {
  member_info info;
  info.name = name;
  bool has_address = false;
  for (std::string_view field : split(text, ';')) {
    const std::size_t equals = field.find('=');
    if (equals == std::string_view::npos) {
      return error(errc::parse_error, "member " + name + ": field '" + std::string(field) + "' has no '='");
    }
    const std::string_view key = field.substr(0, equals), value = field.substr(equals + 1);
    if (key == "address") {
      info.address = std::string(value);
      has_address = !value.empty();
    } else if (key == "cores" || key == "gpus") {
      auto count = number(name, key, value);
      if (!count) return count.error();
      (key == "cores" ? info.cores : info.gpus) = *count;
    } else if (key == "labels") {
      if (value.empty()) continue;
      for (std::string_view label : split(value, ',')) {
        const std::size_t colon = label.find(':');
        if (colon == std::string_view::npos || colon == 0) {
          return error(errc::parse_error, "member " + name + ": label '" + std::string(label) + "' is not key:value");
        }
        info.labels[std::string(label.substr(0, colon))] = std::string(label.substr(colon + 1));
      }
    } else {
      return error(errc::parse_error, "member " + name + ": unknown field '" + std::string(key) + "'");
    }
  }
  if (!has_address) return error(errc::parse_error, "member " + name + ": no address");
  return info;
}

membership::membership(control_plane& plane, std::string cluster)
    : plane_(plane), prefix_(std::move(cluster) + "/members/") {}

result<member> membership::join(const member_info& self, std::chrono::milliseconds ttl, std::chrono::milliseconds now) {
  auto lease = plane_.grant(ttl);
  if (!lease) return lease.error();
  const std::string key = prefix_ + self.name;
  auto entered = plane_.commit({{compare::absent(key)},
                                {operation::put(key, encode_member(self), *lease)},
                                {operation::get(key_range::single(key))}});
  if (!entered || !entered->succeeded) {
    (void)plane_.revoke(*lease);
    if (!entered) return entered.error();
    const auto& holder = entered->results.at(0).found;
    return error(errc::not_ready, "member name " + self.name + " is held by a live member (lease " +
                                      (holder.empty() ? std::string("?") : std::to_string(holder.front().lease)) +
                                      "): a node restarted under its name joins once that lease has expired");
  }
  auto stored = plane_.range(key_range::single(key));
  if (!stored) return stored.error();
  if (stored->empty()) return error(errc::not_found, "member " + self.name + ": its key vanished as it joined");
  self_ = {self, stored->front().create_revision, *lease};
  ttl_ = ttl;
  renewed_ = now;
  joined_ = true;
  return self_;
}

status membership::renew(std::chrono::milliseconds now) {
  if (!joined_) return error(errc::not_ready, "member has not joined");
  auto renewed = plane_.keep_alive(self_.lease);
  if (!renewed) {
    joined_ = false;
    // Expired, or unknown: either way this node must stop acting as a member now.
    const char* what = renewed.error().code() == errc::not_found ? ") lost its lease: " : ") could not renew its lease: ";
    return error(renewed.error().code(), "member " + self_.info.name + " (incarnation " + std::to_string(self_.incarnation) + what +
                                             renewed.error().message());
  }
  renewed_ = now;
  return {};
}

bool membership::may_serve(std::chrono::milliseconds now) const {
  return joined_ && now - renewed_ < ttl_ * 2 / 3;
}

status membership::leave() {
  if (!joined_) return {};
  joined_ = false;
  return plane_.revoke(self_.lease);
}

result<std::vector<member>> membership::members() {
  auto found = plane_.range(key_range::prefix(prefix_));
  if (!found) return found.error();
  std::vector<member> all;
  for (const key_value& entry : *found) {
    auto info = decode_member(entry.key.substr(prefix_.size()), entry.value);
    if (!info) return info.error();
    all.push_back({std::move(info.value()), entry.create_revision, entry.lease});
  }
  return all;
}

result<watch_id> membership::follow(std::function<void(const std::vector<member>&)> changed) {
  // Watched from the revision before the first read: a change between the two is seen
  // (perhaps twice), never missed.
  auto before = plane_.current_revision();
  if (!before) return before.error();
  auto now = members();
  if (!now) return now.error();
  changed(*now);
  return plane_.watch(key_range::prefix(prefix_), *before + 1, [this, changed](const watch_response&) {
    if (auto current = members()) changed(*current);
  });
}

}  // namespace rml::control
