// The placement controller on the in-memory control plane, in virtual time: a deployed
// topology is placed on the members now (their labels and cores, not the file's nodes);
// placement is sticky — a joining node moves nothing, a scale adds replicas where they fit,
// a lost node's replicas move to survivors that satisfy their constraints and nothing else
// moves; a request that cannot be placed says why and leaves the placement in force; a
// deposed controller's placement is refused; undeploy clears desired state.
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "topologies/membership.hpp"
#include "topologies/desired_state.hpp"
#include "topologies/memory_control_plane.hpp"
#include "topologies/placement_controller.hpp"

using namespace rml;
using namespace rml::control;
using namespace std::chrono_literals;

namespace {

// No nodes declared: a cluster's topology is placed on whichever nodes are members.
constexpr const char* serving_topology = R"(name: edge-serving
components:
  - name: ingest
    kind: ingest
    placement: {node_selector: {role: data}}
  - name: feature
    kind: feature
    placement: {node_selector: {role: data}}
  - name: trainer
    kind: trainer
    placement: {node_selector: {role: data}, cores: 2}
  - name: registry
    kind: registry
    placement: {node_selector: {role: data}}
  - name: serving
    kind: serving
    replicas: {min: 2, max: 4}
    placement: {node_selector: {role: serving}, anti_affinity: true, cores: 1}
streams:
  - {from: ingest, to: feature}
  - {from: feature, to: trainer}
  - {from: trainer, to: registry}
  - {from: registry, to: serving}
supervision:
  - {name: root, strategy: one_for_one, children: [ingest, feature, trainer, registry, serving]}
)";

struct cluster {
  std::chrono::milliseconds now{0};
  memory_control_plane plane{[this] { return now; }};
  std::map<std::string, std::unique_ptr<membership>> nodes;
  placement_controller placement{plane};

  void join(const std::string& name, std::map<std::string, std::string> labels, std::uint32_t cores) {
    auto node = std::make_unique<membership>(plane);
    REQUIRE(node->join({name, "127.0.0.1:7000", cores, 0, std::move(labels)}, 3000ms, now).ok());
    nodes[name] = std::move(node);
  }
  /// Renews every node but those in `silent`, then lets `step` pass.
  void pass(std::chrono::milliseconds step, const std::vector<std::string>& silent = {}) {
    for (auto& [name, node] : nodes) {
      if (std::find(silent.begin(), silent.end(), name) == silent.end()) REQUIRE(node->renew(now).ok());
    }
    now += step;
    plane.tick();
  }
  /// Where each replica is: "component/replica" → node.
  std::map<std::string, std::string> where() {
    auto shown = placement.view();
    REQUIRE(shown.ok());
    std::map<std::string, std::string> at;
    for (const auto& placed : shown->replicas) at[placed.component + "/" + std::to_string(placed.replica)] = placed.node;
    return at;
  }
};

}  // namespace

TEST_CASE("the controller places a deployed topology on the members, stickily, and moves a lost node's replicas") {
  cluster c;
  c.join("data", {{"role", "data"}}, 8);
  c.join("edge-1", {{"role", "serving"}}, 4);
  c.join("edge-2", {{"role", "serving"}}, 4);
  auto leader = c.placement.controllers().campaign(c.nodes["data"]->self().lease, "data");
  REQUIRE(leader.ok());
  REQUIRE(*c.placement.reconcile(*leader) == false);  // nothing deployed, nothing to write

  REQUIRE(c.placement.request_deploy(serving_topology, "edge-serving.yaml").ok());
  REQUIRE(*c.placement.reconcile(*leader) == true);
  REQUIRE(*c.placement.reconcile(*leader) == false);  // the same again: no write
  auto shown = c.placement.view();
  REQUIRE(shown->topology_name == "edge-serving");
  REQUIRE(shown->controller == "data");
  REQUIRE(shown->error.empty());
  const std::map<std::string, std::string> first{{"ingest/0", "data"},     {"feature/0", "data"},    {"trainer/0", "data"},
                                                  {"registry/0", "data"},   {"serving/0", "edge-1"}, {"serving/1", "edge-2"}};
  REQUIRE(c.where() == first);

  // A node that joins moves nothing; a scale puts the new replica on it.
  c.join("edge-3", {{"role", "serving"}}, 4);
  REQUIRE(*c.placement.reconcile(*leader) == false);
  REQUIRE(c.placement.request_scale("serving", 3).ok());
  REQUIRE(*c.placement.reconcile(*leader) == true);
  auto scaled = first;
  scaled["serving/2"] = "edge-3";
  REQUIRE(c.where() == scaled);

  // edge-1 stops renewing: once its lease expires, its replica moves to the one serving node
  // without a replica (edge-4, joined meanwhile); nothing else moves.
  c.join("edge-4", {{"role", "serving"}}, 4);
  c.pass(2000ms, {"edge-1"});
  c.pass(1500ms, {"edge-1"});
  REQUIRE(c.nodes["data"]->members()->size() == 4);
  REQUIRE(*c.placement.reconcile(*leader) == true);
  auto moved = scaled;
  moved["serving/0"] = "edge-4";
  REQUIRE(c.where() == moved);
  REQUIRE(*c.placement.reconcile(*leader) == false);  // settled: the next pass writes nothing
}

