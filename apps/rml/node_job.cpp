#include "apps/rml/node_job.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <filesystem>
#include <vector>

#include "actors/serving/router.hpp"
#include "messaging/atoms.hpp"
#include "topologies/peer_directory.hpp"

namespace rml::app {
namespace {

std::string joined(const std::set<std::string>& kinds) {
  std::string text;
  for (const auto& kind : kinds) text += (text.empty() ? "" : ", ") + kind;
  return text.empty() ? "nothing" : text;
}

}  // namespace

node_job::node_job(caf::actor_system& system, node_local_settings settings) : system_(system), settings_(std::move(settings)) {
  topologies::peer_resolver_options options;
  options.tls = settings_.tls;
  const std::string name = settings_.name;
  // Serving here learns of models from a registry there: subscribe it whenever the registry
  // is found anew (a restarted registry keeps no subscribers).
  options.resolved = [name](caf::actor_system& system, caf::atom_value peer, const std::string& address, const caf::actor& remote) {
    std::fprintf(stderr, "rml node %s: found %s on %s\n", name.c_str(), caf::to_string(peer).c_str(), address.c_str());
    if (peer != messaging::names::registry) return;
    auto serving = system.registry().get<caf::actor>(messaging::names::serving);
    if (serving && serving.node() == system.node()) caf::anon_send(remote, messaging::subscribe_atom::value, serving);
  };
  options.failed = [name](caf::atom_value peer, const std::string& address, const std::string& why) {
    std::fprintf(stderr, "rml node %s: cannot reach %s on %s yet: %s (trying again)\n", name.c_str(), caf::to_string(peer).c_str(),
                 address.c_str(), why.c_str());
  };
  resolver_ = topologies::spawn_peer_resolver(system_, options);
  version_watcher_ = system_.spawn([highest = highest_published_](caf::event_based_actor*) -> caf::behavior {
    auto seen = [highest](std::uint64_t version) {
      auto now = highest->load();
      while (version > now && !highest->compare_exchange_weak(now, version)) {
      }
    };
    return {[seen](const messaging::model_snapshot& snapshot) { seen(snapshot.version); },
            [seen](messaging::rollback_atom, const messaging::model_snapshot& snapshot) { seen(snapshot.version); }};
  });
  worker_ = std::thread([this] { work(); });
}

node_job::~node_job() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
  }
  wake_.notify_all();
  worker_.join();
  stop();
  caf::anon_send_exit(resolver_, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(version_watcher_, caf::exit_reason::user_shutdown);
}

std::pair<std::string, std::uint64_t> node_job::watch_model_versions() {
  auto registry = system_.registry().get<caf::actor>(messaging::names::registry);
  if (registry && registry.address() != watched_registry_) {
    // A new registry (started here, restarted, or found on another node): it keeps no
    // subscribers across a restart, so subscribe again.
    watched_registry_ = registry.address();
    caf::anon_send(registry, messaging::subscribe_atom::value, version_watcher_);
  }
  std::lock_guard lock(mutex_);
  return {model_name_, highest_published_->load()};
}

void node_job::follow_model_pointer(std::uint64_t version) {
  if (version == 0) return;
  if (version > model_pointer_->load()) model_pointer_->store(version);
  auto serving = system_.registry().get<caf::actor>(messaging::names::serving);
  // Only serving in this process: another node's follows the pointer itself.
  if (serving && serving.node() == system_.node()) caf::anon_send(serving, messaging::model_pointer_atom::value, version);
}

void node_job::post(std::optional<control::deployment> deployed, std::vector<control::member> members) {
  {
    std::lock_guard lock(mutex_);
    pending_ = posted{std::move(deployed), std::move(members)};
    stop_wanted_ = false;
  }
  wake_.notify_all();
}

void node_job::stop_now() {
  std::unique_lock lock(mutex_);
  pending_.reset();
  stop_wanted_ = true;
  stopped_ = false;
  wake_.notify_all();
  wake_.wait(lock, [&] { return stopped_ || quit_; });
}

