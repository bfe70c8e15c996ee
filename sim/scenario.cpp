#include "sim/scenario.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace rml::sim {
namespace {

/// A parse failure at a node: thrown inside the parser, turned into one error at the top.
struct scenario_error {
  std::string where;
  std::string message;
};

class reader {
 public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& field, const std::string& why) const {
    const auto mark = at.Mark();
    throw scenario_error{file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1), field + ": " + why};
  }
  topologies::source_position position(const YAML::Node& at) const { return {file_, at.Mark().line + 1, at.Mark().column + 1}; }

  std::string text(const YAML::Node& at, const std::string& field) const {
    if (!at.IsScalar()) fail(at, field, "must be a string");
    return at.Scalar();
  }
  double number(const YAML::Node& at, const std::string& field, double low, double high) const {
    if (!at.IsScalar()) fail(at, field, "must be a number");
    double value = 0;
    std::istringstream in(at.Scalar());
    in >> value;
    if (in.fail() || !in.eof() || !std::isfinite(value)) fail(at, field, "'" + at.Scalar() + "' is not a number");
    if (value < low || value > high) {
      std::ostringstream range;
      range << "'" << at.Scalar() << "' is out of range [" << low << ", " << high << "]";
      fail(at, field, range.str());
    }
    return value;
  }
  bool flag(const YAML::Node& at, const std::string& field) const {
    const auto value = text(at, field);
    if (value == "true") return true;
    if (value == "false") return false;
    fail(at, field, "'" + value + "' is not true or false");
  }
  microseconds duration(const YAML::Node& at, const std::string& field, microseconds low, microseconds high) const {
    auto parsed = parse_duration(text(at, field), field);
    if (!parsed) fail(at, field, parsed.error().message().substr(field.size() + 2));
    if (*parsed < low || *parsed > high) {
      fail(at, field, "'" + at.Scalar() + "' is out of range [" + std::to_string(low.count() / 1000.0) + " ms, " +
                          std::to_string(high.count() / 1000.0) + " ms]");
    }
    return *parsed;
  }
  milliseconds millis(const YAML::Node& at, const std::string& field, milliseconds low, milliseconds high) const {
    return std::chrono::duration_cast<milliseconds>(duration(at, field, low, high));
  }
  std::map<std::string, std::string> labels(const YAML::Node& at, const std::string& field) const {
    if (!at.IsMap()) fail(at, field, "must be a map of label: value");
    std::map<std::string, std::string> out;
    for (const auto& entry : at) out[text(entry.first, field)] = text(entry.second, field + "." + entry.first.Scalar());
    return out;
  }
  std::vector<std::string> names(const YAML::Node& at, const std::string& field) const {
    if (at.IsScalar()) return {at.Scalar()};
    if (!at.IsSequence()) fail(at, field, "must be a node name or a list of them");
    std::vector<std::string> out;
    each(at, field, "node names", [&](const YAML::Node& item, const std::string& item_field) { out.push_back(text(item, item_field)); });
    return out;
  }
  /// Calls `visit(item, "field[i]")` for each item of the list at `at` (`shape` says what an
  /// item is, for the error when it is not a list).
  template <class Visit>
  void each(const YAML::Node& at, const std::string& field, const std::string& shape, Visit&& visit) const {
    if (!at.IsSequence()) fail(at, field, "must be a list of " + shape);
    for (std::size_t index = 0; index < at.size(); ++index) visit(at[index], field + "[" + std::to_string(index) + "]");
  }
  /// Refuses keys a map may not have, naming the allowed ones.
  void only(const YAML::Node& at, const std::string& field, std::initializer_list<const char*> allowed) const {
    if (!at.IsMap()) fail(at, field, "must be a map");
    for (const auto& entry : at) {
      const auto key = entry.first.Scalar();
      if (std::none_of(allowed.begin(), allowed.end(), [&](const char* each) { return key == each; })) {
        std::string list;
        for (const char* each : allowed) list += (list.empty() ? "" : ", ") + std::string(each);
        fail(entry.first, field.empty() ? key : field + "." + key, "unknown field (allowed: " + list + ")");
      }
    }
  }

 private:
  std::string file_;
};

