#include "sim/world.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <limits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unistd.h>

#include "messaging/atoms.hpp"
#include "messaging/errors.hpp"
#include "messaging/request_ledger.hpp"
#include "topologies/desired_state.hpp"
#include "topologies/memory_control_plane.hpp"
#include "topologies/membership.hpp"
#include "topologies/placement_controller.hpp"

namespace rml::sim {
namespace {

using namespace std::chrono_literals;
using route = std::uint64_t;  // a request's id: where the client's answer goes
using deliver_atom = caf::atom_constant<caf::atom("simdeliv")>;
using client_tick_atom = caf::atom_constant<caf::atom("simclient")>;

class world;

/// A message in flight on a link.
struct in_flight {
  caf::strong_actor_ptr sender;
  caf::message_id id;
  caf::message content;
};

struct link_state {
  world* owner = nullptr;
  std::size_t from = 0, to = 0;
  caf::actor target;
  std::map<std::uint64_t, in_flight> pending;
  std::uint64_t next = 0;
  std::int64_t last_delivery_us = 0;
  /// Stand-ins on the far node for the senders of this node that sent through here: what
  /// the far actor answers them goes back through the network too.
  std::map<caf::actor_addr, caf::actor> back;
  static inline const char* name = "rml.sim.link";
};

struct sim_node {
  topologies::node_spec spec;
  std::size_t index = 0;
  std::string data_dir;
  bool up = false;        // its process runs (not crashed)
  bool joined = false;    // it holds a membership
  std::int64_t paused_until_us = 0;
  std::int64_t clock_us = 0;  // its system's clock (behind the world's while paused)
  std::int64_t incarnation = 0;
  /// Every system this node ran, the current one last: a crashed one is kept (its actors
  /// dead) until the run ends, as other nodes' actors may still hold handles into it.
  std::vector<std::unique_ptr<caf::actor_system_config>> configs;
  std::vector<std::unique_ptr<caf::actor_system>> systems;
  std::vector<caf::scheduler::test_coordinator*> retired;  // the crashed systems' schedulers
  caf::actor_system* system = nullptr;
  caf::scheduler::test_coordinator* scheduler = nullptr;
  std::unique_ptr<control::membership> member;
  std::unique_ptr<control::placement_controller> placement;
  std::optional<control::key_value> candidate;
  bool leading = false;
  std::int64_t next_renew_us = 0;
  std::shared_ptr<messaging::sender_identity> identity;
  std::map<std::string, caf::actor> groups;
  std::map<std::string, std::set<std::string>> group_kinds;
  std::string running_topology;
  /// Links in its registry, by kind: the actor (in the far node's system) and that node.
  struct link_entry {
    caf::actor actor;
    std::size_t to = 0;
  };
  std::map<std::string, link_entry> links;
  /// Links from another node to an actor here that subscribed to the registry there.
  std::map<std::pair<std::size_t, caf::actor_addr>, caf::actor> subscriber_links;
  caf::actor ledger, version_watcher;
  std::vector<caf::actor> clients;
  caf::actor_addr watched_registry;
  std::shared_ptr<std::uint64_t> highest_published = std::make_shared<std::uint64_t>(0);
  std::uint64_t pointer_told = 0, pointer_written = 0;
  /// The pointer as last told, for a router starting here (router_options::known_model_pointer).
  std::shared_ptr<std::atomic<std::uint64_t>> known_pointer = std::make_shared<std::atomic<std::uint64_t>>(0);
  control::revision followed_revision = -1, seen_revision = -1;
  /// kind → candidate nodes, preferred first.
  std::map<std::string, std::vector<std::size_t>> elsewhere;

  /// Kills every actor of its process that the world holds (components, links, its
  /// endpoint's ledger and clients) and leaves its registry without components' names.
  void kill_process() {
    for (auto& [group, supervisor] : groups) caf::anon_send_exit(supervisor, caf::exit_reason::kill);
    for (auto& [kind, link] : links) caf::anon_send_exit(link.actor, caf::exit_reason::kill);
    for (auto* actor : {&ledger, &version_watcher}) {
      if (*actor) caf::anon_send_exit(*actor, caf::exit_reason::kill);
    }
    for (auto& client : clients) caf::anon_send_exit(client, caf::exit_reason::kill);
    for (const auto& [kind, name] : topologies::component_names()) system->registry().erase(name);
    forget_process();
    ledger = version_watcher = nullptr;
    clients.clear();
  }

  /// What its process knew, gone with it (a crash, or before a new one starts).
  void forget_process() {
    joined = leading = false;
    candidate.reset();
    paused_until_us = 0;
    running_topology.clear();
    groups.clear();
    group_kinds.clear();
    links.clear();
    subscriber_links.clear();
    elsewhere.clear();
    followed_revision = seen_revision = -1;
    pointer_told = pointer_written = 0;
    watched_registry = caf::actor_addr();
  }
};

struct request_record {
  std::size_t client = 0;
  std::int32_t label = 0;
  bool right = false;
  std::int64_t sent_us = 0, deadline_us = 0;
  std::uint32_t answers = 0;
  answer_record first;
  bool connection_lost = false;
};

class world final : public messaging::ledger_listener<route> {
 public:
  world(const scenario& plan, const world_options& options)
      : plan_(plan), options_(options), random_(options.seed), plane_([this] { return std::chrono::milliseconds(now_us_ / 1000); }) {}

  ~world() override { shutdown(); }

  result<run_report> run();

  // The network, as links ask it: whether a message from node `from` to node `to` is lost,
  // and its latency.
  std::optional<std::int64_t> latency_us(std::size_t from, std::size_t to) {
    if (!nodes_[from]->up || !nodes_[to]->up || cut(from, to)) return std::nullopt;
    const auto& net = network_;
    if (net.drop > 0 && uniform() < net.drop) {
      ++dropped_;
      return std::nullopt;
    }
    double tail = 0;
    if (net.latency_tail.count() > 0) tail = -std::log(1 - uniform()) * double(net.latency_tail.count());
    return net.latency_min.count() + std::int64_t(tail);
  }
  bool duplicate() { return network_.duplicate > 0 && uniform() < network_.duplicate; }
  /// Whether `sender` is an actor of node `index`'s running system.
  bool sent_from(std::size_t index, const caf::strong_actor_ptr& sender) const {
    return nodes_[index]->system && sender->node() == nodes_[index]->system->node();
  }
  /// A stand-in for `target` (on node `to`) in node `from`'s view: an actor in `to`'s
  /// system that delivers what it gets through the network from `from` to `to`.
  caf::actor spawn_link(std::size_t from, std::size_t to, const caf::actor& target);
  bool reorder() const { return network_.reorder; }
  std::int64_t now_us() const { return now_us_; }

