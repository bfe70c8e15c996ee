#include "topologies/topology_file.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

namespace rml::topologies {
namespace {

/// What each kind is and may be told. Option names follow `rml run`'s flags (without the
/// dashes); their values are checked by the component that takes them when it starts.
struct kind_rules {
  std::string kind;
  /// At most this many replicas (stateful components run once in this format's first
  /// version: their state is on one node's disk).
  std::uint32_t replicas_max;
  std::vector<std::string> options;
  /// Kinds this kind's streams may go to.
  std::vector<std::string> streams_to;
};

const std::vector<kind_rules>& rules() {
  static const std::vector<kind_rules> all{
      {"source", 1, {"dataset-dir", "train-csv", "label-column", "rate", "epochs", "seed", "stream-drift-at", "stream-drift"}, {"ingest", "monitor"}},
      {"ingest", 1, {"ingest-port", "bind", "feature-magnitude-max"}, {"feature", "monitor"}},
      {"feature", 1, {"pipeline"}, {"trainer", "monitor"}},
      {"trainer", 1, {"model", "batch", "lr", "momentum", "weight-decay", "seed", "threads", "device", "publish-steps", "clip-gradient-norm",
        "drift-reference-rows"},
       {"registry", "monitor"}},
      {"registry", 1, {"gate-accuracy-drop"}, {"serving", "monitor"}},
      {"serving", 256,
       {"policy", "predict-port", "http-port", "bind", "http-threads", "model-name", "replica-threads", "serving-device", "serve-batch-max",
        "queue-delay-us", "adaptive-batching", "latency-objective-us", "queue-max", "cache-entries", "drain-timeout-ms", "drift-sample-every"},
       {"monitor"}},
      {"monitor", 1,
       {"drift-adwin-delta", "drift-ph-threshold", "drift-ph-delta", "drift-ph-alpha", "drift-ddm-warning", "drift-ddm-drift", "drift-psi", "drift-features-share",
        "drift-window-rows", "alert-webhook", "on-drift", "retrain-events-max", "retrain-shadow-comparisons", "retrain-canary-percent",
        "retrain-timeout-s"},
       {}},
  };
  return all;
}

const kind_rules* rules_of(const std::string& kind) {
  for (const auto& each : rules()) {
    if (each.kind == kind) return &each;
  }
  return nullptr;
}

std::string joined(const std::vector<std::string>& items) {
  std::string text;
  for (const auto& item : items) text += (text.empty() ? "" : ", ") + item;
  return text.empty() ? "none" : text;
}

template <class Set>
std::string joined_keys(const Set& items) {
  return joined(std::vector<std::string>(items.begin(), items.end()));
}

/// Reads one YAML document, turning every mistake into an error that says where.
class reader {
 public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  source_position at(const YAML::Node& node) const {
    const auto mark = node.Mark();
    return {file_, mark.line + 1, mark.column + 1};
  }

  error fail(const YAML::Node& node, const std::string& field, const std::string& what) const {
    return error(errc::invalid_argument, to_string(at(node)) + ": " + field + ": " + what);
  }

  /// A map's keys must be among `allowed`.
  status only_keys(const YAML::Node& map, const std::string& field, const std::set<std::string>& allowed) const {
    for (const auto& entry : map) {
      const auto key = entry.first.as<std::string>();
      if (!allowed.count(key)) return fail(entry.first, field.empty() ? key : field + "." + key, "unknown field (allowed: " + joined_keys(allowed) + ")");
    }
    return {};
  }

  result<std::string> text(const YAML::Node& node, const std::string& field) const {
    if (!node.IsScalar()) return fail(node, field, "expected a text value");
    return node.as<std::string>();
  }