TEST_CASE("what fits no node waits, saying why, while the rest stays placed, a node that can take it places it") {
  cluster c;
  c.join("data", {{"role", "data"}}, 8);
  c.join("edge-1", {{"role", "serving"}}, 4);
  c.join("edge-2", {{"role", "serving"}}, 4);
  auto leader = *c.placement.controllers().campaign(c.nodes["data"]->self().lease, "data");
  REQUIRE(c.placement.request_deploy(serving_topology, "edge-serving.yaml").ok());
  REQUIRE(*c.placement.reconcile(leader));
  const auto before = c.where();
  // edge-2 is lost: its serving replica has nowhere to go (role, anti-affinity); the rest stays.
  c.pass(2000ms, {"edge-2"});
  c.pass(1500ms, {"edge-2"});
  REQUIRE(*c.placement.reconcile(leader));
  auto shown = c.placement.view();
  REQUIRE(shown->error.find("components.serving: replica 2 of 2 fits no node") != std::string::npos);
  REQUIRE(shown->error.find("edge-1: already runs a replica (anti_affinity)") != std::string::npos);
  auto waiting = before;
  waiting.erase("serving/1");
  REQUIRE(c.where() == waiting);
  // A node with the label joins: placed again, the error gone.
  c.join("edge-4", {{"role", "serving"}}, 4);
  REQUIRE(*c.placement.reconcile(leader));
  REQUIRE(c.placement.view()->error.empty());
  REQUIRE(c.where().at("serving/1") == "edge-4");
  REQUIRE(c.where().at("serving/0") == before.at("serving/0"));
}

TEST_CASE("a deposed controller's placement is refused, undeploy clears desired state, bad requests are refused by name") {
  cluster c;
  c.join("data", {{"role", "data"}}, 8);
  c.join("edge-1", {{"role", "serving"}}, 4);
  c.join("edge-2", {{"role", "serving"}}, 4);
  auto& controllers = c.placement.controllers();
  auto old_leader = *controllers.campaign(c.nodes["data"]->self().lease, "data");
  auto next_leader = *controllers.campaign(c.nodes["edge-1"]->self().lease, "edge-1");
  REQUIRE(c.placement.request_deploy(serving_topology, "edge-serving.yaml").ok());
  REQUIRE(*c.placement.reconcile(old_leader));
  // data's lease expires: edge-1 leads, and data's late write is refused.
  c.pass(2000ms, {"data"});
  c.pass(1500ms, {"data"});
  REQUIRE(*controllers.is_leader(next_leader));
  REQUIRE(c.placement.request_scale("serving", 2).ok());
  auto late = c.placement.reconcile(old_leader);
  REQUIRE(!late);
  REQUIRE(late.error().code() == errc::unauthorized);
  REQUIRE(c.placement.view()->controller == "edge-1");
  // The new controller places without data: the data path (role=data) waits; serving stays.
  REQUIRE(*c.placement.reconcile(next_leader));
  REQUIRE(c.placement.view()->error.find("components.ingest: replica 1 of 1 fits no node") != std::string::npos);
  REQUIRE(c.where() == std::map<std::string, std::string>{{"serving/0", "edge-1"}, {"serving/1", "edge-2"}});

  auto scale_unknown = c.placement.request_scale("monitor", 1);
  REQUIRE(scale_unknown.error().message() == "scale monitor: the deployed topology has no such component (it has ingest, feature, trainer, registry, serving)");
  REQUIRE(c.placement.request_scale("serving", 5).error().message() == "scale serving to 5: the topology allows 2..4");
  auto bad = c.placement.request_deploy("name: x\ncomponents: []\n", "x.yaml");
  REQUIRE(!bad);
  REQUIRE(bad.error().message().find("x.yaml") == 0);

  REQUIRE(c.placement.request_undeploy().ok());
  REQUIRE(*c.placement.reconcile(next_leader));
  auto shown = c.placement.view();
  REQUIRE(shown->topology_name.empty());
  REQUIRE(shown->replicas.empty());
  REQUIRE(shown->error.empty());
  REQUIRE(c.placement.request_scale("serving", 2).error().message() == "scale serving: nothing is deployed in cluster rml");
}

