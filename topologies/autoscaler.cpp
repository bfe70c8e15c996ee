#include "topologies/autoscaler.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

namespace rml::control {

std::string encode_load(const load_report& report) {
  char text[160];
  std::snprintf(text, sizeof text, "backlog=%.4f busy=%.4f replicas=%g looks=%llu", report.backlog_share, report.busy, report.replicas,
                (unsigned long long)report.looks);
  return text;
}

result<load_report> decode_load(const std::string& text) {
  load_report report;
  std::istringstream fields(text);
  std::string field;
  int seen = 0;
  while (fields >> field) {
    const auto equals = field.find('=');
    const auto name = field.substr(0, equals);
    const auto value = equals == std::string::npos ? std::string() : field.substr(equals + 1);
    char* end = nullptr;
    const double number = std::strtod(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || !std::isfinite(number) || number < 0) {
      return error(errc::corrupted, "load report '" + text + "': '" + field + "' is not name=non-negative number");
    }
    if (name == "backlog") report.backlog_share = std::min(number, 1.0), seen |= 1;
    else if (name == "busy") report.busy = number, seen |= 2;
    else if (name == "replicas") report.replicas = number, seen |= 4;
    else if (name == "looks") report.looks = std::uint64_t(number), seen |= 8;
  }
  if (seen != 15) return error(errc::corrupted, "load report '" + text + "': needs backlog, busy, replicas and looks");
  return report;
}

std::string load_key(const std::string& cluster, const std::string& node, const std::string& component) {
  return cluster + "/load/" + node + "/" + component;
}

std::string encode_scaled(const scaled_count& scaled) { return std::to_string(scaled.count) + " " + std::to_string(scaled.base); }

std::optional<scaled_count> decode_scaled(const std::string& text) {
  std::istringstream fields(text);
  scaled_count scaled;
  if (!(fields >> scaled.count >> scaled.base)) return std::nullopt;
  return scaled;
}

std::pair<std::uint32_t, std::string> decide_scale(const topologies::component_spec& component, std::uint32_t replicas,
                                                    const std::vector<load_report>& reports, scaling_looks& looks) {
  double backlog = 0, busy = 0;
  std::size_t informed = 0;
  for (const auto& report : reports) {
    if (report.looks == 0) continue;
    backlog += report.backlog_share;
    busy += report.busy;
    ++informed;
  }
  if (informed == 0) return {replicas, "no load reported"};  // keeps the counts: a node between reports
  const double mean_backlog = backlog / double(informed);
  // The compute the replicas not reporting do is taken to be like the others'.
  const double total_busy = busy * double(std::max<std::size_t>(replicas, informed)) / double(informed);
  char seen[160];
  std::snprintf(seen, sizeof seen, "backlog on %.0f%% of looks, %.2f replica-seconds of compute per second on %u replicas", mean_backlog * 100,
                total_busy, replicas);
  const auto& policy = component.scaling;
  const bool pressed = mean_backlog >= 0.5;
  // One fewer replica must be far from the load per replica that last made a backlog: queues
  // form well before a replica is busy all the time.
  const double pressed_per_replica = looks.pressed_busy > 0 ? std::min(1.0, looks.pressed_busy) : 1.0;
  const bool slack = backlog == 0 && replicas > 1 && total_busy / double(replicas - 1) <= policy.down_utilization * pressed_per_replica;
  looks.backlog = pressed ? looks.backlog + 1 : 0;
  looks.idle = slack ? looks.idle + 1 : 0;
  if (looks.backlog >= policy.up_after && replicas < component.replicas_max) {
    looks.backlog = looks.idle = 0;
    looks.pressed_busy = total_busy / double(replicas);
    return {replicas + 1, seen};
  }
  if (looks.idle >= policy.down_after && replicas > component.replicas_min) {
    looks.backlog = looks.idle = 0;
    return {replicas - 1, seen};
  }
  return {replicas, seen};
}

}  // namespace rml::control