  /// The ledger's answers (on the client node's ledger, in its actor's context).
  void answered(std::vector<messaging::routed_answer<route>>& answers) override {
    for (auto& each : answers) {
      auto found = requests_.find(each.route);
      if (found == requests_.end()) continue;
      auto& record = found->second;
      ++record.answers;
      if (record.answers > 1) continue;
      record.first.request_id = each.route;
      record.first.sent_us = record.sent_us;
      record.first.deadline_us = record.deadline_us;
      record.first.answered_us = now_us_;
      if (each.answer.ok()) {
        record.first.model_version = each.answer.reply.model_version;
        record.right = !each.answer.reply.top_classes.empty() && each.answer.reply.top_classes.front() == record.label;
        if (record.first.model_version > pointer_high_) {
          add_violation(invariant::versions_forward, "request " + std::to_string(each.route) + " answered by version " +
                                                         std::to_string(record.first.model_version) + ", above the cluster's model pointer " +
                                                         std::to_string(pointer_high_));
        }
      } else {
        record.first.error = std::uint8_t(messaging::client_code(each.answer.failure));
      }
    }
  }

  /// A client's request: features of a row drawn from the data.
  messaging::predict_request next_request(std::size_t client, std::int64_t now) {
    messaging::predict_request request;
    request.request_id = ++next_request_;
    request.deadline_us = now + std::chrono::duration_cast<std::chrono::microseconds>(plan_.clients[client].deadline).count();
    request.rows = 1;
    const auto rows = options_.components.train->rows();
    const auto row = std::int64_t(random_() % std::uint64_t(rows));
    const auto width = options_.components.train->feature_count();
    const float* values = options_.components.train->features.data() + row * width;
    request.features = messaging::feature_block(std::vector<float>(values, values + width));
    request_record record;
    record.client = client;
    record.label = options_.components.train->labels[std::size_t(row)];
    record.sent_us = now;
    record.deadline_us = request.deadline_us;
    requests_[request.request_id] = record;
    return request;
  }
  bool clients_send() const { return now_us_ < clients_stop_us_; }
  double uniform() { return std::uniform_real_distribution<double>(0, 1)(random_); }

 private:
  void note(const std::string& line) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%10.3f ", double(now_us_) / 1e6);
    trace_ += stamp + line + "\n";
  }
  void event(const std::string& what) {
    events_.emplace_back(double(now_us_) / 1e6, what);
    note(what);
  }
  void add_violation(invariant check, const std::string& what) { add_violation(check, what, now_us_); }
  void add_violation(invariant check, const std::string& what, std::int64_t at_us) {
    if (!wanted(check)) return;
    violations_.push_back({to_string(check), at_us / 1000, what});
    note("VIOLATION " + std::string(to_string(check)) + ": " + what);
  }
  bool wanted(invariant check) const { return std::find(plan_.invariants.begin(), plan_.invariants.end(), check) != plan_.invariants.end(); }
  bool cut(std::size_t a, std::size_t b) const { return cuts_.count({std::min(a, b), std::max(a, b)}) > 0; }

  void start_process(sim_node& node);
  void crash(sim_node& node, const std::string& why);
  void stop_components(sim_node& node, bool drain);
  void stop_group(sim_node& node, const std::string& group, bool drain);
  void tick(sim_node& node);
  void leave_membership(sim_node& node);
  void follow(sim_node& node);
  void resolve(sim_node& node);
  /// What `local` subscribes to the registry with: itself when the registry runs here, else
  /// a link from the registry's node, so that the versions pushed cross the network.
  caf::actor subscriber(sim_node& node, const caf::actor& local);
  void apply(const fault& planned);
  /// Sends a burst of bad events to ingest, wherever it runs, as a producer on its node would.
  void inject_bad_data(const fault& planned);
  std::vector<std::size_t> resolve_nodes(const std::vector<std::string>& names);
  void drain_all();
  std::int64_t next_timer_us() const;
  void advance_to(std::int64_t when_us);
  void check_partitions();
  void shutdown();
  void finish(run_report& report);

  const scenario& plan_;
  world_options options_;
  std::mt19937_64 random_;
  std::int64_t now_us_ = 0;
  control::memory_control_plane plane_;
  std::unique_ptr<control::desired_state> desired_;
  std::vector<std::unique_ptr<sim_node>> nodes_;
  std::map<std::string, std::size_t> node_index_;
  network_spec network_;
  /// Partitioned pairs (lower index first) and since when.
  std::map<std::pair<std::size_t, std::size_t>, std::int64_t> cuts_;
  /// Nodes that cannot reach etcd.
  std::set<std::size_t> etcd_cuts_;
  std::map<std::uint64_t, request_record> requests_;
  std::uint64_t next_request_ = 0;
  std::uint64_t next_bad_event_ = 0;
  std::int64_t clients_stop_us_ = 0;
  std::uint64_t pointer_high_ = 0;
  std::string model_name_;
  control::revision leader_epoch_ = 0;
  std::string leader_name_;
  std::uint64_t dropped_ = 0;
  std::uint64_t faults_ = 0;
  std::int64_t last_fault_end_us_ = 0;
  std::vector<std::pair<std::int64_t, std::int64_t>> fault_windows_;
  std::vector<std::pair<double, std::string>> events_;
  std::vector<violation> violations_;
  std::string trace_;
  std::string run_directory_;
  bool shut_down_ = false;
};

// ---------------------------------------------------------------------------------------
// Links: a remote name's stand-in, in the far node's system (so its node is the far one, as a
// BASP proxy's is), delivering after the network's latency.

caf::actor world::spawn_link(std::size_t from, std::size_t to, const caf::actor& target) {
  auto& far = *nodes_[to];
  return far.system->spawn([this, from, to, target](caf::stateful_actor<link_state>* self) -> caf::behavior {
    self->state.owner = this;
    self->state.from = from;
    self->state.to = to;
    self->state.target = target;
    self->monitor(target);
    // The far actor went down (restarted, or its node lost): so does its stand-in, as a
    // proxy does; the holder of a request sent through it hears it.
    self->set_down_handler([self](caf::down_msg& down) {
      if (down.source == self->state.target.address()) self->quit(down.reason ? down.reason : caf::exit_reason::remote_link_unreachable);
    });
    self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
      auto& state = self->state;
      auto* element = self->current_mailbox_element();
      const std::size_t copies = state.owner->duplicate() ? 2 : 1;
      auto content = view.move_content_to_message();
      // The sender as the far node sees it: for a one-way message from an actor here (a
      // burst whose answers come back to its sender), a link back to it, as BASP delivers a
      // proxy of the sender. A request's response goes straight back (CAF routes it by id).
      auto sender = element->sender;
      if (sender && !element->mid.is_request() && state.owner->sent_from(state.from, sender)) {
        auto sender_address = caf::actor_cast<caf::actor_addr>(sender);
        auto& back = state.back[sender_address];
        if (!back || caf::actor_cast<caf::abstract_actor*>(back)->getf(caf::abstract_actor::is_terminated_flag)) {
          back = state.owner->spawn_link(state.to, state.from, caf::actor_cast<caf::actor>(sender));
        }
        sender = caf::actor_cast<caf::strong_actor_ptr>(back);
      }
      for (std::size_t copy = 0; copy < copies; ++copy) {
        auto latency = state.owner->latency_us(state.from, state.to);
        if (!latency) continue;  // lost: across a partition, or dropped
        std::int64_t at = state.owner->now_us() + *latency;
        if (!state.owner->reorder()) at = std::max(at, state.last_delivery_us);  // FIFO, as TCP
        state.last_delivery_us = at;
        const auto number = state.next++;
        state.pending.emplace(number, in_flight{sender, element->mid, content});
        self->delayed_send(self, std::chrono::microseconds(at - state.owner->now_us()), deliver_atom::value, number);
      }
      // A request is answered by the far actor, straight to its sender: not from here.
      return caf::delegated<caf::message>{};
    });
    return {
        [self](deliver_atom, std::uint64_t number) {
          auto found = self->state.pending.find(number);
          if (found == self->state.pending.end()) return;
          auto message = std::move(found->second);
          self->state.pending.erase(found);
          auto* target = caf::actor_cast<caf::abstract_actor*>(self->state.target);
          target->enqueue(caf::make_mailbox_element(std::move(message.sender), message.id, {}, std::move(message.content)), self->context());
        },
    };
  });
}

