#include "topologies/placement_controller.hpp"

#include <algorithm>
#include <charconv>
#include <sstream>

#include "topologies/membership.hpp"

namespace rml::control {
namespace {

result<std::uint32_t> parse_count(const std::string& text, const std::string& what) {
  std::uint32_t value = 0;
  auto [end, failure] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (failure != std::errc() || end != text.data() + text.size()) return error(errc::corrupted, what + " holds '" + text + "', not a count");
  return value;
}

}  // namespace

std::string encode_placement(const topologies::placement_plan& plan) {
  std::string text;
  for (const auto& placed : plan.replicas) {
    text += placed.component + " " + std::to_string(placed.replica) + " " + placed.node + " " + std::to_string(placed.cores) + " " +
            std::to_string(placed.gpus) + "\n";
  }
  return text;
}

result<topologies::placement_plan> decode_placement(const std::string& text) {
  topologies::placement_plan plan;
  std::istringstream lines(text);
  std::string line;
  int number = 0;
  while (std::getline(lines, line)) {
    ++number;
    std::istringstream fields(line);
    topologies::placed_replica placed;
    if (!(fields >> placed.component >> placed.replica >> placed.node >> placed.cores >> placed.gpus)) {
      return error(errc::corrupted, "desired placement, line " + std::to_string(number) + ": '" + line +
                                        "' is not 'component replica node cores gpus'");
    }
    plan.cores_used[placed.node] += placed.cores;
    plan.gpus_used[placed.node] += placed.gpus;
    plan.replicas.push_back(std::move(placed));
  }
  return plan;
}

placement_controller::placement_controller(control_plane& plane, std::string cluster)
    : plane_(plane), cluster_(cluster), prefix_(cluster + "/"), election_(plane, cluster + "/placement") {}

result<std::optional<std::string>> placement_controller::read(const std::string& name) {
  auto found = plane_.range(key_range::single(key(name)));
  if (!found) return found.error();
  if (found->empty()) return std::optional<std::string>();
  return std::optional<std::string>(found->front().value);
}

result<bool> placement_controller::reconcile(const key_value& leader) {
  auto requested = read("requested/topology");
  if (!requested) return requested.error();
  auto placed_text = read("desired/placement");
  if (!placed_text) return placed_text.error();
  auto placed_error = read("desired/placement_error");
  if (!placed_error) return placed_error.error();

  // What desired state should be: (topology, placement, error).
  std::string topology_text, placement_text, failure;
  bool keep_previous = false;  // the request unreadable, or no members: leave things as they are
  if (requested->has_value()) {
    topology_text = **requested;
    auto declared = parse_deployed(topology_text);
    if (!declared) {
      failure = declared.error().message();
      keep_previous = true;
    } else {
      auto& wanted = declared.value();
      // The nodes are the members now, whatever the file declared.
      membership members(plane_, cluster_);
      auto live = members.members();
      if (!live) return live.error();
      wanted.nodes.clear();
      for (const auto& node : *live) wanted.nodes.push_back({node.info.name, node.info.labels, node.info.cores, {}, node.info.gpus});
      for (auto& component : wanted.components) {
        if (component.replicas_max <= component.replicas_min) continue;
        revision base = 0;
        auto scale = wanted_replicas(component, base);
        if (!scale) return scale.error();
        component.replicas_min = scale->replicas;
      }
      std::optional<topologies::placement_plan> previous;
      if (placed_text->has_value()) {
        if (auto decoded = decode_placement(**placed_text)) previous = std::move(decoded.value());
      }
      if (wanted.nodes.empty()) {
        failure = "no node is a member of cluster " + cluster_;
        keep_previous = true;
      } else if (auto plan = topologies::plan_placement(wanted, previous ? &*previous : nullptr, true)) {
        // What fits is placed; what does not waits, saying why, until a node can take it.
        placement_text = encode_placement(*plan);
        for (const auto& why : plan->unplaced) failure += (failure.empty() ? "" : "; ") + why;
      } else {
        failure = plan.error().message();
        keep_previous = true;
      }
    }
    // A request that cannot be read, or a cluster with no members, leaves the placement in
    // force as it was (what still runs keeps running) and says why.
    if (keep_previous) placement_text = placed_text->value_or("");
  }
  auto placed_topology = read("desired/topology");
  if (!placed_topology) return placed_topology.error();
  if (placed_topology->value_or("") == topology_text && placed_text->value_or("") == placement_text &&
      placed_error->value_or("") == failure) {
    return false;  // nothing changed: no write, no new revision
  }
  transaction write{{election::still_leader(leader)},
                    {operation::put(key("desired/topology"), topology_text), operation::put(key("desired/placement"), placement_text),
                     operation::put(key("desired/placement_error"), failure)},
                    {}};
  if (!requested->has_value()) {
    write.success = {operation::erase(key_range::single(key("desired/topology"))),
                     operation::erase(key_range::single(key("desired/placement"))),
                     operation::erase(key_range::single(key("desired/placement_error"))),
                     operation::erase(key_range::prefix(key("desired/scale/")))};
  }
  auto done = plane_.commit(write);
  if (!done) return done.error();
  if (!done->succeeded) {
    return error(errc::unauthorized, "controller " + leader.key + " (epoch " + std::to_string(leader.create_revision) +
                                         ") no longer leads: its placement is refused");
  }
  return true;
}

node_assignment assignment_of(const topologies::topology& declared, const topologies::placement_plan& plan,
                              const std::set<std::string>& members, const std::string& node) {
  std::map<std::string, std::string> kind_of;
  for (const auto& component : declared.components) kind_of[component.name] = component.kind;
  node_assignment out;
  for (const auto& placed : plan.replicas) {
    const auto kind = kind_of.find(placed.component);
    if (kind == kind_of.end()) continue;
    if (placed.node == node) {
      out.here.insert(kind->second);
    } else if (members.count(placed.node)) {
      auto& of_kind = out.elsewhere[kind->second];
      if (std::find(of_kind.begin(), of_kind.end(), placed.node) == of_kind.end()) of_kind.push_back(placed.node);
    }
  }
  for (const auto& kind : out.here) out.elsewhere.erase(kind);
  if (auto serving = out.elsewhere.find("serving"); serving != out.elsewhere.end()) {
    auto& of_serving = serving->second;
    std::rotate(of_serving.begin(), of_serving.begin() + std::ptrdiff_t(std::hash<std::string>{}(node) % of_serving.size()), of_serving.end());
  }
  return out;
}

result<topologies::topology> placement_controller::parse_deployed(const std::string& text) {
  if (!deployed_parse_ || deployed_text_ != text) {
    deployed_text_ = text;
    deployed_parse_ = topologies::parse_topology(text, "the deployed topology");
  }
  return *deployed_parse_;
}

result<component_scale> placement_controller::wanted_replicas(const topologies::component_spec& component, revision& base) {
  component_scale scale{component.name, component.replicas_min, component.replicas_min, component.replicas_max, "min"};
  // A new deploy or a new rml scale moves the base: an autoscaler's count from before it is void.
  auto requested = plane_.range(key_range::single(key("requested/topology")));
  if (!requested) return requested.error();
  base = requested->empty() ? 0 : requested->front().mod_revision;
  auto asked = plane_.range(key_range::single(key("requested/scale/" + component.name)));
  if (!asked) return asked.error();
  if (!asked->empty()) {
    base = std::max(base, asked->front().mod_revision);
    auto count = parse_count(asked->front().value, "scale of " + component.name);
    if (!count) return count.error();
    if (*count >= component.replicas_min && *count <= component.replicas_max) scale.replicas = *count, scale.chosen_by = "rml scale";
  }
  auto scaled = read("desired/scale/" + component.name);
  if (!scaled) return scaled.error();
  if (scaled->has_value()) {
    auto decoded = decode_scaled(**scaled);
    if (decoded && decoded->base == base && decoded->count >= component.replicas_min && decoded->count <= component.replicas_max) {
      scale.replicas = decoded->count, scale.chosen_by = "autoscaler";
    }
  }
  return scale;
}

result<std::vector<scaling_decision>> placement_controller::autoscale(const key_value& leader) {
  std::vector<scaling_decision> decided;
  if (leader.create_revision != looks_epoch_) {
    looks_.clear();  // a new controller (or this one again, elected anew) counts from the start
    looks_epoch_ = leader.create_revision;
  }
  auto requested = read("requested/topology");
  if (!requested) return requested.error();
  if (!requested->has_value()) {
    looks_.clear();
    return decided;
  }
  auto declared = parse_deployed(**requested);
  if (!declared) return decided;  // reconcile says why
  auto placed_text = read("desired/placement");
  if (!placed_text) return placed_text.error();
  if (!placed_text->has_value()) return decided;
  auto plan = decode_placement(**placed_text);
  if (!plan) return plan.error();
  auto loads = plane_.range(key_range::prefix(key("load/")));
  if (!loads) return loads.error();
  for (const auto& component : declared->components) {
    if (component.replicas_max <= component.replicas_min) continue;
    std::vector<load_report> reports;
    std::uint32_t placed = 0;
    for (const auto& replica : plan->replicas) {
      if (replica.component != component.name) continue;
      ++placed;
      const auto wanted_key = load_key(cluster_, replica.node, component.name);
      for (const auto& entry : *loads) {
        if (entry.key != wanted_key) continue;
        if (auto report = decode_load(entry.value)) reports.push_back(*report);
      }
    }
    revision base = 0;
    auto scale = wanted_replicas(component, base);
    if (!scale) return scale.error();
    auto [to, why] = decide_scale(component, scale->replicas, reports, looks_[component.name]);
    if (to == scale->replicas) continue;
    if (to > scale->replicas && placed < scale->replicas) continue;  // what is wanted does not fit yet: more would not either
    auto done = plane_.commit({{election::still_leader(leader)},
                               {operation::put(key("desired/scale/" + component.name), encode_scaled({to, base}))},
                               {}});
    if (!done) return done.error();
    if (!done->succeeded) {
      return error(errc::unauthorized, "controller " + leader.key + " (epoch " + std::to_string(leader.create_revision) +
                                           ") no longer leads: its scaling is refused");
    }
    decided.push_back({component.name, scale->replicas, to, why});
  }
  return decided;
}

result<placement_view> placement_controller::view() {
  placement_view shown;
  auto leader = election_.leader();
  if (!leader) return leader.error();
  if (leader->has_value()) {
    shown.controller = (*leader)->value;
    shown.controller_epoch = (*leader)->create_revision;
  }
  auto topology_text = read("desired/topology");
  if (!topology_text) return topology_text.error();
  if (topology_text->has_value() && !(*topology_text)->empty()) {
    auto declared = parse_deployed(**topology_text);
    shown.topology_name = declared ? declared->name : "(unreadable: " + declared.error().message() + ")";
    for (const auto& component : declared ? declared->components : std::vector<topologies::component_spec>{}) {
      if (component.replicas_max <= component.replicas_min) continue;
      revision base = 0;
      auto scale = wanted_replicas(component, base);
      if (!scale) return scale.error();
      shown.scaling.push_back(*scale);
    }
  }
  auto placement = read("desired/placement");
  if (!placement) return placement.error();
  if (placement->has_value()) {
    auto plan = decode_placement(**placement);
    if (!plan) return plan.error();
    shown.replicas = std::move(plan->replicas);
  }
  auto failure = read("desired/placement_error");
  if (!failure) return failure.error();
  shown.error = failure->value_or("");
  return shown;
}

result<std::optional<deployment>> placement_controller::deployed() {
  // One read of desired/ (one revision): the topology and the plan written together.
  auto found = plane_.range(key_range::prefix(key("desired/")));
  if (!found) return found.error();
  std::string topology_text, placement_text;
  for (const auto& entry : *found) {
    if (entry.key == key("desired/topology")) topology_text = entry.value;
    if (entry.key == key("desired/placement")) placement_text = entry.value;
  }
  if (topology_text.empty()) return std::optional<deployment>();
  auto plan = decode_placement(placement_text);
  if (!plan) return plan.error();
  return std::optional<deployment>(deployment{std::move(topology_text), std::move(plan.value())});
}

status placement_controller::request_deploy(const std::string& text, const std::string& file) {
  auto declared = topologies::parse_topology(text, file);
  if (!declared) return declared.error();
  auto done = plane_.commit({{}, {operation::put(key("requested/topology"), text), operation::erase(key_range::prefix(key("requested/scale/")))}, {}});
  if (!done) return done.error();
  return {};
}

status placement_controller::request_undeploy() {
  auto done = plane_.commit({{}, {operation::erase(key_range::prefix(key("requested/")))}, {}});
  if (!done) return done.error();
  return {};
}

status placement_controller::request_scale(const std::string& component, std::uint32_t replicas) {
  auto requested = read("requested/topology");
  if (!requested) return requested.error();
  if (!requested->has_value()) return error(errc::not_found, "scale " + component + ": nothing is deployed in cluster " + cluster_);
  auto declared = parse_deployed(**requested);
  if (!declared) return declared.error();
  for (const auto& spec : declared->components) {
    if (spec.name != component) continue;
    if (replicas < spec.replicas_min || replicas > spec.replicas_max) {
      return error(errc::invalid_argument, "scale " + component + " to " + std::to_string(replicas) + ": the topology allows " +
                                               std::to_string(spec.replicas_min) + ".." + std::to_string(spec.replicas_max));
    }
    // Only while the same request stands: a deploy in between makes this fail, not apply.
    auto done = plane_.commit({{compare::value_is(key("requested/topology"), compare::relation::equal, **requested)},
                               {operation::put(key("requested/scale/" + component), std::to_string(replicas))},
                               {}});
    if (!done) return done.error();
    if (!done->succeeded) return error(errc::not_ready, "scale " + component + ": the deployed topology changed meanwhile; try again");
    return {};
  }
  std::string known;
  for (const auto& spec : declared->components) known += (known.empty() ? "" : ", ") + spec.name;
  return error(errc::not_found, "scale " + component + ": the deployed topology has no such component (it has " + known + ")");
}

}  // namespace rml::control
