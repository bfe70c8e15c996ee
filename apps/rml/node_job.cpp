#include "apps/rml/node_job.hpp"

#include <caf/all.hpp>

#include <cstdio>
#include <filesystem>

#include "actors/serving/router.hpp"
#include "messaging/atoms.hpp"
#include "topologies/peer_directory.hpp"

namespace rml::app {
namespace {

/// The name each component kind registers under (messaging/atoms.hpp).
const std::map<std::string, caf::atom_value>& kind_names() {
  static const std::map<std::string, caf::atom_value> names{
      {"source", messaging::names::source},   {"ingest", messaging::names::ingest},     {"feature", messaging::names::feature},
      {"trainer", messaging::names::trainer}, {"registry", messaging::names::registry}, {"serving", messaging::names::serving},
      {"monitor", messaging::names::monitor},
  };
  return names;
}

std::string joined(const std::set<std::string>& kinds) {
  std::string text;
  for (const auto& kind : kinds) text += (text.empty() ? "" : ", ") + kind;
  return text.empty() ? "nothing" : text;
}

}  // namespace

node_job::node_job(caf::actor_system& system, node_local_settings settings) : system_(system), settings_(std::move(settings)) {
  topologies::peer_resolver_options options;
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
  std::map<std::string, std::string> kind_of;
  for (const auto& component : declared->components) kind_of[component.name] = component.kind;
  std::set<std::string> here;
  std::map<std::string, std::string> elsewhere;  // kind → addresses of the nodes running it, comma-separated
  for (const auto& placed : deployed->plan.replicas) {
    const auto kind = kind_of.find(placed.component);
    if (kind == kind_of.end()) continue;
    if (placed.node == settings_.name) {
      here.insert(kind->second);
    } else if (auto address = addresses.find(placed.node); address != addresses.end()) {
      // A kind on several nodes (serving replicas): each is a candidate, the first in the
      // plan preferred; the resolver moves to another when one is lost.
      auto& candidates = elsewhere[kind->second];
      if (("," + candidates + ",").find("," + address->second + ",") == std::string::npos) {
        candidates += (candidates.empty() ? "" : ",") + address->second;
      }
    }
  }
  for (const auto& kind : here) elsewhere.erase(kind);
  // The resolver first: a component started below finds its peers as soon as it looks.
  point_resolver(elsewhere);
  if (deployed->topology_text == running_topology_ && here == running_kinds_) return;
  const std::string key = deployed->topology_text + "\n" + joined(here);
  if (key == failed_key_) return;
  stop();
  if (here.empty()) {
    std::fprintf(stderr, "rml node %s: topology %s places nothing here\n", settings_.name.c_str(), declared->name.c_str());
    running_topology_ = deployed->topology_text;
    return;
  }
  start(*deployed, here);
  if (running_topology_.empty()) failed_key_ = key;
}

void node_job::point_resolver(const std::map<std::string, std::string>& remote_addresses) {
  for (const auto& [kind, name] : kind_names()) {
    auto address = remote_addresses.find(kind);
    if (address == remote_addresses.end()) caf::anon_send(resolver_, caf::delete_atom::value, name);
    else caf::anon_send(resolver_, caf::put_atom::value, name, address->second);
  }
}

void node_job::start(const control::deployment& deployed, const std::set<std::string>& kinds) {
  const auto& name = settings_.name;
  auto fail = [&](const std::string& why) { std::fprintf(stderr, "rml node %s: cannot start %s: %s\n", name.c_str(), joined(kinds).c_str(), why.c_str()); };
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
  for (const auto& component : declared->components) {
    if (component.kind == "serving") options->replicas = 1, options->replicas_max = 0;  // per node: one router, its pool
  }
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
  pipeline->local_kinds = kinds;
  auto started = topologies::start_pipeline(system_, *pipeline);
  if (!started) return fail(started.error().message());
  supervisor_ = started->supervisor;
  running_kinds_ = kinds;
  auto sockets = start_endpoints(system_, *options, *pipeline, true);
  if (!sockets) {
    stop();
    return fail(sockets.error().message());
  }
  sockets_ = std::move(sockets.value());
  drain_timeout_ms_ = options->drain_timeout_ms;
  running_topology_ = deployed.topology_text;
  running_kinds_ = kinds;
  failed_key_.clear();
  std::fprintf(stderr, "rml node %s: runs %s of topology %s, state in %s; %s\n", name.c_str(), joined(kinds).c_str(), declared->name.c_str(),
               options->data_dir.c_str(), sockets_->describe(*options).c_str());
}

void node_job::stop() {
  const auto ran = running_kinds_;
  running_topology_.clear();
  running_kinds_.clear();
  if (!supervisor_ && !sockets_) return;
  caf::scoped_actor self{system_};
  // Drain serving here first: admitted requests are answered before the components stop.
  auto router = system_.registry().get<actors::router_actor>(messaging::names::serving);
  if (router && router.node() == system_.node()) {
    self->request(router, std::chrono::milliseconds(drain_timeout_ms_ + 1000), messaging::drain_atom::value, drain_timeout_ms_)
        .receive([](std::uint64_t) {}, [](caf::error&) {});
  }
  if (sockets_) sockets_->stop();
  sockets_.reset();
  if (supervisor_) {
    self->monitor(supervisor_);
    self->send_exit(supervisor_, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {}, caf::after(std::chrono::seconds(10)) >> [] {});
  }
  supervisor_ = nullptr;
  // The stopped components' names leave the registry (CAF keeps a dead actor's entry).
  for (const auto& kind : ran) {
    const auto name = kind_names().at(kind);
    auto entered = system_.registry().get(name);
    if (entered && entered->node() == system_.node()) system_.registry().erase(name);
  }
}

}  // namespace rml::app