  result<std::string> name(const YAML::Node& node, const std::string& field) const {
    auto value = text(node, field);
    if (!value) return value.error();
    const auto& name = value.value();
    if (name.empty() || name.size() > 63 ||
        !std::all_of(name.begin(), name.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'; })) {
      return fail(node, field, "'" + name + "' is not a name (1 to 63 letters, digits, '-' or '_')");
    }
    return name;
  }

  result<std::uint32_t> count(const YAML::Node& node, const std::string& field, std::uint32_t low, std::uint32_t high) const {
    auto value = text(node, field);
    if (!value) return value.error();
    const std::string& digits = value.value();
    const auto range = "a whole number in [" + std::to_string(low) + ", " + std::to_string(high) + "]";
    if (digits.empty() || digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos) {
      return fail(node, field, "'" + digits + "' is not " + range);
    }
    const auto number = std::uint32_t(std::stoul(digits));
    if (number < low || number > high) return fail(node, field, std::to_string(number) + " is out of range (" + range + ")");
    return number;
  }

  /// A number in (0, 1].
  result<double> fraction(const YAML::Node& node, const std::string& field) const {
    auto value = text(node, field);
    if (!value) return value.error();
    char* end = nullptr;
    const double number = std::strtod(value->c_str(), &end);
    if (value->empty() || end != value->c_str() + value->size() || !(number > 0.0 && number <= 1.0)) {
      return fail(node, field, "'" + value.value() + "' is not a fraction in (0, 1]");
    }
    return number;
  }

  result<bool> flag(const YAML::Node& node, const std::string& field) const {
    auto value = text(node, field);
    if (!value) return value.error();
    if (value.value() == "true") return true;
    if (value.value() == "false") return false;
    return fail(node, field, "'" + value.value() + "' is not true or false");
  }

  result<std::map<std::string, std::string>> labels(const YAML::Node& node, const std::string& field) const {
    if (!node.IsMap()) return fail(node, field, "expected a map of label: value");
    std::map<std::string, std::string> out;
    for (const auto& entry : node) {
      auto key = name(entry.first, field);
      if (!key) return key.error();
      auto value = text(entry.second, field + "." + key.value());
      if (!value) return value.error();
      out[key.value()] = value.value();
    }
    return out;
  }

  /// Cores a node offers or a replica takes.
  result<std::uint32_t> cores(const YAML::Node& node, const std::string& field) const { return count(node, field, 1, 4096); }
  /// GPUs a node offers or a replica takes.
  result<std::uint32_t> gpus(const YAML::Node& node, const std::string& field) const { return count(node, field, 0, 64); }

  /// Reads `map[key]` with `parse` (a reader method, or a callable taking the reader, the node
  /// and the field) into `out` when it is there; absent, `out` keeps its default.
  template <class T, class Parse>
  status optional(const YAML::Node& map, const char* key, const std::string& field, T& out, Parse parse) const {
    if (!map[key]) return {};
    auto value = std::invoke(parse, *this, map[key], field + "." + key);
    if (!value) return value.error();
    out = std::move(value.value());
    return {};
  }

  const std::string& file() const { return file_; }

 private:
  std::string file_;
};

status read_nodes(const reader& in, const YAML::Node& list, topology& out) {
  if (!list.IsSequence()) return in.fail(list, "nodes", "expected a list of nodes");
  for (std::size_t index = 0; index < list.size(); ++index) {
    const auto& item = list[index];
    const std::string field = "nodes[" + std::to_string(index) + "]";
    if (!item.IsMap()) return in.fail(item, field, "expected a map with name, labels, cores, gpus");
    if (auto keys = in.only_keys(item, field, {"name", "labels", "cores", "gpus"}); !keys) return keys;
    node_spec node;
    node.at = in.at(item);
    if (!item["name"]) return in.fail(item, field + ".name", "missing (every node has a name)");
    auto name = in.name(item["name"], field + ".name");
    if (!name) return name.error();
    node.name = name.value();
    if (auto labels = in.optional(item, "labels", field, node.labels, &reader::labels); !labels) return labels;
    if (auto cores = in.optional(item, "cores", field, node.cores, &reader::cores); !cores) return cores;
    if (auto gpus = in.optional(item, "gpus", field, node.gpus, &reader::gpus); !gpus) return gpus;
    for (const auto& earlier : out.nodes) {
      if (earlier.name == node.name) {
        return in.fail(item["name"], field + ".name", "node '" + node.name + "' is declared twice (first at " + to_string(earlier.at) + ")");
      }
    }
    out.nodes.push_back(std::move(node));
  }
  return {};
}

status read_placement(const reader& in, const YAML::Node& map, const std::string& field, placement_spec& out) {
  if (!map.IsMap()) return in.fail(map, field, "expected a map with node, node_selector, anti_affinity, cores, gpus");
  if (auto keys = in.only_keys(map, field, {"node", "node_selector", "anti_affinity", "cores", "gpus"}); !keys) return keys;
  if (auto node = in.optional(map, "node", field, out.node, &reader::name); !node) return node;
  if (auto selector = in.optional(map, "node_selector", field, out.node_selector, &reader::labels); !selector) return selector;
  if (auto anti = in.optional(map, "anti_affinity", field, out.anti_affinity, &reader::flag); !anti) return anti;
  if (auto gpus = in.optional(map, "gpus", field, out.gpus, &reader::gpus); !gpus) return gpus;
  return in.optional(map, "cores", field, out.cores, &reader::cores);
}

status read_components(const reader& in, const YAML::Node& list, topology& out) {
  if (!list.IsSequence() || list.size() == 0) return in.fail(list, "components", "expected a non-empty list of components");
  std::vector<std::string> kinds;
  for (const auto& each : rules()) kinds.push_back(each.kind);
  for (std::size_t index = 0; index < list.size(); ++index) {
    const auto& item = list[index];
    const std::string field = "components[" + std::to_string(index) + "]";
    if (!item.IsMap()) return in.fail(item, field, "expected a map with name, kind, options, replicas, scaling, placement");
    if (auto keys = in.only_keys(item, field, {"name", "kind", "options", "replicas", "scaling", "placement"}); !keys) return keys;
    component_spec component;
    component.at = in.at(item);
    if (!item["name"]) return in.fail(item, field + ".name", "missing (every component has a name)");
    auto name = in.name(item["name"], field + ".name");
    if (!name) return name.error();
    component.name = name.value();
    if (!item["kind"]) return in.fail(item, field + ".kind", "missing (allowed: " + joined(kinds) + ")");
    auto kind = in.text(item["kind"], field + ".kind");
    if (!kind) return kind.error();
    const auto* rule = rules_of(kind.value());
    if (!rule) return in.fail(item["kind"], field + ".kind", "unknown kind '" + kind.value() + "' (allowed: " + joined(kinds) + ")");
    component.kind = kind.value();
    if (item["options"]) {
      const auto& options = item["options"];
      if (!options.IsMap()) return in.fail(options, field + ".options", "expected a map of option: value");
      for (const auto& entry : options) {
        const auto key = entry.first.as<std::string>();
        if (std::find(rule->options.begin(), rule->options.end(), key) == rule->options.end()) {
          return in.fail(entry.first, field + ".options." + key, "not an option of a " + rule->kind + " (allowed: " + joined(rule->options) + ")");
        }
        auto value = in.text(entry.second, field + ".options." + key);
        if (!value) return value.error();
        component.options[key] = value.value();
      }
    }
    if (const auto& replicas = item["replicas"]; replicas) {
      const auto within = "; a " + rule->kind + " runs at most " + std::to_string(rule->replicas_max);
      if (replicas.IsScalar()) {
        auto count = in.count(replicas, field + ".replicas", 1, rule->replicas_max);
        if (!count) return error(count.error().code(), count.error().message() + (rule->replicas_max == 1 ? within : ""));
        component.replicas_min = component.replicas_max = count.value();
      } else if (replicas.IsMap()) {
        if (auto keys = in.only_keys(replicas, field + ".replicas", {"min", "max"}); !keys) return keys;
        if (!replicas["min"] || !replicas["max"]) return in.fail(replicas, field + ".replicas", "expected both min and max");
        auto low = in.count(replicas["min"], field + ".replicas.min", 1, rule->replicas_max);
        if (!low) return error(low.error().code(), low.error().message() + (rule->replicas_max == 1 ? within : ""));
        auto high = in.count(replicas["max"], field + ".replicas.max", 1, rule->replicas_max);
        if (!high) return error(high.error().code(), high.error().message() + (rule->replicas_max == 1 ? within : ""));
        if (high.value() < low.value()) {
          return in.fail(replicas, field + ".replicas", "max (" + std::to_string(high.value()) + ") is below min (" + std::to_string(low.value()) + ")");
        }
        component.replicas_min = low.value();
        component.replicas_max = high.value();
      } else {
        return in.fail(replicas, field + ".replicas", "expected a number or {min, max}");
      }
    }
    if (const auto& scaling = item["scaling"]; scaling) {
      if (component.replicas_max <= component.replicas_min) {
        return in.fail(scaling, field + ".scaling", "only a component with replicas {min, max} and max above min scales");
      }
      if (!scaling.IsMap()) return in.fail(scaling, field + ".scaling", "expected a map with up_after, down_after, down_utilization");
      if (auto keys = in.only_keys(scaling, field + ".scaling", {"up_after", "down_after", "down_utilization"}); !keys) return keys;
      if (scaling["up_after"]) {
        auto looks = in.count(scaling["up_after"], field + ".scaling.up_after", 1, 1000);
        if (!looks) return looks.error();
        component.scaling.up_after = looks.value();
      }
      if (scaling["down_after"]) {
        auto looks = in.count(scaling["down_after"], field + ".scaling.down_after", 1, 1000);
        if (!looks) return looks.error();
        component.scaling.down_after = looks.value();
      }
      if (scaling["down_utilization"]) {
        auto share = in.fraction(scaling["down_utilization"], field + ".scaling.down_utilization");
        if (!share) return share.error();
        component.scaling.down_utilization = share.value();
      }
    }
    if (item["placement"]) {
      if (auto placed = read_placement(in, item["placement"], field + ".placement", component.placement); !placed) return placed;
      if (!component.placement.node.empty()) {
        const bool known = std::any_of(out.nodes.begin(), out.nodes.end(), [&](const node_spec& node) { return node.name == component.placement.node; });
        if (!known) {
          std::vector<std::string> names;
          for (const auto& node : out.nodes) names.push_back(node.name);
          return in.fail(item["placement"]["node"], field + ".placement.node", "unknown node '" + component.placement.node + "' (declared: " + joined(names) + ")");
        }
      }
    }
    for (const auto& earlier : out.components) {
      if (earlier.name == component.name) {
        return in.fail(item["name"], field + ".name", "component '" + component.name + "' is declared twice (first at " + to_string(earlier.at) + ")");
      }
    }
    out.components.push_back(std::move(component));
  }
  return {};
}

const component_spec* component_named(const topology& declared, const std::string& name) {
  for (const auto& component : declared.components) {
    if (component.name == name) return &component;
  }
  return nullptr;
}

status read_streams(const reader& in, const YAML::Node& list, topology& out) {
  if (!list.IsSequence()) return in.fail(list, "streams", "expected a list of {from, to}");
  std::vector<std::string> names;
  for (const auto& component : out.components) names.push_back(component.name);
  for (std::size_t index = 0; index < list.size(); ++index) {
    const auto& item = list[index];
    const std::string field = "streams[" + std::to_string(index) + "]";
    if (!item.IsMap()) return in.fail(item, field, "expected a map with from and to");
    if (auto keys = in.only_keys(item, field, {"from", "to"}); !keys) return keys;
    stream_spec stream;
    stream.at = in.at(item);
    const component_spec* ends[2] = {nullptr, nullptr};
    const char* sides[2] = {"from", "to"};
    for (int side = 0; side < 2; ++side) {
      if (!item[sides[side]]) return in.fail(item, field + "." + sides[side], "missing");
      auto name = in.text(item[sides[side]], field + "." + sides[side]);
      if (!name) return name.error();
      ends[side] = component_named(out, name.value());
      if (!ends[side]) return in.fail(item[sides[side]], field + "." + sides[side], "unknown component '" + name.value() + "' (declared: " + joined(names) + ")");
    }
    const auto& allowed = rules_of(ends[0]->kind)->streams_to;
    if (std::find(allowed.begin(), allowed.end(), ends[1]->kind) == allowed.end()) {
      return in.fail(item, field, "a " + ends[0]->kind + " (" + ends[0]->name + ") cannot stream to a " + ends[1]->kind + " (" + ends[1]->name +
                                      "); a " + ends[0]->kind + " streams to: " + joined(allowed));
    }
    stream.from = ends[0]->name;
    stream.to = ends[1]->name;
    for (const auto& earlier : out.streams) {
      if (earlier.from == stream.from && earlier.to == stream.to) return in.fail(item, field, "declared twice (first at " + to_string(earlier.at) + ")");
    }
    out.streams.push_back(std::move(stream));
  }
  return {};
}

status read_supervision(const reader& in, const YAML::Node& list, topology& out) {
  if (!list.IsSequence()) return in.fail(list, "supervision", "expected a list of supervisors");
  const std::set<std::string> strategies{"one_for_one", "one_for_all", "rest_for_one"};
  for (std::size_t index = 0; index < list.size(); ++index) {
    const auto& item = list[index];
    const std::string field = "supervision[" + std::to_string(index) + "]";
    if (!item.IsMap()) return in.fail(item, field, "expected a map with name, strategy, intensity, period_ms, children");
    if (auto keys = in.only_keys(item, field, {"name", "strategy", "intensity", "period_ms", "children"}); !keys) return keys;
    supervisor_spec supervisor;
    supervisor.at = in.at(item);
    if (!item["name"]) return in.fail(item, field + ".name", "missing (every supervisor has a name)");
    auto name = in.name(item["name"], field + ".name");
    if (!name) return name.error();
    supervisor.name = name.value();
    if (component_named(out, supervisor.name)) return in.fail(item["name"], field + ".name", "'" + supervisor.name + "' already names a component");
    if (item["strategy"]) {
      auto strategy = in.text(item["strategy"], field + ".strategy");
      if (!strategy) return strategy.error();
      if (!strategies.count(strategy.value())) {
        return in.fail(item["strategy"], field + ".strategy", "unknown strategy '" + strategy.value() + "' (allowed: " + joined_keys(strategies) + ")");
      }
      supervisor.strategy = strategy.value();
    }
    auto intensity_of = [](const reader& in, const YAML::Node& node, const std::string& at) { return in.count(node, at, 0, 1000); };
    auto period_of = [](const reader& in, const YAML::Node& node, const std::string& at) { return in.count(node, at, 1, 3'600'000); };
    if (auto intensity = in.optional(item, "intensity", field, supervisor.intensity, intensity_of); !intensity) return intensity;
    if (auto period = in.optional(item, "period_ms", field, supervisor.period_ms, period_of); !period) return period;
    const auto& children = item["children"];
    if (!children || !children.IsSequence() || children.size() == 0) {
      return in.fail(children ? children : item, field + ".children", "expected a non-empty list of component or supervisor names");
    }
    for (std::size_t child = 0; child < children.size(); ++child) {
      auto child_name = in.text(children[child], field + ".children[" + std::to_string(child) + "]");
      if (!child_name) return child_name.error();
      supervisor.children.push_back(child_name.value());
    }
    for (const auto& earlier : out.supervisors) {
      if (earlier.name == supervisor.name) {
        return in.fail(item["name"], field + ".name", "supervisor '" + supervisor.name + "' is declared twice (first at " + to_string(earlier.at) + ")");
      }
    }
    out.supervisors.push_back(std::move(supervisor));
  }
  // One tree: every child is known and has one parent; every component has a supervisor;
  // exactly one supervisor is nobody's child (the root).
  std::map<std::string, const supervisor_spec*> parent;
  for (const auto& supervisor : out.supervisors) {
    for (const auto& child : supervisor.children) {
      const bool is_supervisor = std::any_of(out.supervisors.begin(), out.supervisors.end(), [&](const supervisor_spec& s) { return s.name == child; });
      if (!component_named(out, child) && !is_supervisor) {
        return error(errc::invalid_argument, to_string(supervisor.at) + ": supervision." + supervisor.name + ".children: unknown child '" + child + "'");
      }
      if (child == supervisor.name) {
        return error(errc::invalid_argument, to_string(supervisor.at) + ": supervision." + supervisor.name + ".children: a supervisor cannot supervise itself");
      }
      if (parent.count(child)) {
        return error(errc::invalid_argument, to_string(supervisor.at) + ": supervision." + supervisor.name + ".children: '" + child +
                                                 "' is already supervised by " + parent[child]->name + " (one parent each)");
      }
      parent[child] = &supervisor;
    }
  }
  if (out.supervisors.empty()) return {};
  for (const auto& component : out.components) {
    if (!parent.count(component.name)) {
      return error(errc::invalid_argument, to_string(component.at) + ": components." + component.name + ": no supervisor has it among its children");
    }
  }
  std::vector<std::string> roots;
  for (const auto& supervisor : out.supervisors) {
    if (!parent.count(supervisor.name)) roots.push_back(supervisor.name);
  }
  if (roots.size() != 1) {
    return error(errc::invalid_argument, to_string(out.supervisors.front().at) + ": supervision: expected one root supervisor, found " +
                                             (roots.empty() ? std::string("none (the supervisors supervise each other in a cycle)") : joined(roots)));
  }
  // Every supervisor hangs from the root: one that does not is in a cycle of supervisors.
  std::set<std::string> reached{roots.front()};
  for (bool grew = true; grew;) {
    grew = false;
    for (const auto& supervisor : out.supervisors) {
      if (!reached.count(supervisor.name)) continue;
      for (const auto& child : supervisor.children) grew = reached.insert(child).second || grew;
    }
  }
  for (const auto& supervisor : out.supervisors) {
    if (!reached.count(supervisor.name)) {
      return error(errc::invalid_argument, to_string(supervisor.at) + ": supervision." + supervisor.name +
                                               ": not under the root supervisor " + roots.front() + " (supervisors that supervise each other in a cycle)");
    }
  }
  return {};
}

}  // namespace

std::string to_string(const source_position& at) { return at.file + ":" + std::to_string(at.line) + ":" + std::to_string(at.column); }

const std::vector<std::string>& component_kinds() {
  static const std::vector<std::string> kinds = [] {
    std::vector<std::string> out;
    for (const auto& each : rules()) out.push_back(each.kind);
    return out;
  }();
  return kinds;
}

result<topology> parse_topology(const std::string& text, const std::string& file) {
  YAML::Node document;
  try {
    document = YAML::Load(text);
  } catch (const YAML::Exception& failure) {
    return error(errc::parse_error, file + ":" + std::to_string(failure.mark.line + 1) + ":" + std::to_string(failure.mark.column + 1) +
                                        ": not YAML: " + failure.msg);
  }
  const reader in(file);
  if (!document.IsMap()) return error(errc::invalid_argument, file + ":1:1: expected a topology (a map with name, nodes, components, streams, supervision)");
  try {
    if (auto keys = in.only_keys(document, "", {"name", "nodes", "components", "streams", "supervision"}); !keys) return keys.error();
    topology out;
    if (!document["name"]) return in.fail(document, "name", "missing (a topology has a name)");
    auto name = in.name(document["name"], "name");
    if (!name) return name.error();
    out.name = name.value();
    if (document["nodes"]) {
      if (auto nodes = read_nodes(in, document["nodes"], out); !nodes) return nodes.error();
    }
    if (!document["components"]) return in.fail(document, "components", "missing (a topology runs at least one component)");
    if (auto components = read_components(in, document["components"], out); !components) return components.error();
    if (document["streams"]) {
      if (auto streams = read_streams(in, document["streams"], out); !streams) return streams.error();
    }
    if (document["supervision"]) {
      if (auto supervision = read_supervision(in, document["supervision"], out); !supervision) return supervision.error();
    }
    // Placement must be possible on the nodes declared (none declared: one local node).
    if (!out.nodes.empty()) {
      if (auto plan = plan_placement(out); !plan) return plan.error();
    }
    return out;
  } catch (const YAML::Exception& failure) {
    return error(errc::invalid_argument, file + ":" + std::to_string(failure.mark.line + 1) + ":" + std::to_string(failure.mark.column + 1) + ": " + failure.msg);
  }
}

result<topology> load_topology(const std::string& path) {
  std::ifstream file(path);
  if (!file) return error(errc::io_error, path + ": cannot open the topology file");
  std::ostringstream text;
  text << file.rdbuf();
  return parse_topology(text.str(), path);
}

result<placement_plan> plan_placement(const topology& declared, const placement_plan* keep, bool partial) {
  placement_plan plan;
  std::vector<node_spec> nodes = declared.nodes;
  // Without nodes, one local node that refuses nothing (rml run checks its device itself).
  if (nodes.empty()) nodes.push_back({"local", {}, 4096, {}, 64});
  for (const auto& node : nodes) plan.cores_used[node.name] = 0;
  // Feature reads the event log ingest writes, in its process: ingest is placed first, and
  // feature only where an ingest is.
  std::vector<const component_spec*> components;
  for (const auto& component : declared.components) components.push_back(&component);
  auto last_ingest = std::find_if(components.rbegin(), components.rend(), [](const component_spec* each) { return each->kind == "ingest"; });
  if (last_ingest != components.rend()) {
    // Features declared before the last ingest move to just after it; the rest keeps its order.
    auto end = last_ingest.base();
    std::stable_partition(components.begin(), end, [](const component_spec* each) { return each->kind != "feature"; });
  }
  for (const component_spec* each : components) {
    const auto& component = *each;
    const auto& wants = component.placement;
    std::set<std::string> ingest_nodes;
    if (component.kind == "feature") {
      for (const auto& placed : plan.replicas) {
        auto placed_kind = std::find_if(declared.components.begin(), declared.components.end(),
                                        [&](const component_spec& spec) { return spec.name == placed.component; });
        if (placed_kind != declared.components.end() && placed_kind->kind == "ingest") ingest_nodes.insert(placed.node);
      }
    }
    // Replicas that ran somewhere are placed first, so that one moving (its node gone) does
    // not take the place another still holds.
    std::vector<std::pair<std::uint32_t, std::string>> order;  // replica, the node it was on
    for (std::uint32_t replica = 0; replica < component.replicas_min; ++replica) {
      std::string was_on;
      if (keep != nullptr) {
        for (const auto& placed : keep->replicas) {
          if (placed.component == component.name && placed.replica == replica) was_on = placed.node;
        }
      }
      order.emplace_back(replica, was_on);
    }
    std::stable_partition(order.begin(), order.end(), [&](const auto& entry) {
      return std::any_of(nodes.begin(), nodes.end(), [&](const node_spec& node) { return node.name == entry.second; });
    });
    std::size_t placed = 0;
    for (const auto& [replica, was_on] : order) {
      const node_spec* best = nullptr;
      bool kept = false;
      std::vector<std::string> refusals;
      for (const auto& node : nodes) {
        std::string why;
        if (!wants.node.empty() && wants.node != node.name) {
          why = "not node " + wants.node;
        } else {
          for (const auto& [label, value] : wants.node_selector) {
            auto found = node.labels.find(label);
            if (found == node.labels.end() || found->second != value) {
              why = "lacks label " + label + "=" + value;
              break;
            }
          }
        }
        if (why.empty() && component.kind == "feature" && !ingest_nodes.empty() && !ingest_nodes.contains(node.name)) {
          why = "runs no ingest (feature reads the event log of ingest, in its process)";
        }
        if (why.empty() && wants.anti_affinity &&
            std::any_of(plan.replicas.begin(), plan.replicas.end(),
                        [&](const placed_replica& placed) { return placed.component == component.name && placed.node == node.name; })) {
          why = "already runs a replica (anti_affinity)";
        }
        const std::uint32_t free = node.cores - plan.cores_used[node.name];
        if (why.empty() && free < wants.cores) why = std::to_string(free) + " of " + std::to_string(node.cores) + " cores free, needs " + std::to_string(wants.cores);
        const std::uint32_t free_gpus = node.gpus - plan.gpus_used[node.name];
        if (why.empty() && free_gpus < wants.gpus) {
          why = std::to_string(free_gpus) + " of " + std::to_string(node.gpus) + " GPUs free, needs " + std::to_string(wants.gpus);
        }
        if (!why.empty()) {
          refusals.push_back(node.name + ": " + why);
          continue;
        }
        if (kept) continue;
        if (node.name == was_on) {
          best = &node;
          kept = true;
        } else if (!best || free > best->cores - plan.cores_used[best->name]) {
          best = &node;
        }
      }
      if (!best) {
        std::string reasons;
        for (const auto& refusal : refusals) reasons += (reasons.empty() ? "" : "; ") + refusal;
        std::string why = to_string(component.at) + ": components." + component.name + ": replica " + std::to_string(replica + 1) +
                          " of " + std::to_string(component.replicas_min) + " fits no node (" + reasons + ")";
        if (!partial) return error(errc::invalid_argument, std::move(why));
        plan.unplaced.push_back(std::move(why));
        continue;
      }
      plan.cores_used[best->name] += wants.cores;
      plan.gpus_used[best->name] += wants.gpus;
      plan.replicas.push_back({component.name, replica, best->name, wants.cores, wants.gpus});
      ++placed;
    }
    // In replica order, whatever order they were placed in: the same plan reads the same.
    std::sort(plan.replicas.end() - std::ptrdiff_t(placed), plan.replicas.end(),
              [](const placed_replica& a, const placed_replica& b) { return a.replica < b.replica; });
  }
  return plan;
}

std::string describe(const topology& declared, const placement_plan& plan) {
  std::ostringstream out;
  out << "topology " << declared.name << ": " << declared.components.size() << " components, " << plan.replicas.size()
      << " replicas placed on " << plan.cores_used.size() << " node" << (plan.cores_used.size() == 1 ? "" : "s") << "\n";
  std::vector<node_spec> nodes = declared.nodes;
  if (nodes.empty()) nodes.push_back({"local", {}, 0, {}});
  for (const auto& node : nodes) {
    out << "node " << node.name;
    if (!declared.nodes.empty()) out << " (" << plan.cores_used.at(node.name) << " of " << node.cores << " cores";
    if (!declared.nodes.empty() && node.gpus > 0) {
      const auto used = plan.gpus_used.find(node.name);
      out << ", " << (used == plan.gpus_used.end() ? 0u : used->second) << " of " << node.gpus << " GPUs";
    }
    for (const auto& [label, value] : node.labels) out << ", " << label << "=" << value;
    if (!declared.nodes.empty()) out << ")";
    out << "\n";
    for (const auto& placed : plan.replicas) {
      if (placed.node != node.name) continue;
      const auto* component = component_named(declared, placed.component);
      out << "  " << placed.component << " [" << component->kind << "]";
      if (component->replicas_max > 1 || component->replicas_min > 1) {
        out << " replica " << placed.replica + 1 << " of " << component->replicas_min;
        if (component->replicas_max > component->replicas_min) out << " (scales to " << component->replicas_max << ")";
      }
      out << ", " << placed.cores << " core" << (placed.cores == 1 ? "" : "s");
      if (placed.gpus > 0) out << ", " << placed.gpus << " GPU" << (placed.gpus == 1 ? "" : "s");
      out << "\n";
    }
  }
  if (!declared.streams.empty()) {
    out << "streams:";
    for (const auto& stream : declared.streams) out << " " << stream.from << "->" << stream.to;
    out << "\n";
  }
  for (const auto& supervisor : declared.supervisors) {
    out << "supervisor " << supervisor.name << " (" << supervisor.strategy << ", " << supervisor.intensity << " restarts in "
        << supervisor.period_ms << " ms): " << joined(supervisor.children) << "\n";
  }
  return out.str();
}

}  // namespace rml::topologies