const std::vector<std::pair<std::string, invariant>>& invariant_names() {
  static const std::vector<std::pair<std::string, invariant>> names{
      {"exactly_one_answer", invariant::exactly_one_answer}, {"answers_in_time", invariant::answers_in_time},
      {"versions_forward", invariant::versions_forward},     {"one_controller", invariant::one_controller},
      {"recovery", invariant::recovery},
  };
  return names;
}

network_spec read_network(const reader& in, const YAML::Node& at, const std::string& field, network_spec base) {
  in.only(at, field, {"latency_min", "latency_tail", "drop", "duplicate", "reorder", "connection_timeout"});
  if (at["latency_min"]) base.latency_min = in.duration(at["latency_min"], field + ".latency_min", microseconds(0), microseconds(10'000'000));
  if (at["latency_tail"]) base.latency_tail = in.duration(at["latency_tail"], field + ".latency_tail", microseconds(0), microseconds(10'000'000));
  if (at["drop"]) base.drop = in.number(at["drop"], field + ".drop", 0, 1);
  if (at["duplicate"]) base.duplicate = in.number(at["duplicate"], field + ".duplicate", 0, 1);
  if (at["reorder"]) base.reorder = in.flag(at["reorder"], field + ".reorder");
  if (at["connection_timeout"]) {
    base.connection_timeout = in.millis(at["connection_timeout"], field + ".connection_timeout", milliseconds(100), milliseconds(600'000));
  }
  return base;
}

scenario read(const YAML::Node& root, const std::string& file, const std::string& directory) {
  reader in(file);
  if (!root.IsMap()) in.fail(root, "scenario", "must be a map (name, topology, nodes, clients, faults, ...)");
  in.only(root, "", {"name", "description", "topology", "node_groups", "data", "clients", "network", "faults", "random_faults", "invariants",
                     "duration", "lease_ttl", "recovery_within", "recovery_success", "recovery_accuracy"});
  scenario out;
  out.file = file;
  if (!root["name"]) in.fail(root, "name", "missing (every scenario is named)");
  out.name = in.text(root["name"], "name");
  if (root["description"]) out.description = in.text(root["description"], "description");
  if (!root["topology"]) in.fail(root, "topology", "missing: a topology file's path (relative to the scenario), or its text");
  const auto topology = in.text(root["topology"], "topology");
  std::string topology_file = file + " (topology)";
  if (topology.find('\n') == std::string::npos) {
    const auto path = std::filesystem::path(topology).is_absolute() ? std::filesystem::path(topology) : std::filesystem::path(directory) / topology;
    std::ifstream stream(path);
    if (!stream) in.fail(root["topology"], "topology", "cannot open '" + path.string() + "'");
    std::ostringstream read_text;
    read_text << stream.rdbuf();
    out.topology_text = read_text.str();
    topology_file = path.string();
  } else {
    out.topology_text = topology;
  }
  auto declared = topologies::parse_topology(out.topology_text, topology_file);
  if (!declared) in.fail(root["topology"], "topology", declared.error().message());
  out.topology = declared.value();
  out.nodes = out.topology.nodes;
  if (root["node_groups"]) {
    in.each(root["node_groups"], "node_groups", "{prefix, count, labels, cores}", [&](const YAML::Node& at, const std::string& field) {
      in.only(at, field, {"prefix", "count", "labels", "cores"});
      node_group group;
      if (!at["prefix"] || !at["count"]) in.fail(at, field, "needs prefix and count");
      group.prefix = in.text(at["prefix"], field + ".prefix");
      group.count = std::uint32_t(in.number(at["count"], field + ".count", 1, 1000));
      if (at["labels"]) group.labels = in.labels(at["labels"], field + ".labels");
      if (at["cores"]) group.cores = std::uint32_t(in.number(at["cores"], field + ".cores", 1, 4096));
      for (std::uint32_t member = 1; member <= group.count; ++member) {
        topologies::node_spec node;
        node.name = group.prefix + std::to_string(member);
        node.labels = group.labels;
        node.cores = group.cores;
        node.at = in.position(at);
        out.nodes.push_back(node);
      }
      out.node_groups.push_back(group);
    });
  }
  if (out.nodes.empty()) in.fail(root["topology"], "topology", "declares no nodes, and no node_groups add any: a simulation needs nodes");
  std::set<std::string> node_names;
  for (const auto& node : out.nodes) {
    if (!node_names.insert(node.name).second) in.fail(root["node_groups"] ? root["node_groups"] : root["topology"], "node_groups", "node '" + node.name + "' is declared twice");
  }
  std::string known;
  for (const auto& node : out.nodes) known += (known.empty() ? "" : ", ") + node.name;
  if (known.size() > 120) known = known.substr(0, 117) + "...";
  auto check_node = [&](const YAML::Node& at, const std::string& field, const std::string& name, bool pseudo, bool etcd = false) {
    if (pseudo && (name == "leader" || name == "random")) return;
    if (etcd && name == "etcd") return;
    if (!node_names.count(name)) in.fail(at, field, "unknown node '" + name + "' (nodes: " + known + ")");
  };
  if (root["data"]) {
    const auto at = root["data"];
    in.only(at, "data", {"rows", "features", "classes", "events_per_second", "noise"});
    if (at["rows"]) out.data.rows = std::uint32_t(in.number(at["rows"], "data.rows", 64, 1'000'000));
    if (at["features"]) out.data.features = std::uint32_t(in.number(at["features"], "data.features", 1, 4096));
    if (at["classes"]) out.data.classes = std::uint32_t(in.number(at["classes"], "data.classes", 2, 1000));
    if (at["events_per_second"]) out.data.events_per_second = in.number(at["events_per_second"], "data.events_per_second", 1, 1e6);
    if (at["noise"]) out.data.noise = in.number(at["noise"], "data.noise", 0, 100);
  }
  if (root["clients"]) {
    in.each(root["clients"], "clients", "{node, rate, deadline, start}", [&](const YAML::Node& at, const std::string& field) {
      in.only(at, field, {"node", "rate", "deadline", "start"});
      client_spec client;
      if (!at["node"]) in.fail(at, field + ".node", "missing: the node whose endpoint the client talks to");
      client.node = in.text(at["node"], field + ".node");
      check_node(at["node"], field + ".node", client.node, false);
      if (at["rate"]) client.requests_per_second = in.number(at["rate"], field + ".rate", 0.1, 100'000);
      if (at["deadline"]) client.deadline = in.millis(at["deadline"], field + ".deadline", milliseconds(1), milliseconds(60'000));
      if (at["start"]) client.start = in.millis(at["start"], field + ".start", milliseconds(0), milliseconds(86'400'000));
      out.clients.push_back(client);
    });
  }
  if (root["network"]) out.network = read_network(in, root["network"], "network", out.network);
  if (root["duration"]) out.duration = in.millis(root["duration"], "duration", milliseconds(100), milliseconds(86'400'000));
  if (root["lease_ttl"]) out.lease_ttl = in.millis(root["lease_ttl"], "lease_ttl", milliseconds(300), milliseconds(3'600'000));
  if (root["recovery_within"]) {
    out.recovery_within = in.millis(root["recovery_within"], "recovery_within", milliseconds(100), milliseconds(3'600'000));
  }
  if (root["recovery_success"]) out.recovery_success = in.number(root["recovery_success"], "recovery_success", 0, 1);
  if (root["recovery_accuracy"]) out.recovery_accuracy = in.number(root["recovery_accuracy"], "recovery_accuracy", 0, 1);
  if (root["faults"]) {
    in.each(root["faults"], "faults", "{at, crash|restart|partition|heal|network|pause|bad_data|kill: ...}", [&](const YAML::Node& at, const std::string& field) {
      in.only(at, field, {"at", "crash", "restart", "partition", "from", "heal", "network", "pause", "for", "wipe", "bad_data", "events", "kill", "on"});
      fault planned;
      planned.position = in.position(at);
      if (!at["at"]) in.fail(at, field + ".at", "missing: when the fault happens");
      planned.at = in.millis(at["at"], field + ".at", milliseconds(0), out.duration);
      int kinds = 0;
      for (const char* kind : {"crash", "restart", "partition", "heal", "network", "pause", "bad_data", "kill"}) kinds += bool(at[kind]);
      if (kinds != 1) in.fail(at, field, "needs exactly one of crash, restart, partition, heal, network, pause, bad_data, kill");
      auto node_list = [&](const char* key, bool pseudo, bool etcd = false) {
        auto names = in.names(at[key], field + "." + key);
        for (const auto& name : names) check_node(at[key], field + "." + key, name, pseudo, etcd);
        return names;
      };
      if (at["crash"]) {
        planned.kind = fault_kind::crash;
        planned.nodes = node_list("crash", true);
      } else if (at["restart"]) {
        planned.kind = fault_kind::restart;
        planned.nodes = node_list("restart", false);
        if (at["wipe"]) planned.wipe = in.flag(at["wipe"], field + ".wipe");
      } else if (at["partition"]) {
        planned.kind = fault_kind::partition;
        planned.nodes = node_list("partition", true, true);
        if (at["from"]) planned.other = node_list("from", false, true);
      } else if (at["heal"]) {
        planned.kind = fault_kind::heal;
      } else if (at["network"]) {
        planned.kind = fault_kind::network;
        planned.network = read_network(in, at["network"], field + ".network", out.network);
      } else if (at["kill"]) {
        planned.kind = fault_kind::kill;
        planned.component = in.text(at["kill"], field + ".kill");
        const auto& kinds = topologies::component_kinds();
        if (std::find(kinds.begin(), kinds.end(), planned.component) == kinds.end()) {
          std::string allowed;
          for (const auto& kind : kinds) allowed += (allowed.empty() ? "" : ", ") + kind;
          in.fail(at["kill"], field + ".kill", "unknown component kind '" + planned.component + "' (allowed: " + allowed + ")");
        }
        if (at["on"]) planned.nodes = node_list("on", true);
      } else if (at["bad_data"]) {
        planned.kind = fault_kind::bad_data;
        const auto kind = in.text(at["bad_data"], field + ".bad_data");
        if (kind == "nan") planned.data_kind = bad_data_kind::nan;
        else if (kind == "shape") planned.data_kind = bad_data_kind::shape;
        else if (kind == "label_noise") planned.data_kind = bad_data_kind::label_noise;
        else if (kind == "drift") planned.data_kind = bad_data_kind::drift;
        else in.fail(at["bad_data"], field + ".bad_data", "unknown kind '" + kind + "' (allowed: nan, shape, label_noise, drift)");
        if (!at["events"]) in.fail(at, field + ".events", "missing: how many bad events the burst sends");
        planned.events = std::uint32_t(in.number(at["events"], field + ".events", 1, 10'000'000));
      } else {
        planned.kind = fault_kind::pause;
        planned.nodes = node_list("pause", true);
        if (!at["for"]) in.fail(at, field + ".for", "missing: how long the pause lasts");
        planned.length = in.millis(at["for"], field + ".for", milliseconds(1), out.duration);
      }
      if (at["wipe"] && planned.kind != fault_kind::restart) in.fail(at["wipe"], field + ".wipe", "only a restart wipes a disk");
      if (at["from"] && planned.kind != fault_kind::partition) in.fail(at["from"], field + ".from", "only a partition has a far side");
      if (at["for"] && planned.kind != fault_kind::pause) in.fail(at["for"], field + ".for", "only a pause lasts");
      if (at["on"] && planned.kind != fault_kind::kill) in.fail(at["on"], field + ".on", "only a kill names the nodes with on");
      if (at["events"] && planned.kind != fault_kind::bad_data) in.fail(at["events"], field + ".events", "only a bad_data burst has events");
      out.faults.push_back(planned);
    });
    std::stable_sort(out.faults.begin(), out.faults.end(), [](const fault& a, const fault& b) { return a.at < b.at; });
  }
  if (root["random_faults"]) {
    const auto at = root["random_faults"];
    in.only(at, "random_faults", {"crashes_per_minute", "partitions_per_minute", "restart_after", "partition_length", "nodes", "until"});
    auto& random = out.random;
    if (at["crashes_per_minute"]) random.crashes_per_minute = in.number(at["crashes_per_minute"], "random_faults.crashes_per_minute", 0, 600);
    if (at["partitions_per_minute"]) {
      random.partitions_per_minute = in.number(at["partitions_per_minute"], "random_faults.partitions_per_minute", 0, 600);
    }
    if (at["restart_after"]) random.restart_after = in.millis(at["restart_after"], "random_faults.restart_after", milliseconds(1), out.duration);
    if (at["partition_length"]) {
      random.partition_length = in.millis(at["partition_length"], "random_faults.partition_length", milliseconds(1), out.duration);
    }
    if (at["nodes"]) {
      random.nodes = in.names(at["nodes"], "random_faults.nodes");
      for (const auto& name : random.nodes) check_node(at["nodes"], "random_faults.nodes", name, false);
    }
    random.until = at["until"] ? in.millis(at["until"], "random_faults.until", milliseconds(0), out.duration) : out.duration;
  }
  if (root["invariants"]) {
    const auto at = root["invariants"];
    for (const auto& name : in.names(at, "invariants")) {
      const auto& known_checks = invariant_names();
      auto found = std::find_if(known_checks.begin(), known_checks.end(), [&](const auto& each) { return each.first == name; });
      if (found == known_checks.end()) {
        std::string allowed;
        for (const auto& each : known_checks) allowed += (allowed.empty() ? "" : ", ") + each.first;
        in.fail(at, "invariants", "unknown invariant '" + name + "' (known: " + allowed + ")");
      }
      out.invariants.push_back(found->second);
    }
  } else {
    for (const auto& each : invariant_names()) out.invariants.push_back(each.second);
  }
  return out;
}

}  // namespace

const char* to_string(invariant check) {
  for (const auto& [name, each] : invariant_names()) {
    if (each == check) return name.c_str();
  }
  return "?";
}

const char* to_string(fault_kind kind) {
  switch (kind) {
    case fault_kind::crash: return "crash";
    case fault_kind::restart: return "restart";
    case fault_kind::partition: return "partition";
    case fault_kind::heal: return "heal";
    case fault_kind::network: return "network";
    case fault_kind::pause: return "pause";
    case fault_kind::bad_data: return "bad_data";
    case fault_kind::kill: return "kill";
  }
  return "?";
}

const char* to_string(bad_data_kind kind) {
  switch (kind) {
    case bad_data_kind::nan: return "nan";
    case bad_data_kind::shape: return "shape";
    case bad_data_kind::label_noise: return "label_noise";
    case bad_data_kind::drift: return "drift";
  }
  return "?";
}

result<microseconds> parse_duration(const std::string& text, const std::string& field) {
  std::size_t digits = 0;
  while (digits < text.size() && (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) ++digits;
  const auto unit = text.substr(digits);
  double scale = 0;
  if (unit == "us") scale = 1;
  else if (unit == "ms") scale = 1e3;
  else if (unit == "s") scale = 1e6;
  else if (unit == "m") scale = 60e6;
  if (digits == 0 || scale == 0) {
    return error(errc::invalid_argument, field + ": '" + text + "' is not a duration (a number with us, ms, s or m: 250ms, 1.5s)");
  }
  double value = 0;
  try {
    std::size_t used = 0;
    value = std::stod(text.substr(0, digits), &used);
    if (used != digits) throw std::invalid_argument(text);  // "1.2.3s"
  } catch (...) {
    return error(errc::invalid_argument, field + ": '" + text + "' is not a duration (a number with us, ms, s or m: 250ms, 1.5s)");
  }
  return microseconds(std::int64_t(std::llround(value * scale)));
}

result<scenario> parse_scenario(const std::string& text, const std::string& file, const std::string& directory) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& failure) {
    return error(errc::parse_error,
                 file + ":" + std::to_string(failure.mark.line + 1) + ":" + std::to_string(failure.mark.column + 1) + ": " + failure.msg);
  }
  try {
    return read(root, file, directory);
  } catch (const scenario_error& failure) {
    return error(errc::invalid_argument, failure.where + ": " + failure.message);
  } catch (const YAML::Exception& failure) {
    return error(errc::invalid_argument,
                 file + ":" + std::to_string(failure.mark.line + 1) + ":" + std::to_string(failure.mark.column + 1) + ": " + failure.msg);
  }
}

result<scenario> load_scenario(const std::string& path) {
  std::ifstream stream(path);
  if (!stream) return error(errc::io_error, path + ": cannot open the scenario file");
  std::ostringstream text;
  text << stream.rdbuf();
  const auto directory = std::filesystem::path(path).parent_path().string();
  return parse_scenario(text.str(), path, directory.empty() ? "." : directory);
}

}  // namespace rml::sim