TEST_CASE("a stored placement round-trips, and a damaged one is refused naming its line") {
  topologies::placement_plan plan;
  plan.replicas = {{"serving", 0, "edge-1", 1, 0}, {"ingest", 0, "data", 2, 1}};
  auto decoded = decode_placement(encode_placement(plan));
  REQUIRE(decoded.ok());
  REQUIRE(decoded->replicas.size() == 2);
  REQUIRE(decoded->replicas[1].node == "data");
  REQUIRE(decoded->cores_used.at("data") == 2);
  REQUIRE(decoded->gpus_used.at("data") == 1);
  REQUIRE(decode_placement("serving 0 edge-1 1 0\nserving x\n").error().message() ==
          "desired placement, line 2: 'serving x' is not 'component replica node cores gpus'");
}

TEST_CASE("a replica that asks for a GPU goes only to a member that offers a free one, and waits when none does") {
  cluster c;
  c.join("cpu-1", {}, 8);
  auto gpu_node = std::make_unique<membership>(c.plane);
  REQUIRE(gpu_node->join({"gpu-1", "127.0.0.1:7001", 8, 1, {}}, 3000ms, c.now).ok());
  c.nodes["gpu-1"] = std::move(gpu_node);
  auto leader = *c.placement.controllers().campaign(c.nodes["cpu-1"]->self().lease, "cpu-1");
  constexpr const char* gpu_topology = R"(name: gpu-training
components:
  - {name: ingest, kind: ingest}
  - {name: feature, kind: feature}
  - {name: trainer, kind: trainer, placement: {gpus: 1}}
streams:
  - {from: ingest, to: feature}
  - {from: feature, to: trainer}
)";
  REQUIRE(c.placement.request_deploy(gpu_topology, "gpu.yaml").ok());
  REQUIRE(*c.placement.reconcile(leader));
  REQUIRE(c.where().at("trainer/0") == "gpu-1");
  auto shown = c.placement.view();
  REQUIRE(std::any_of(shown->replicas.begin(), shown->replicas.end(), [](const auto& placed) { return placed.gpus == 1; }));
  // The GPU node is lost: the trainer waits, saying why.
  c.pass(2000ms, {"gpu-1"});
  c.pass(1500ms, {"gpu-1"});
  REQUIRE(*c.placement.reconcile(leader));
  REQUIRE(c.placement.view()->error.find("cpu-1: 0 of 0 GPUs free, needs 1") != std::string::npos);
  REQUIRE(c.where().count("trainer/0") == 0);
}

namespace {
/// Each serving node reports this load (the autoscaler reads what the nodes wrote).
void report_serving_load(cluster& c, double backlog, double busy) {
  auto shown = c.placement.view();
  REQUIRE(shown.ok());
  for (const auto& placed : shown->replicas) {
    if (placed.component != "serving") continue;
    load_report report{backlog, busy, 1, 4};
    REQUIRE(c.plane.commit({{}, {operation::put(load_key("rml", placed.node, "serving"), encode_load(report), c.nodes[placed.node]->self().lease)}, {}})
                ->succeeded);
  }
}
std::size_t serving_replicas(cluster& c) {
  std::size_t count = 0;
  for (const auto& [replica, node] : c.where()) count += replica.rfind("serving/", 0) == 0;
  return count;
}
}  // namespace