// ---------------------------------------------------------------------------------------
// Nodes.

void world::start_process(sim_node& node) {
  auto config = std::make_unique<caf::actor_system_config>();
  config->set("scheduler.policy", caf::atom("testing"));
  config->set("logger.verbosity", caf::atom("quiet"));
  // The testing backend: no socket, no thread; loaded for a node id of its own per system.
  config->set("middleman.network-backend", caf::atom("testing"));
  config->load<caf::io::middleman>();
  messaging::register_messaging(*config);
  if (node.scheduler) node.retired.push_back(node.scheduler);
  auto system = std::make_unique<caf::actor_system>(*config);
  node.scheduler = &dynamic_cast<caf::scheduler::test_coordinator&>(system->scheduler());
  node.system = system.get();
  node.configs.push_back(std::move(config));
  node.systems.push_back(std::move(system));
  // Its clock starts where the world is.
  const auto start = std::chrono::duration_cast<std::chrono::microseconds>(node.scheduler->clock().now().time_since_epoch()).count();
  node.scheduler->advance_time(caf::timespan(std::chrono::microseconds(now_us_ - start)));
  node.clock_us = now_us_;
  node.up = true;
  node.forget_process();
  node.identity = std::make_shared<messaging::sender_identity>();
  node.identity->node = node.spec.name;
  node.member = std::make_unique<control::membership>(plane_);
  node.placement = std::make_unique<control::placement_controller>(plane_);
  node.highest_published = std::make_shared<std::uint64_t>(0);
  node.known_pointer = std::make_shared<std::atomic<std::uint64_t>>(0);
  node.version_watcher = node.system->spawn([highest = node.highest_published](caf::event_based_actor*) -> caf::behavior {
    return {[highest](const messaging::model_snapshot& snapshot) { *highest = std::max(*highest, snapshot.version); },
            [highest](messaging::rollback_atom, const messaging::model_snapshot& snapshot) { *highest = std::max(*highest, snapshot.version); }};
  });
  // Its endpoint's request ledger and the clients talking to it.
  messaging::ledger_options ledger;
  ledger.wait_for_target = true;
  ledger.identity = node.identity;
  ledger.planted_forget_lost_requests = options_.bugs.drop_requests_of_lost_node;
  node.ledger = messaging::spawn_request_ledger<route>(*node.system, this, ledger);
  for (std::size_t client = 0; client < plan_.clients.size(); ++client) {
    if (plan_.clients[client].node != node.spec.name) continue;
    const double rate = plan_.clients[client].requests_per_second;
    const auto start_us = std::chrono::duration_cast<std::chrono::microseconds>(plan_.clients[client].start).count();
    node.clients.push_back(node.system->spawn([this, client, rate, start_us, ledger = node.ledger](caf::event_based_actor* self) -> caf::behavior {
      auto next = [this, self, rate, start_us] {
        // Poisson arrivals from the seed.
        const double gap = -std::log(1 - uniform()) / rate;
        const auto at = std::max(now_us_, start_us) + std::max<std::int64_t>(1, std::int64_t(gap * 1e6));
        self->delayed_send(self, std::chrono::microseconds(at - now_us_), client_tick_atom::value);
      };
      next();
      return {[this, self, client, ledger, next](client_tick_atom) {
        if (!clients_send()) return;
        messaging::ledger_intake<route> intake;
        intake.requests.push_back(next_request(client, now_us_));
        intake.routes.push_back(intake.requests.back().request_id);
        self->send(ledger, std::move(intake));
        next();
      }};
    }));
  }
}