void node_job::work() {
  std::unique_lock lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return quit_ || pending_ || stop_wanted_; });
    if (quit_) return;
    if (stop_wanted_) {
      stop_wanted_ = false;
      lock.unlock();
      stop();
      point_resolver({});
      lock.lock();
      stopped_ = true;
      wake_.notify_all();
      continue;
    }
    auto next = std::move(*pending_);
    pending_.reset();
    lock.unlock();
    follow(next.deployed, next.members);
    lock.lock();
  }
}

void node_job::follow(const std::optional<control::deployment>& deployed, const std::vector<control::member>& members) {
  std::map<std::string, std::string> addresses;  // member name → BASP address
  for (const auto& each : members) addresses[each.info.name] = each.info.address;
  if (!deployed) {
    if (!running_topology_.empty()) std::fprintf(stderr, "rml node %s: nothing deployed: stopping %s\n", settings_.name.c_str(), joined(running_kinds_).c_str());
    stop();
    point_resolver({});
    return;
  }
  auto declared = topologies::parse_topology(deployed->topology_text, "the deployed topology");
  if (!declared) {
    std::fprintf(stderr, "rml node %s: the deployed topology is unreadable: %s\n", settings_.name.c_str(), declared.error().message().c_str());
    return;
  }
  std::set<std::string> alive;
  for (const auto& each : members) alive.insert(each.info.name);
  const auto assigned = control::assignment_of(*declared, deployed->plan, alive, settings_.name);
  const auto& here = assigned.here;
  std::map<std::string, std::string> elsewhere;  // kind → the candidates' addresses, comma-separated, preferred first
  for (const auto& [kind, nodes] : assigned.elsewhere) {
    for (const auto& node : nodes) elsewhere[kind] += (elsewhere[kind].empty() ? "" : ",") + addresses.at(node);
  }
  // The resolver first: a component started below finds its peers as soon as it looks.
  point_resolver(elsewhere);
  export_cluster_view(*deployed, members);
  if (deployed->topology_text == running_topology_ && here == running_kinds_) return;
  const std::string key = deployed->topology_text + "\n" + joined(here);
  if (key == failed_key_) return;
  if (deployed->topology_text != running_topology_) {
    // Another topology: its options may differ in anything; everything here starts anew.
    stop();
    if (!prepare(*deployed)) {
      failed_key_ = key;
      return;
    }
  }
  if (here.empty()) std::fprintf(stderr, "rml node %s: topology %s places nothing here\n", settings_.name.c_str(), declared->name.c_str());
  if (!run_groups(here)) failed_key_ = key;
  export_cluster_view(*deployed, members);
}

void node_job::export_cluster_view(const control::deployment& deployed, const std::vector<control::member>& members) {
  if (!metrics_) return;  // nothing prepared yet: no endpoint serves the series
  // 1 for what is now, 0 for what was and is no more: the registry keeps every series.
  std::set<std::vector<std::pair<std::string, std::string>>> members_now, replicas_now;
  for (const auto& each : members) members_now.insert({{"node", each.info.name}, {"address", each.info.address}});
  for (const auto& placed : deployed.plan.replicas) {
    replicas_now.insert({{"component", placed.component}, {"replica", std::to_string(placed.replica)}, {"node", placed.node}});
  }
  auto publish = [&](const char* name, const char* help, auto& exported, const auto& now) {
    for (const auto& labels : exported) {
      if (!now.count(labels)) metrics_->get_gauge(name, help, labels).set(0);
    }
    for (const auto& labels : now) metrics_->get_gauge(name, help, labels).set(1);
    exported = now;
  };
  publish("rml_cluster_member", "1 for each member of the cluster as this node last saw it (0: a member gone)", exported_members_, members_now);
  publish("rml_cluster_replica", "1 for each replica the deployed placement puts on a node (0: moved or removed)", exported_replicas_, replicas_now);
}