TEST_CASE("serving scales across nodes under a sustained backlog and back when idle, with hysteresis, within min..max") {
  cluster c;
  c.join("data", {{"role", "data"}}, 8);
  for (auto name : {"edge-1", "edge-2", "edge-3", "edge-4", "edge-5"}) c.join(name, {{"role", "serving"}}, 4);
  auto leader = c.placement.controllers().campaign(c.nodes["data"]->self().lease, "data");
  REQUIRE(leader.ok());
  std::string text = serving_topology;
  text.replace(text.find("replicas: {min: 2, max: 4}"), 26, "replicas: {min: 2, max: 4}\n    scaling: {up_after: 2, down_after: 3, down_utilization: 0.5}");
  REQUIRE(c.placement.request_deploy(text, "edge-serving.yaml").ok());
  REQUIRE(*c.placement.reconcile(*leader));
  REQUIRE(serving_replicas(c) == 2);
  auto look = [&] {
    auto decided = c.placement.autoscale(*leader);
    REQUIRE(decided.ok());
    REQUIRE(c.placement.reconcile(*leader).ok());
    return decided->size();
  };

  // One look with a backlog is not enough; a look without one resets the count.
  report_serving_load(c, 1.0, 1.0);
  REQUIRE(look() == 0);
  report_serving_load(c, 0.2, 0.9);
  REQUIRE(look() == 0);
  report_serving_load(c, 0.75, 1.0);
  REQUIRE(look() == 0);
  report_serving_load(c, 0.5, 1.0);
  REQUIRE(look() == 1);  // two in a row: one more replica, on a serving node without one
  REQUIRE(serving_replicas(c) == 3);
  auto shown = c.placement.view();
  REQUIRE(shown->scaling.size() == 1);
  REQUIRE(shown->scaling[0].replicas == 3);
  REQUIRE(shown->scaling[0].chosen_by == "autoscaler");
  // Up to max, never beyond.
  for (int round = 0; round < 6; ++round) {
    report_serving_load(c, 1.0, 1.0);
    look();
  }
  REQUIRE(serving_replicas(c) == 4);

  // Compute too high for one fewer (3 × 0.5 < 1.8): no scale-down however long it lasts.
  for (int round = 0; round < 5; ++round) {
    report_serving_load(c, 0.0, 0.45);
    REQUIRE(look() == 0);
  }
  // Idle: down one replica per `down_after` looks, to min and no lower.
  int decisions = 0;
  for (int round = 0; round < 12; ++round) {
    report_serving_load(c, 0.0, 0.05);
    decisions += int(look());
  }
  REQUIRE(decisions == 2);
  REQUIRE(serving_replicas(c) == 2);

  // rml scale wins over the autoscaler's count, and scaling goes on from it.
  REQUIRE(c.placement.request_scale("serving", 3).ok());
  REQUIRE(c.placement.reconcile(*leader).ok());
  REQUIRE(serving_replicas(c) == 3);
  REQUIRE(c.placement.view()->scaling[0].chosen_by == "rml scale");
  // A deposed controller's scaling is refused.
  auto deposed = *leader;
  deposed.create_revision += 1000;
  deposed.key += "-other";
  report_serving_load(c, 1.0, 1.0);
  report_serving_load(c, 1.0, 1.0);
  auto refused = c.placement.autoscale(deposed);
  REQUIRE(refused.ok());  // the first look only counts
  report_serving_load(c, 1.0, 1.0);
  refused = c.placement.autoscale(deposed);
  REQUIRE_FALSE(refused.ok());
  REQUIRE(refused.error().code() == errc::unauthorized);
  // A new deploy voids the autoscaler's and the user's counts: back to min.
  REQUIRE(c.placement.request_deploy(text, "edge-serving.yaml").ok());
  REQUIRE(c.placement.reconcile(*leader).ok());
  REQUIRE(serving_replicas(c) == 2);
}