void world::stop_group(sim_node& node, const std::string& group, bool drain) {
  auto found = node.groups.find(group);
  if (found == node.groups.end()) return;
  auto supervisor = found->second;
  const auto kinds = node.group_kinds[group];
  // The names leave the registry now: new requests look elsewhere while serving drains.
  for (const auto& kind : kinds) {
    const auto name = topologies::component_names().at(kind);
    auto entered = node.system->registry().get(name);
    auto router = entered ? caf::actor_cast<caf::actor>(entered) : caf::actor();
    if (entered && entered->node() == node.system->node()) node.system->registry().erase(name);
    if (kind == "serving" && drain && router) {
      // Drain first: admitted requests are answered before it stops.
      node.system->spawn([router, supervisor](caf::event_based_actor* self) {
        self->request(router, std::chrono::seconds(11), messaging::drain_atom::value, std::int64_t(10'000))
            .then([self, supervisor](std::uint64_t) { self->send_exit(supervisor, caf::exit_reason::user_shutdown); },
                  [self, supervisor](caf::error&) { self->send_exit(supervisor, caf::exit_reason::user_shutdown); });
      });
      supervisor = nullptr;
    }
  }
  if (supervisor) caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
  node.groups.erase(found);
  node.group_kinds.erase(group);
}

void world::stop_components(sim_node& node, bool drain) {
  if (node.groups.count("serving")) stop_group(node, "serving", drain);
  while (!node.groups.empty()) stop_group(node, node.groups.begin()->first, drain);
  node.running_topology.clear();
}

void world::crash(sim_node& node, const std::string& why) {
  if (!node.up) return;
  event(node.spec.name + " crashes (" + why + ")");
  node.up = false;
  // Everything in its process dies at once: components, its clients' connections, the links
  // it had into other nodes' systems (their sockets were its own).
  node.kill_process();
  // Other nodes' links into it: BASP kills a lost node's proxies at once.
  for (auto& other : nodes_) {
    for (auto link = other->links.begin(); link != other->links.end();) {
      if (link->second.to != node.index) {
        ++link;
        continue;
      }
      caf::anon_send_exit(link->second.actor, caf::exit_reason::remote_link_unreachable);
      if (other->system) other->system->registry().erase(topologies::component_names().at(link->first));
      link = other->links.erase(link);
    }
  }
  node.member.reset();
  node.placement.reset();
  // Requests its clients were waiting on: their connections are gone with it.
  for (auto& [id, record] : requests_) {
    if (record.answers == 0 && plan_.clients[record.client].node == node.spec.name) record.connection_lost = true;
  }
  node.scheduler->run();
}

void world::tick(sim_node& node) {
  if (!node.up || node.paused_until_us > now_us_) return;
  const auto now = std::chrono::milliseconds(now_us_ / 1000);
  if (etcd_cuts_.count(node.index)) {
    // No answer from etcd: the node keeps what runs while its lease may still be alive, and
    // stops serving before it can have expired (membership.hpp: may_serve).
    if (node.joined && !node.member->may_serve(now)) {
      event(node.spec.name + " cannot reach etcd: stops its components before its lease can expire");
      leave_membership(node);
    }
    if (node.joined) resolve(node);
    return;
  }
  if (!node.joined) {
    control::member_info self{node.spec.name, "sim:" + node.spec.name, node.spec.cores, node.spec.gpus, node.spec.labels};
    auto joined = node.member->join(self, plan_.lease_ttl, now);
    if (!joined) return;  // its old lease still holds the name: tries again next tick
    node.joined = true;
    node.incarnation = joined->incarnation;
    node.identity->incarnation.store(joined->incarnation);
    node.next_renew_us = now_us_ + std::chrono::duration_cast<std::chrono::microseconds>(plan_.lease_ttl).count() / 3;
    auto candidate = node.placement->controllers().campaign(joined->lease, node.spec.name);
    if (candidate) node.candidate = *candidate;
    event(node.spec.name + " joins as incarnation " + std::to_string(joined->incarnation));
  }
  // As `rml node`: a pass on every renewal and on every change of the control plane (its
  // watches wake it), not on every tick.
  bool changed = false;
  if (now_us_ >= node.next_renew_us) {
    changed = true;
    node.next_renew_us = now_us_ + std::chrono::duration_cast<std::chrono::microseconds>(plan_.lease_ttl).count() / 3;
    if (auto renewed = node.member->renew(now); !renewed) {
      event(node.spec.name + " lost its membership: stops its components and joins again");
      leave_membership(node);
      return;
    }
  }
  if (auto revision = plane_.current_revision(); revision && *revision != node.seen_revision) {
    node.seen_revision = *revision;
    changed = true;
  }
  // The controller's turn (reconcile_if_leading in node_command.cpp).
  // Leadership changes only with the control plane (a lease expired, a key erased).
  if (node.candidate && changed) {
    auto leads = node.placement->controllers().is_leader(*node.candidate);
    if (leads && *leads != node.leading) {
      node.leading = *leads;
      if (node.leading) {
        event(node.spec.name + " leads the placement controller, epoch " + std::to_string(node.candidate->create_revision));
        if (node.candidate->create_revision < leader_epoch_) {
          add_violation(invariant::one_controller, node.spec.name + " leads under epoch " + std::to_string(node.candidate->create_revision) +
                                                        " after epoch " + std::to_string(leader_epoch_));
        }
        leader_epoch_ = node.candidate->create_revision;
        leader_name_ = node.spec.name;
      }
    }
    if (node.leading) {
      auto wrote = node.placement->reconcile(*node.candidate);
      if (wrote && *wrote) {
        auto shown = node.placement->view();
        std::string placed;
        if (shown) {
          for (const auto& replica : shown->replicas) placed += " " + replica.component + "@" + replica.node;
        }
        note(node.spec.name + " places:" + placed + (shown && !shown->error.empty() ? " (not placed: " + shown->error + ")" : ""));
      }
    }
  }
  // The model pointer follows what the registry published (forward only, fenced).
  if (node.candidate && node.leading && !model_name_.empty() && *node.highest_published > node.pointer_written) {
    if (auto moved = desired_->advance_model(*node.candidate, model_name_, *node.highest_published)) {
      node.pointer_written = *moved;
    } else if (moved.error().code() == errc::invalid_argument) {
      node.pointer_written = *node.highest_published;
    }
  }
  if (changed) node.followed_revision = -1;
  follow(node);
  // Its watcher follows the registry wherever it runs (a new one keeps no subscribers).
  if (auto registry = node.system->registry().get<caf::actor>(messaging::names::registry); registry && registry.address() != node.watched_registry) {
    node.watched_registry = registry.address();
    caf::anon_send(registry, messaging::subscribe_atom::value, subscriber(node, node.version_watcher));
  }
  // Serving here takes versions up to the cluster's model pointer: told on every pass, as
  // `rml node` does (a router its supervisor restarted knows none until told).
  if (!model_name_.empty() && (changed || node.pointer_told == 0)) {
    if (auto pointer = desired_->model_pointer(model_name_); pointer && *pointer > 0) {
      auto serving = node.system->registry().get<caf::actor>(messaging::names::serving);
      if (serving && serving.node() == node.system->node()) {
        caf::anon_send(serving, messaging::model_pointer_atom::value, *pointer);
        node.pointer_told = *pointer;
        if (*pointer > node.known_pointer->load()) node.known_pointer->store(*pointer);
      }
    }
  }
}

/// Not a member: what runs here stops (its replicas are placed elsewhere by now, or will be).
void world::leave_membership(sim_node& node) {
  stop_components(node, false);
  for (auto& [kind, link] : node.links) {
    caf::anon_send_exit(link.actor, caf::exit_reason::user_shutdown);
    node.system->registry().erase(topologies::component_names().at(kind));
  }
  node.links.clear();
  node.elsewhere.clear();
  node.joined = false;
  node.leading = false;
  node.candidate.reset();
  node.member = std::make_unique<control::membership>(plane_);
  node.placement = std::make_unique<control::placement_controller>(plane_);
}

void world::follow(sim_node& node) {
  auto revision = plane_.current_revision();
  if (revision && *revision == node.followed_revision) {
    resolve(node);
    return;
  }
  if (revision) node.followed_revision = *revision;
  auto deployed = node.placement->deployed();
  auto members = node.member->members();
  if (!deployed || !members) return;
  if (!*deployed) {
    if (!node.groups.empty()) stop_components(node, true);
    return;
  }
  const auto& placed = **deployed;
  std::set<std::string> alive;
  for (const auto& each : *members) alive.insert(each.info.name);
  auto assigned = control::assignment_of(plan_.topology, placed.plan, alive, node.spec.name);
  const auto& here = assigned.here;
  std::map<std::string, std::vector<std::size_t>> elsewhere;
  for (const auto& [kind, names] : assigned.elsewhere) {
    for (const auto& name : names) {
      if (auto index = node_index_.find(name); index != node_index_.end()) elsewhere[kind].push_back(index->second);
    }
  }
  node.elsewhere = elsewhere;
  // What runs here: groups that go or change stop first, then the new ones start.
  std::map<std::string, std::set<std::string>> wanted;
  for (const auto& kind : here) wanted[topologies::process_group(kind)].insert(kind);
  for (auto group = node.group_kinds.begin(); group != node.group_kinds.end();) {
    auto want = wanted.find(group->first);
    if (want != wanted.end() && want->second == group->second) {
      ++group;
      continue;
    }
    const auto name = group->first;
    ++group;
    stop_group(node, name, true);
  }
  // Links for kinds that now run here go: the local component takes the name.
  for (auto link = node.links.begin(); link != node.links.end();) {
    if (!elsewhere.count(link->first)) {
      caf::anon_send_exit(link->second.actor, caf::exit_reason::user_shutdown);
      auto entered = node.system->registry().get(topologies::component_names().at(link->first));
      if (entered && caf::actor_cast<caf::actor>(entered) == link->second.actor) node.system->registry().erase(topologies::component_names().at(link->first));
      link = node.links.erase(link);
    } else {
      ++link;
    }
  }
  resolve(node);
  for (const auto& [group, kinds] : wanted) {
    if (node.groups.count(group)) continue;
    auto pipeline = options_.components;
    pipeline.local_kinds = kinds;
    pipeline.data_dir = node.data_dir;
    pipeline.telemetry = messaging::telemetry{};
    pipeline.serving.follow_model_pointer = true;
    pipeline.serving.known_model_pointer = node.known_pointer;
    auto started = topologies::start_pipeline(*node.system, pipeline);
    if (!started) {
      note(node.spec.name + " cannot start " + group + ": " + started.error().message());
      continue;
    }
    node.groups[group] = started->supervisor;
    node.group_kinds[group] = kinds;
    std::string list;
    for (const auto& kind : kinds) list += (list.empty() ? "" : ",") + kind;
    note(node.spec.name + " starts " + list);
    if (kinds.count("serving")) {
      node.pointer_told = 0;
      // Serving learns of models from the registry, here or through its link.
      auto registry = node.system->registry().get<caf::actor>(messaging::names::registry);
      auto serving = node.system->registry().get<caf::actor>(messaging::names::serving);
      if (registry && serving) caf::anon_send(registry, messaging::subscribe_atom::value, subscriber(node, serving));
    }
  }
}

caf::actor world::subscriber(sim_node& node, const caf::actor& local) {
  auto registry = node.links.find("registry");
  if (registry == node.links.end()) return local;
  auto& cached = node.subscriber_links[{registry->second.to, local.address()}];
  if (!cached || caf::actor_cast<caf::abstract_actor*>(cached)->getf(caf::abstract_actor::is_terminated_flag)) cached = spawn_link(registry->second.to, node.index, local);
  return cached;
}

/// Finds each name that runs elsewhere on the first candidate that is up, reachable and runs
/// it, as the peer resolver does over BASP.
void world::resolve(sim_node& node) {
  for (const auto& [kind, candidates] : node.elsewhere) {
    const auto name = topologies::component_names().at(kind);
    auto existing = node.links.find(kind);
    if (existing != node.links.end()) {
      const auto& held = existing->second.actor;
      const bool alive = held && !caf::actor_cast<caf::abstract_actor*>(held)->getf(caf::abstract_actor::is_terminated_flag);
      // Kept while alive and still the most preferred reachable candidate.
      if (alive && !candidates.empty() && existing->second.to == candidates.front()) continue;
      if (alive && std::find(candidates.begin(), candidates.end(), existing->second.to) != candidates.end()) {
        bool better = false;
        for (auto candidate : candidates) {
          if (candidate == existing->second.to) break;
          const auto& far = *nodes_[candidate];
          auto entered = far.up ? far.system->registry().get(name) : nullptr;
          if (far.up && far.paused_until_us <= now_us_ && !cut(node.index, candidate) && entered && entered->node() == far.system->node()) better = true;
        }
        if (!better) continue;
      }
      caf::anon_send_exit(existing->second.actor, caf::exit_reason::user_shutdown);
      node.links.erase(existing);
      node.system->registry().erase(name);
    }
    for (auto candidate : candidates) {
      auto& far = *nodes_[candidate];
      if (!far.up || far.paused_until_us > now_us_ || cut(node.index, candidate)) continue;
      auto entered = far.system->registry().get(name);
      if (!entered || entered->node() != far.system->node()) continue;
      auto target = caf::actor_cast<caf::actor>(entered);
      auto link = spawn_link(node.index, candidate, target);
      node.links[kind] = {link, candidate};
      node.system->registry().erase(name);  // CAF's put keeps an entry already there
      node.system->registry().put(name, caf::actor_cast<caf::strong_actor_ptr>(link));
      if (name == messaging::names::registry) {
        auto serving = node.system->registry().get<caf::actor>(messaging::names::serving);
        if (serving && serving.node() == node.system->node()) caf::anon_send(link, messaging::subscribe_atom::value, subscriber(node, serving));
      }
      break;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Time.

void world::drain_all() {
  for (int round = 0; round < 1'000'000; ++round) {
    bool progressed = false;
    for (auto& node : nodes_) {
      if (!node->system || node->paused_until_us > now_us_) continue;
      if (node->scheduler->run() > 0) progressed = true;
    }
    // Crashed systems: their dying actors' last messages.
    for (auto& node : nodes_) {
      for (auto* old : node->retired) {
        if (old->run() > 0) progressed = true;
      }
    }
    if (!progressed) return;
  }
}

std::int64_t world::next_timer_us() const {
  std::int64_t next = INT64_MAX;
  for (const auto& node : nodes_) {
    if (!node->system || node->paused_until_us > now_us_) continue;
    const auto& schedule = node->scheduler->clock().schedule();
    if (schedule.empty()) continue;
    const auto at = std::chrono::duration_cast<std::chrono::microseconds>(schedule.begin()->first.time_since_epoch()).count();
    next = std::min(next, at);
  }
  return next;
}

void world::advance_to(std::int64_t when_us) {
  if (when_us <= now_us_) return;
  now_us_ = when_us;
  for (auto& node : nodes_) {
    if (!node->system || node->paused_until_us > now_us_) continue;
    if (node->clock_us < now_us_) {
      node->scheduler->advance_time(caf::timespan(std::chrono::microseconds(now_us_ - node->clock_us)));
      node->clock_us = now_us_;
    }
  }
}

void world::check_partitions() {
  // A partition that outlasts the connection timeout: BASP's heartbeat ends the connection,
  // and the proxies across it go down (their holders hear it).
  for (const auto& [pair, since] : cuts_) {
    if (now_us_ - since < std::chrono::duration_cast<std::chrono::microseconds>(network_.connection_timeout).count()) continue;
    for (auto [a, b] : {pair, std::pair{pair.second, pair.first}}) {
      auto& node = *nodes_[a];
      for (auto link = node.links.begin(); link != node.links.end();) {
        if (link->second.to != b) {
          ++link;
          continue;
        }
        caf::anon_send_exit(link->second.actor, caf::exit_reason::remote_link_unreachable);
        if (node.system) node.system->registry().erase(topologies::component_names().at(link->first));
        link = node.links.erase(link);
      }
    }
  }
}

std::vector<std::size_t> world::resolve_nodes(const std::vector<std::string>& names) {
  std::vector<std::size_t> out;
  for (const auto& name : names) {
    if (name == "leader") {
      if (auto found = node_index_.find(leader_name_); found != node_index_.end() && nodes_[found->second]->leading) out.push_back(found->second);
    } else if (name == "random") {
      std::vector<std::size_t> up;
      for (const auto& node : nodes_) {
        if (node->up) up.push_back(node->index);
      }
      if (!up.empty()) out.push_back(up[random_() % up.size()]);
    } else {
      out.push_back(node_index_.at(name));
    }
  }
  return out;
}

void world::apply(const fault& planned) {
  ++faults_;
  switch (planned.kind) {
    case fault_kind::crash:
      for (auto index : resolve_nodes(planned.nodes)) crash(*nodes_[index], "fault");
      break;
    case fault_kind::restart:
      for (auto index : resolve_nodes(planned.nodes)) {
        auto& node = *nodes_[index];
        if (node.up) continue;
        if (planned.wipe) std::filesystem::remove_all(node.data_dir);
        event(node.spec.name + " restarts" + (planned.wipe ? " on an empty disk" : ""));
        start_process(node);
      }
      break;
    case fault_kind::partition: {
      auto without_etcd = [](std::vector<std::string> names, bool& had) {
        had = std::find(names.begin(), names.end(), "etcd") != names.end();
        names.erase(std::remove(names.begin(), names.end(), "etcd"), names.end());
        return names;
      };
      bool etcd_side = false, etcd_far = false;
      auto side = resolve_nodes(without_etcd(planned.nodes, etcd_side));
      auto far_names = without_etcd(planned.other, etcd_far);
      if (etcd_side || etcd_far) {
        // The control plane cut off: from the far side's nodes (every node when etcd is
        // named alone), or the named nodes from it.
        std::vector<std::size_t> cut_off = etcd_far ? side : resolve_nodes(far_names);
        if (etcd_side && far_names.empty()) {
          cut_off.clear();
          for (const auto& node : nodes_) cut_off.push_back(node->index);
        }
        std::string names;
        for (auto index : cut_off) {
          etcd_cuts_.insert(index);
          names += (names.empty() ? "" : ",") + nodes_[index]->spec.name;
        }
        event("partition: etcd unreachable from " + names);
        if (etcd_far && far_names.empty()) break;
        if (etcd_side) break;
      }
      std::vector<std::size_t> far = far_names.empty() ? std::vector<std::size_t>{} : resolve_nodes(far_names);
      if (far_names.empty()) {
        for (const auto& node : nodes_) {
          if (std::find(side.begin(), side.end(), node->index) == side.end()) far.push_back(node->index);
        }
      }
      std::string names;
      for (auto index : side) names += (names.empty() ? "" : ",") + nodes_[index]->spec.name;
      event("partition: " + names + " cut off from " + std::to_string(far.size()) + " nodes");
      for (auto a : side) {
        for (auto b : far) {
          if (a != b) cuts_.emplace(std::pair{std::min(a, b), std::max(a, b)}, now_us_);
        }
      }
      break;
    }
    case fault_kind::heal:
      event("partitions heal");
      cuts_.clear();
      etcd_cuts_.clear();
      break;
    case fault_kind::network:
      event("network changes: drop " + std::to_string(planned.network.drop) + ", duplicate " + std::to_string(planned.network.duplicate));
      network_ = planned.network;
      break;
    case fault_kind::bad_data:
      inject_bad_data(planned);
      break;
    case fault_kind::kill: {
      // The component's actor dies (a bug, an abort): its supervisor restarts it.
      const auto name = topologies::component_names().at(planned.component);
      std::vector<std::size_t> where = planned.nodes.empty() ? std::vector<std::size_t>{} : resolve_nodes(planned.nodes);
      if (planned.nodes.empty()) {
        for (const auto& node : nodes_) where.push_back(node->index);
      }
      for (auto index : where) {
        auto& node = *nodes_[index];
        if (!node.up || !node.system) continue;
        auto entered = node.system->registry().get<caf::actor>(name);
        if (!entered || entered.node() != node.system->node()) continue;
        event(planned.component + " on " + node.spec.name + " killed");
        caf::anon_send_exit(entered, caf::exit_reason::kill);
      }
      break;
    }
    case fault_kind::pause:
      for (auto index : resolve_nodes(planned.nodes)) {
        auto& node = *nodes_[index];
        if (!node.up) continue;
        event(node.spec.name + " pauses for " + std::to_string(planned.length.count()) + " ms");
        node.paused_until_us = now_us_ + std::chrono::duration_cast<std::chrono::microseconds>(planned.length).count();
      }
      break;
  }
}

void world::inject_bad_data(const fault& planned) {
  sim_node* home = nullptr;
  caf::actor ingest;
  for (auto& node : nodes_) {
    if (!node->up || !node->system) continue;
    auto entered = node->system->registry().get<caf::actor>(messaging::names::ingest);
    if (entered && entered.node() == node->system->node()) {
      home = node.get();
      ingest = entered;
      break;
    }
  }
  const std::string what = std::string("bad data (") + to_string(planned.data_kind) + ", " + std::to_string(planned.events) + " events)";
  if (!home) {
    event(what + ": no ingest runs to send it to");
    return;
  }
  event(what + " sent to ingest on " + home->spec.name);
  const auto& data = *options_.components.train;
  const auto width = std::size_t(data.feature_count());
  std::vector<messaging::event_batch> batches;
  for (std::uint32_t sent = 0; sent < planned.events;) {
    messaging::event_batch batch;
    batch.batch_id = (std::uint64_t(1) << 62) + next_bad_event_;
    for (std::uint32_t index = 0; index < 256 && sent < planned.events; ++index, ++sent) {
      messaging::event fact;
      fact.id = (std::uint64_t(1) << 62) + next_bad_event_++;
      fact.timestamp_us = now_us_;
      const auto row = std::size_t(random_() % std::uint64_t(data.rows()));
      const float* values = data.features.data() + row * width;
      fact.features.values.assign(values, values + width);
      fact.label = data.labels[row];
      switch (planned.data_kind) {
        case bad_data_kind::nan: fact.features.values[row % width] = std::numeric_limits<float>::quiet_NaN(); break;
        case bad_data_kind::shape: fact.features.values.resize(width + 1 + row % 3); break;
        case bad_data_kind::label_noise: fact.label = std::int32_t(random_() % std::uint64_t(data.classes)); break;
        case bad_data_kind::drift:
          for (auto& value : fact.features.values) value += 3.0f;
          break;
      }
      batch.events.push_back(std::move(fact));
    }
    batches.push_back(std::move(batch));
  }
  home->system->spawn([this, what, ingest, batches = std::move(batches)](caf::event_based_actor* self) {
    auto counts = std::make_shared<std::array<std::uint64_t, 3>>();  // acked, refused, answers
    const auto total = batches.size();
    for (const auto& batch : batches) {
      auto done = [this, self, counts, total, what] {
        if (++(*counts)[2] < total) return;
        note(what + ": " + std::to_string((*counts)[0]) + " events acked, " + std::to_string((*counts)[1]) + " batches refused");
        self->quit();
      };
      self->request(ingest, std::chrono::seconds(10), batch)
          .then([counts, done](const messaging::event_acked& acked) {
                  (*counts)[0] += acked.appended;
                  done();
                },
                [counts, done](caf::error&) {
                  ++(*counts)[1];
                  done();
                });
    }
  });
}

void world::shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  for (auto& node : nodes_) {
    if (node->system) node->kill_process();
  }
  drain_all();
  // Newest systems first: actors of older ones may be referenced from them.
  for (auto& node : nodes_) {
    while (!node->systems.empty()) {
      node->systems.pop_back();
      node->configs.pop_back();
    }
    node->system = nullptr;
    node->scheduler = nullptr;
    node->retired.clear();
  }
  if (!run_directory_.empty()) std::filesystem::remove_all(run_directory_);
}

// ---------------------------------------------------------------------------------------
// The run.

result<run_report> world::run() {
  const auto wall_start = std::chrono::steady_clock::now();  // the report's speed only
  network_ = plan_.network;
  desired_ = std::make_unique<control::desired_state>(plane_);
  auto base = options_.scratch_directory.empty() ? std::filesystem::temp_directory_path() : std::filesystem::path(options_.scratch_directory);
  run_directory_ = (base / ("rml-sim-" + std::to_string(::getpid()) + "-" + std::to_string(options_.seed))).string();
  std::error_code made;
  std::filesystem::remove_all(run_directory_, made);
  std::filesystem::create_directories(run_directory_, made);
  if (made) return error(errc::io_error, run_directory_ + ": cannot create the run's directory: " + made.message());
  model_name_ = options_.components.serving.model;
  for (const auto& spec : plan_.nodes) {
    auto node = std::make_unique<sim_node>();
    node->spec = spec;
    node->index = nodes_.size();
    node->data_dir = (std::filesystem::path(run_directory_) / spec.name).string();
    node_index_[spec.name] = node->index;
    nodes_.push_back(std::move(node));
  }
  const auto duration_us = std::chrono::duration_cast<std::chrono::microseconds>(plan_.duration).count();
  std::chrono::milliseconds longest_deadline{0};
  for (const auto& client : plan_.clients) longest_deadline = std::max(longest_deadline, client.deadline);
  clients_stop_us_ = duration_us - std::chrono::duration_cast<std::chrono::microseconds>(longest_deadline + 1000ms).count();
  // The fault schedule: the scenario's, then the seed's (drawn before the run: the same
  // seed, the same faults).
  std::vector<fault> schedule = plan_.faults;
  auto draw_times = [&](double per_minute) {
    std::vector<std::int64_t> times;
    if (per_minute <= 0) return times;
    const double mean_us = 60e6 / per_minute;
    double at = 0;
    const auto until = std::chrono::duration_cast<std::chrono::microseconds>(plan_.random.until).count();
    while (true) {
      at += -std::log(1 - uniform()) * mean_us;
      if (at >= double(until)) break;
      times.push_back(std::int64_t(at));
    }
    return times;
  };
  std::vector<std::string> candidates = plan_.random.nodes;
  if (candidates.empty()) {
    for (std::size_t index = 1; index < plan_.nodes.size(); ++index) candidates.push_back(plan_.nodes[index].name);
  }
  if (!candidates.empty()) {
    for (auto at : draw_times(plan_.random.crashes_per_minute)) {
      const auto victim = candidates[random_() % candidates.size()];
      fault crash_fault;
      crash_fault.at = std::chrono::milliseconds(at / 1000);
      crash_fault.kind = fault_kind::crash;
      crash_fault.nodes = {victim};
      schedule.push_back(crash_fault);
      fault restart_fault = crash_fault;
      restart_fault.kind = fault_kind::restart;
      restart_fault.at += plan_.random.restart_after;
      schedule.push_back(restart_fault);
    }
    for (auto at : draw_times(plan_.random.partitions_per_minute)) {
      fault cut_fault;
      cut_fault.at = std::chrono::milliseconds(at / 1000);
      cut_fault.kind = fault_kind::partition;
      cut_fault.nodes = {candidates[random_() % candidates.size()]};
      schedule.push_back(cut_fault);
      fault heal_fault;
      heal_fault.at = cut_fault.at + plan_.random.partition_length;
      heal_fault.kind = fault_kind::heal;
      schedule.push_back(heal_fault);
    }
  }
  std::stable_sort(schedule.begin(), schedule.end(), [](const fault& a, const fault& b) { return a.at < b.at; });
  // Fault windows, for the report and the recovery invariant: from a fault to the restart or
  // heal that undoes it (or its own end), else to the end.
  for (std::size_t index = 0; index < schedule.size(); ++index) {
    const auto& each = schedule[index];
    const auto start = std::chrono::duration_cast<std::chrono::microseconds>(each.at).count();
    std::int64_t end = start;
    if (each.kind == fault_kind::pause) end = start + std::chrono::duration_cast<std::chrono::microseconds>(each.length).count();
    if (each.kind == fault_kind::crash || each.kind == fault_kind::partition || each.kind == fault_kind::network) {
      end = duration_us;
      for (std::size_t later = index + 1; later < schedule.size(); ++later) {
        const auto undo = schedule[later].kind;
        if ((each.kind == fault_kind::crash && undo == fault_kind::restart && schedule[later].nodes == each.nodes) ||
            (each.kind == fault_kind::partition && undo == fault_kind::heal) || (each.kind == fault_kind::network && undo == fault_kind::network)) {
          end = std::chrono::duration_cast<std::chrono::microseconds>(schedule[later].at).count();
          break;
        }
      }
    }
    if (each.kind == fault_kind::restart || each.kind == fault_kind::heal) continue;
    fault_windows_.emplace_back(start, end);
    last_fault_end_us_ = std::max(last_fault_end_us_, end);
  }

  note("seed=" + std::to_string(options_.seed) + " scenario " + plan_.name + ": " + std::to_string(nodes_.size()) + " nodes, " +
       std::to_string(schedule.size()) + " faults scheduled");
  for (auto& node : nodes_) start_process(*node);
  const std::int64_t tick_us = 50'000;
  std::int64_t next_tick_us = 0;
  std::size_t next_fault = 0;
  bool deploy_asked = false;
  std::int64_t next_second_us = 1'000'000;
  std::uint64_t last_pointer = 0;
  while (now_us_ < duration_us) {
    while (next_fault < schedule.size() && std::chrono::duration_cast<std::chrono::microseconds>(schedule[next_fault].at).count() <= now_us_) {
      apply(schedule[next_fault++]);
    }
    if (now_us_ >= next_tick_us) {
      next_tick_us = now_us_ + tick_us;
      for (auto& node : nodes_) {
        // A paused node comes back: its clock jumps to now, its timers fire.
        if (node->up && node->paused_until_us != 0 && node->paused_until_us <= now_us_) {
          node->paused_until_us = 0;
          event(node->spec.name + " resumes");
          advance_to(now_us_);
        }
        tick(*node);
      }
      if (!deploy_asked) {
        for (auto& node : nodes_) {
          if (!node->joined) continue;
          if (auto asked = node->placement->request_deploy(plan_.topology_text, plan_.file); !asked) {
            return error(asked.error().code(), "deploying the scenario's topology: " + asked.error().message());
          }
          deploy_asked = true;
          note("topology " + plan_.topology.name + " deployed");
          break;
        }
      }
      check_partitions();
      if (!model_name_.empty()) {
        if (auto pointer = desired_->model_pointer(model_name_); pointer) {
          if (*pointer < last_pointer) {
            add_violation(invariant::versions_forward, "the model pointer moved back from " + std::to_string(last_pointer) + " to " + std::to_string(*pointer));
          }
          if (*pointer > last_pointer) note("model pointer at v" + std::to_string(*pointer));
          last_pointer = *pointer;
          pointer_high_ = std::max(pointer_high_, *pointer);
        }
      }
    }
    drain_all();
    if (now_us_ >= next_second_us) {
      next_second_us += 1'000'000;
      if (options_.progress) options_.progress(now_us_ / 1000, duration_us / 1000);
    }
    std::int64_t next = std::min({next_timer_us(), next_tick_us, duration_us});
    if (next_fault < schedule.size()) next = std::min(next, std::int64_t(std::chrono::duration_cast<std::chrono::microseconds>(schedule[next_fault].at).count()));
    for (const auto& node : nodes_) {
      if (node->up && node->paused_until_us > now_us_) next = std::min(next, node->paused_until_us);
    }
    advance_to(std::max(next, now_us_ + 1));
  }
  drain_all();
  run_report report;
  report.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  report.simulated_seconds = double(duration_us) / 1e6;
  finish(report);
  return report;
}

void world::finish(run_report& report) {
  report.scenario = plan_.name;
  report.seed = options_.seed;
  report.faults = faults_;
  report.highest_version = pointer_high_;
  const auto seconds = std::size_t(now_us_ / 1'000'000) + 1;
  report.timeline.resize(seconds);
  std::vector<std::vector<double>> latencies(seconds);
  std::vector<std::uint32_t> right(seconds, 0);
  const std::int64_t grace_us = 50'000;
  std::map<std::uint8_t, std::uint64_t> errors_by_code;
  for (const auto& [id, record] : requests_) {
    ++report.requests;
    if (record.answers == 0) {
      if (record.connection_lost) continue;  // its client's node crashed: no one to answer
      ++report.unanswered;
      add_violation(invariant::exactly_one_answer, "request " + std::to_string(id) + " (sent at " + std::to_string(record.sent_us / 1000) +
                                                       " ms, deadline " + std::to_string(record.deadline_us / 1000) + " ms) got no answer");
      continue;
    }
    if (record.answers > 1) {
      ++report.answered_twice;
      add_violation(invariant::exactly_one_answer, "request " + std::to_string(id) + " got " + std::to_string(record.answers) + " answers");
    }
    const auto& first = record.first;
    if (first.answered_us > first.deadline_us + grace_us + 1000) {
      add_violation(invariant::answers_in_time, "request " + std::to_string(id) + " answered at " + std::to_string(first.answered_us / 1000) +
                                                     " ms, past its deadline " + std::to_string(first.deadline_us / 1000) + " ms and the grace");
    }
    const auto second = std::min<std::size_t>(std::size_t(first.answered_us / 1'000'000), seconds - 1);
    if (first.error == 0) {
      ++report.answered_ok;
      ++report.timeline[second].ok;
      right[second] += record.right;
      latencies[second].push_back(double(first.answered_us - first.sent_us) / 1000.0);
      report.timeline[second].version = std::max(report.timeline[second].version, first.model_version);
    } else {
      ++report.answered_error;
      ++report.timeline[second].errors;
      ++errors_by_code[first.error];
    }
  }
  for (std::size_t second = 0; second < seconds; ++second) {
    auto& values = latencies[second];
    if (!values.empty()) {
      std::sort(values.begin(), values.end());
      report.timeline[second].p99_ms = values[std::min(values.size() - 1, std::size_t(double(values.size()) * 0.99))];
    }
    if (report.timeline[second].ok > 0) report.timeline[second].accuracy = double(right[second]) / report.timeline[second].ok;
    const std::int64_t from = std::int64_t(second) * 1'000'000, to = from + 1'000'000;
    for (const auto& [start, end] : fault_windows_) {
      if (start < to && end >= from) report.timeline[second].faulted = true;
    }
  }
  // Liveness once faults end: a second whose answers succeed again, soon enough.
  if (wanted(invariant::recovery) && !plan_.clients.empty()) {
    const auto recover_by = last_fault_end_us_ + std::chrono::duration_cast<std::chrono::microseconds>(plan_.recovery_within).count();
    if (recover_by + 1'000'000 <= clients_stop_us_) {
      bool recovered = false;
      for (std::size_t second = std::size_t(last_fault_end_us_ / 1'000'000) + 1; second < seconds && std::int64_t(second) * 1'000'000 < recover_by; ++second) {
        const auto& each = report.timeline[second];
        const auto total = each.ok + each.errors;
        if (total > 0 && double(each.ok) / total >= plan_.recovery_success && each.accuracy >= plan_.recovery_accuracy) {
          recovered = true;
          break;
        }
      }
      if (!recovered) {
        add_violation(invariant::recovery, "predictions did not succeed again (" + std::to_string(int(plan_.recovery_success * 100)) + "% in a second" +
                                               (plan_.recovery_accuracy > 0 ? ", " + std::to_string(int(plan_.recovery_accuracy * 100)) + "% of them right" : std::string()) +
                                               ") within " + std::to_string(plan_.recovery_within.count()) +
                                               " ms of the last fault's end at " + std::to_string(last_fault_end_us_ / 1000) + " ms",
                      recover_by);
      }
    }
  }
  for (std::size_t second = 0; second < seconds; ++second) {
    const auto& each = report.timeline[second];
    char line[160];
    std::snprintf(line, sizeof line, "second %zu: %u ok, %u errors, p99 %.2f ms, version %llu, accuracy %.3f%s", second, each.ok, each.errors,
                  each.p99_ms, (unsigned long long)each.version, each.accuracy, each.faulted ? ", faulted" : "");
    trace_ += line;
    trace_ += "\n";
  }
  std::string errors;
  for (const auto& [code, count] : errors_by_code) errors += " " + std::string(rml::to_string(errc(code))) + "=" + std::to_string(count);
  trace_ += "requests " + std::to_string(report.requests) + ": " + std::to_string(report.answered_ok) + " ok, " + std::to_string(report.answered_error) +
            " errors" + (errors.empty() ? "" : " (" + errors.substr(1) + ")") + ", " + std::to_string(report.unanswered) + " unanswered, " +
            std::to_string(report.answered_twice) + " answered twice; messages dropped by the network " + std::to_string(dropped_) + "\n";
  report.trace = trace_;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", (unsigned long long)XXH64(trace_.data(), trace_.size(), 0));
  report.trace_hash = hash;
  report.violations = violations_;
  report.events = events_;
}

}  // namespace

std::shared_ptr<data::dataset> synthetic_stream(const data_spec& spec, std::uint64_t seed) {
  std::mt19937_64 random(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(std::size_t(spec.classes) * spec.features);
  for (auto& value : centres) value = 3.0f * normal(random);
  auto out = std::make_shared<data::dataset>();
  out->features = tensor::zeros({std::int64_t(spec.rows), std::int64_t(spec.features)});
  float* values = out->features.data();
  out->labels.resize(spec.rows);
  for (std::uint32_t row = 0; row < spec.rows; ++row) {
    const auto label = std::int32_t(random() % spec.classes);
    out->labels[row] = label;
    for (std::uint32_t feature = 0; feature < spec.features; ++feature) {
      values[std::size_t(row) * spec.features + feature] = centres[std::size_t(label) * spec.features + feature] + float(spec.noise) * normal(random);
    }
  }
  out->classes = std::int32_t(spec.classes);
  out->source = "synthetic blobs (" + std::to_string(spec.rows) + " rows, " + std::to_string(spec.features) + " features, " +
                std::to_string(spec.classes) + " classes)";
  return out;
}

result<run_report> run_scenario(const scenario& plan, const world_options& options) {
  if (!options.components.train) return error(errc::invalid_argument, "the simulation has no data for its source");
  if (auto valid = topologies::validate(options.components); !valid) return valid.error();
  world simulated(plan, options);
  return simulated.run();
}

}  // namespace rml::sim