bool node_job::prepare(const control::deployment& deployed) {
  const auto& name = settings_.name;
  auto fail = [&](const std::string& why) {
    std::fprintf(stderr, "rml node %s: cannot run the deployed topology: %s\n", name.c_str(), why.c_str());
    return false;
  };
  auto declared = topologies::parse_topology(deployed.topology_text, "the deployed topology");
  if (!declared) return fail(declared.error().message());
  auto options = run_options_of(*declared);
  if (!options) return fail(options.error().message());
  // The host's own: where state lives, where data is read from, what is listened on.
  options->data_dir = settings_.data_dir;
  if (!settings_.dataset_dir.empty()) options->dataset_dir = settings_.dataset_dir;
  options->bind_host = settings_.bind_host;
  options->http_port = settings_.http_port;
  options->predict_port = settings_.predict_port;
  options->ingest_port = settings_.ingest_port;
  options->replicas = 1, options->replicas_max = 0;  // per node: one router, its pool
  const std::string datasets_key = options->dataset_dir + "\n" + options->train_csv + "\n" + options->test_csv + "\n" + options->label_column;
  if (datasets_key != datasets_key_ || !train_) {
    auto loaded = load_datasets(*options);
    if (!loaded) return fail(loaded.error().message());
    classes_ = std::max(loaded->train.classes, loaded->test.classes);
    train_ = std::make_shared<const data::dataset>(std::move(loaded->train));
    datasets_key_ = datasets_key;
  }
  std::error_code made;
  std::filesystem::create_directories(options->data_dir, made);
  if (made) return fail(options->data_dir + ": cannot create: " + made.message());
  auto pipeline = make_pipeline(*options, train_, classes_);
  if (!pipeline) return fail(pipeline.error().message());
  // Serving that scales across nodes: its lanes look at their load even with one replica
  // here, for this node's load reports.
  std::string scaling_serving;
  for (const auto& component : declared->components) {
    if (component.kind == "serving" && component.replicas_max > component.replicas_min) scaling_serving = component.name;
  }
  if (!scaling_serving.empty()) pipeline->serving.lane.pool.report_load = true;
  // A version is the latest once the cluster's model pointer says so (etcd, not a registry
  // that may be cut off with this node).
  pipeline->serving.follow_model_pointer = true;
  pipeline->serving.known_model_pointer = model_pointer_;
  auto sockets = start_endpoints(system_, *options, *pipeline, settings_.identity);
  if (!sockets) return fail(sockets.error().message());
  sockets_ = std::move(sockets.value());
  options_ = std::move(options.value());
  pipeline_ = std::move(pipeline.value());
  topology_name_ = declared->name;
  {
    std::lock_guard lock(mutex_);
    model_name_ = pipeline_->serving.model;
    scaling_serving_ = scaling_serving;
    metrics_ = pipeline_->telemetry.metrics;
    last_load_.reset();
  }
  running_topology_ = deployed.topology_text;
  drain_timeout_ms_ = options_->drain_timeout_ms;
  std::fprintf(stderr, "rml node %s: serves topology %s, state in %s; %s\n", name.c_str(), topology_name_.c_str(), options_->data_dir.c_str(),
               sockets_->describe(*options_).c_str());
  return true;
}