TEST_CASE("load reports round-trip and a damaged one is refused naming its field") {
  load_report report{0.25, 1.5, 2, 7};
  auto back = decode_load(encode_load(report));
  REQUIRE(back.ok());
  REQUIRE(back->backlog_share == Approx(0.25));
  REQUIRE(back->busy == Approx(1.5));
  REQUIRE(back->looks == 7);
  auto bad = decode_load("backlog=0.5 busy=x replicas=1 looks=2");
  REQUIRE_FALSE(bad.ok());
  REQUIRE_THAT(bad.error().message(), Catch::Contains("busy=x"));
  REQUIRE_FALSE(decode_load("backlog=0.5").ok());
}

namespace {

/// One node of the seeded scenario: its membership, its own controller (every node runs one,
/// as `rml node` does) and its candidate key; `alive` false while crashed.
struct scenario_node {
  std::string name;
  std::map<std::string, std::string> labels;
  std::unique_ptr<membership> member;
  std::unique_ptr<placement_controller> controller;
  std::optional<key_value> candidate;
  bool alive = false;
};

/// Five nodes on the in-memory control plane, in virtual time: every 500 ms each live node
/// renews, campaigns and, when it leads, reconciles; the seed crashes nodes (they stop, their
/// leases run out) and restarts them (a new incarnation), 120 steps. Checked at every step:
/// at most one live node leads and the leader's epoch never goes back; a crashed node that
/// led is refused once another leads (a deposed controller's write), and the model pointer
/// the leaders move never goes back; once the leader has
/// reconciled, every replica is on a member, no two serving replicas share a node, and
/// serving has as many replicas as the serving nodes alive allow (min 2). Returns the trace.
std::string run_failover_scenario(std::uint64_t seed) {
  std::chrono::milliseconds now{0};
  memory_control_plane plane{[&now] { return now; }};
  std::vector<scenario_node> nodes;
  nodes.push_back({"data", {{"role", "data"}}});
  for (int index = 1; index <= 4; ++index) nodes.push_back({"edge-" + std::to_string(index), {{"role", "serving"}}});
  std::string trace;
  auto start = [&](scenario_node& node) {
    node.member = std::make_unique<membership>(plane);
    auto joined = node.member->join({node.name, "127.0.0.1:7000", node.name == "data" ? 8u : 4u, 0, node.labels}, 3000ms, now);
    if (!joined) return false;  // its old lease still holds the name: tries again later
    node.controller = std::make_unique<placement_controller>(plane);
    auto candidate = node.controller->controllers().campaign(joined->lease, node.name);
    REQUIRE(candidate.ok());
    node.candidate = *candidate;
    node.alive = true;
    trace += std::to_string(now.count()) + " " + node.name + " joins as incarnation " + std::to_string(joined->incarnation) + "\n";
    return true;
  };
  for (auto& node : nodes) REQUIRE(start(node));
  REQUIRE(nodes[0].controller->request_deploy(serving_topology, "edge-serving.yaml").ok());

  desired_state desired(plane);
  std::uint64_t last_pointer = 0;
  std::mt19937_64 random(seed);
  std::uniform_real_distribution<double> chance(0, 1);
  revision last_epoch = 0;
  for (int step = 0; step < 120; ++step) {
    // Faults from the seed: a live node crashes (never the last two alive), a crashed one restarts.
    for (auto& node : nodes) {
      const auto alive = std::count_if(nodes.begin(), nodes.end(), [](const auto& each) { return each.alive; });
      if (node.alive && alive > 2 && chance(random) < 0.04) {
        node.alive = false;
        trace += std::to_string(now.count()) + " " + node.name + " crashes\n";
      } else if (!node.alive && chance(random) < 0.08) {
        start(node);
      }
    }
    now += 500ms;
    plane.tick();
    std::optional<std::string> leading;
    for (auto& node : nodes) {
      if (!node.alive) continue;
      if (!node.member->renew(now).ok()) {  // its lease ran out under it (not in this scenario's timing)
        node.alive = false;
        continue;
      }
      auto leads = node.controller->controllers().is_leader(*node.candidate);
      REQUIRE(leads.ok());
      if (!*leads) continue;
      REQUIRE_FALSE(leading);  // at most one live node leads
      leading = node.name;
      REQUIRE(node.candidate->create_revision >= last_epoch);  // epochs never go back
      if (node.candidate->create_revision > last_epoch) {
        trace += std::to_string(now.count()) + " " + node.name + " leads, epoch " + std::to_string(node.candidate->create_revision) + "\n";
      }
      last_epoch = node.candidate->create_revision;
      REQUIRE(node.controller->reconcile(*node.candidate).ok());
      // The model pointer moves forward under the leader (a version published each step).
      REQUIRE(*desired.advance_model(*node.candidate, "mlp", std::uint64_t(step + 1)) == std::uint64_t(step + 1));
    }
    // A crashed node that led wakes (a paused process) and writes under its old epoch: refused
    // once another leads — its placement pass writes nothing, its pointer move is unauthorized.
    for (auto& node : nodes) {
      if (node.alive || !node.controller || !leading) continue;
      if (node.candidate->create_revision >= last_epoch) continue;
      auto late = node.controller->reconcile(*node.candidate);
      REQUIRE((!late.ok() || !*late));
      auto moved = desired.advance_model(*node.candidate, "mlp", 1'000'000);
      REQUIRE_FALSE(moved.ok());
      REQUIRE(moved.error().code() == errc::unauthorized);
      trace += std::to_string(now.count()) + " " + node.name + " refused under epoch " + std::to_string(node.candidate->create_revision) + "\n";
    }
    const auto pointer = desired.model_pointer("mlp");
    REQUIRE(pointer.ok());
    REQUIRE(*pointer >= last_pointer);  // never back, whoever led
    last_pointer = *pointer;
    if (!leading) continue;
    auto members = nodes[0].member->members();
    REQUIRE(members.ok());
    std::set<std::string> member_names;
    for (const auto& each : *members) member_names.insert(each.info.name);
    auto shown = nodes[0].controller->view();
    REQUIRE(shown.ok());
    std::set<std::string> serving_at;
    std::string placed;
    for (const auto& replica : shown->replicas) {
      CAPTURE(seed, step, replica.component, replica.node);
      REQUIRE(member_names.count(replica.node) == 1);  // nothing placed on a node that is gone
      if (replica.component == "serving") REQUIRE(serving_at.insert(replica.node).second);  // anti-affinity
      placed += " " + replica.component + "/" + std::to_string(replica.replica) + "@" + replica.node;
    }
    const auto serving_members = std::count_if(members->begin(), members->end(), [](const member& each) {
      return each.info.labels.count("role") && each.info.labels.at("role") == "serving";
    });
    CAPTURE(seed, step, placed, shown->error);
    REQUIRE(serving_at.size() == std::size_t(std::min<long>(2, serving_members)));
    trace += std::to_string(now.count()) + " placed" + placed + "\n";
  }
  return trace;
}

}  // namespace

TEST_CASE("seeded crashes and restarts in virtual time keep one leader, fence the deposed, place on members only, and replay by seed") {
  std::size_t leader_changes = 0, deposed_refused = 0;
  auto count = [](const std::string& text, const std::string& what) {
    std::size_t found = 0;
    for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++found;
    return found;
  };
  for (std::uint64_t seed : {1, 2, 3, 4, 5, 6, 7, 8}) {
    CAPTURE(seed);
    const auto first = run_failover_scenario(seed);
    REQUIRE(first.find("crashes") != std::string::npos);  // the seed did inject faults
    REQUIRE(run_failover_scenario(seed) == first);         // and replays exactly
    if (seed > 1) REQUIRE(first != run_failover_scenario(seed - 1));
    leader_changes += count(first, " leads, epoch ") - 1;
    deposed_refused += count(first, " refused under epoch ");
  }
  // The seeds exercised what the invariants guard: controllers lost, and deposed ones writing.
  CAPTURE(leader_changes, deposed_refused);
  REQUIRE(leader_changes >= 4);
  REQUIRE(deposed_refused >= 4);
}