bool node_job::run_groups(const std::set<std::string>& kinds) {
  std::map<std::string, std::set<std::string>> wanted;
  for (const auto& kind : kinds) wanted[topologies::process_group(kind)].insert(kind);
  // Groups that go or change stop first (serving drains), then the new ones start.
  for (auto group = groups_.begin(); group != groups_.end();) {
    auto want = wanted.find(group->first);
    if (want != wanted.end() && want->second == group->second.kinds) {
      ++group;
      continue;
    }
    stop_group(group->second);
    group = groups_.erase(group);
  }
  bool all_started = true;
  for (const auto& [group, group_kinds] : wanted) {
    if (groups_.contains(group)) continue;
    auto pipeline = *pipeline_;
    pipeline.local_kinds = group_kinds;
    auto started = topologies::start_pipeline(system_, pipeline);
    if (!started) {
      std::fprintf(stderr, "rml node %s: cannot start %s: %s\n", settings_.name.c_str(), joined(group_kinds).c_str(),
                   started.error().message().c_str());
      all_started = false;
      continue;
    }
    groups_[group] = running_group{started->supervisor, group_kinds};
  }
  running_kinds_.clear();
  for (const auto& [group, running] : groups_) running_kinds_.insert(running.kinds.begin(), running.kinds.end());
  {
    std::lock_guard lock(mutex_);
    if (serving_runs_ != running_kinds_.contains("serving")) last_load_.reset();
    serving_runs_ = running_kinds_.contains("serving");
  }
  if (!running_kinds_.empty()) {
    std::fprintf(stderr, "rml node %s: runs %s of topology %s\n", settings_.name.c_str(), joined(running_kinds_).c_str(), topology_name_.c_str());
  }
  if (all_started) failed_key_.clear();
  return all_started;
}

void node_job::stop_group(running_group& group) {
  caf::scoped_actor self{system_};
  if (group.kinds.contains("serving")) {
    // Drain serving here first: admitted requests are answered before it stops.
    auto router = system_.registry().get<actors::router_actor>(messaging::names::serving);
    if (router && router.node() == system_.node()) {
      self->request(router, std::chrono::milliseconds(drain_timeout_ms_ + 1000), messaging::drain_atom::value, drain_timeout_ms_)
          .receive([](std::uint64_t) {}, [](caf::error&) {});
    }
  }
  if (group.supervisor) {
    self->monitor(group.supervisor);
    self->send_exit(group.supervisor, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  }
  // The stopped components' names leave the registry (CAF keeps a dead actor's entry).
  for (const auto& kind : group.kinds) {
    const auto name = topologies::component_names().at(kind);
    auto entered = system_.registry().get(name);
    if (entered && entered->node() == system_.node()) system_.registry().erase(name);
  }
}

void node_job::point_resolver(const std::map<std::string, std::string>& remote_addresses) {
  for (const auto& [kind, name] : topologies::component_names()) {
    auto address = remote_addresses.find(kind);
    if (address == remote_addresses.end()) caf::anon_send(resolver_, caf::delete_atom::value, name);
    else caf::anon_send(resolver_, caf::put_atom::value, name, address->second);
  }
}

void node_job::stop() {
  // Serving first (it drains while the rest still answers), then the others.
  if (auto serving = groups_.find("serving"); serving != groups_.end()) {
    stop_group(serving->second);
    groups_.erase(serving);
  }
  for (auto& [group, running] : groups_) stop_group(running);
  groups_.clear();
  if (sockets_) sockets_->stop();
  sockets_.reset();
  running_topology_.clear();
  running_kinds_.clear();
  std::lock_guard lock(mutex_);
  serving_runs_ = false;
  scaling_serving_.clear();
  last_load_.reset();
}

std::vector<std::pair<std::string, control::load_report>> node_job::scaling_load() {
  std::lock_guard lock(mutex_);
  if (!serving_runs_ || scaling_serving_.empty() || !metrics_) return {};
  const auto lane = actors::read_lane_load(*metrics_, model_name_);
  const load_reading now{lane.looks, lane.backlog_looks, lane.busy_seconds, std::chrono::steady_clock::now()};
  control::load_report report;
  report.replicas = lane.replicas;
  if (last_load_ && now.looks >= last_load_->looks) {
    const double seconds = std::chrono::duration<double>(now.at - last_load_->at).count();
    report.looks = std::uint64_t(now.looks - last_load_->looks);
    if (report.looks > 0) report.backlog_share = (now.backlog_looks - last_load_->backlog_looks) / double(report.looks);
    if (seconds > 0) report.busy = std::max(0.0, now.busy_seconds - last_load_->busy_seconds) / seconds;
  }
  last_load_ = now;
  return {{scaling_serving_, report}};
}

}  // namespace rml::app
