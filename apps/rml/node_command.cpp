// `rml node`: a process that joins a cluster. It opens its actor system to other nodes (CAF's
// BASP on --listen, heartbeats on) and holds its membership in etcd (topologies/
// membership.hpp): a lease renewed every third of its TTL and a member key under it with its
// address, cores, GPUs and labels. A node that cannot renew stops counting itself a member
// before its lease can have expired, and joins again (a new incarnation) when etcd answers.
// SIGTERM or SIGINT: it leaves (revokes its lease, so the cluster sees it go at once).
//
// Every node is a candidate placement controller (topologies/placement_controller.hpp);
// the one that leads places what `rml deploy` asked for on each renewal tick. Every node
// follows the placement (apps/rml/node_job.hpp): it runs the components placed on it and
// finds the others on their nodes over BASP, through the directory it publishes on --listen.
//
// `rml status`: the cluster as etcd knows it — controller, members (addresses,
// incarnations, labels) and where each replica is placed. `rml deploy FILE`, `rml scale
// COMPONENT N`, `rml undeploy`: requests the controller acts on.

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "apps/rml/commands.hpp"
#include "apps/rml/node_job.hpp"
#include "apps/rml/stop_signal.hpp"
#include "compute/device_choice.hpp"
#include "messaging/errors.hpp"
#include "topologies/peer_directory.hpp"
#include "topologies/desired_state.hpp"
#include "topologies/etcd_control_plane.hpp"
#include "topologies/membership.hpp"
#include "topologies/placement_controller.hpp"

namespace rml::app {
namespace {

using namespace std::chrono_literals;


/// How every cluster command reaches etcd, and which cluster it means.
struct cluster_access {
  std::string etcd = "http://127.0.0.1:2379";
  std::string ca, cert, key;
  std::string cluster = "rml";
};

/// --etcd, its TLS files and --cluster, the same on every cluster command.
void add_cluster_access(CLI::App* command, cluster_access& access) {
  command->add_option("--etcd", access.etcd, "etcd's client URLs, comma-separated (https:// for TLS)")->capture_default_str();
  command->add_option("--etcd-ca", access.ca, "For https:// etcd: the CA its certificate must chain to (default: the system's)")
      ->check(CLI::ExistingFile);
  command->add_option("--etcd-cert", access.cert, "For https:// etcd: this client's certificate (PEM), for --client-cert-auth")
      ->check(CLI::ExistingFile);
  command->add_option("--etcd-key", access.key, "For https:// etcd: this client's private key (PEM)")->check(CLI::ExistingFile);
  command->add_option("--cluster", access.cluster, "The cluster's name (its key prefix in etcd)")->capture_default_str();
}

struct node_options {
  cluster_access access;
  std::string name;
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> labels;
  std::uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  std::uint32_t gpus = 0;
  double lease_seconds = 3;
  /// Where the components placed here keep state and listen (empty data_dir: rml-node-NAME).
  node_local_settings local;
  /// Node-to-node TLS (mutual): this node's certificate and key, the cluster's CA.
  std::string tls_cert, tls_key, tls_ca;
  /// Plain TCP on an address other than loopback (refused without it).
  bool insecure = false;
};

bool is_loopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}



std::chrono::milliseconds since_start() {
  static const auto start = std::chrono::steady_clock::now();
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
}

result<std::unique_ptr<control::etcd_control_plane>> connect_etcd(const cluster_access& access, std::chrono::milliseconds timeout = 2s) {
  auto endpoints = control::parse_etcd_endpoints(access.etcd);
  if (!endpoints) return error(errc::invalid_argument, "--etcd: " + endpoints.error().message());
  control::etcd_options options;
  options.endpoints = endpoints.value();
  options.ca_file = access.ca;
  options.cert_file = access.cert;
  options.key_file = access.key;
  options.request_timeout = timeout;
  return control::etcd_control_plane::connect(options);
}

/// The placement requests' one way in: etcd reached (or why not, said as `command`), the
/// controller's keys of `access.cluster`, then `act`; the exit status is act's, or 1.
template <class Act>
int with_placement(const cluster_access& access, const char* command, Act act) {
  auto plane = connect_etcd(access);
  if (!plane) {
    std::fprintf(stderr, "%s: cannot reach etcd: %s\n", command, plane.error().message().c_str());
    return 1;
  }
  control::placement_controller placement(**plane, access.cluster);
  return act(placement);
}

result<std::pair<std::string, std::uint16_t>> parse_listen(const std::string& text) {
  const auto colon = text.rfind(':');
  const std::string port = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoul(port) > 65535) {
    return error(errc::invalid_argument, "--listen '" + text + "': expected HOST:PORT (PORT 0 lets the system pick)");
  }
  return std::pair<std::string, std::uint16_t>{text.substr(0, colon), std::uint16_t(std::stoul(port))};
}

result<std::map<std::string, std::string>> parse_labels(const std::vector<std::string>& items) {
  std::map<std::string, std::string> labels;
  for (const auto& item : items) {
    const auto equals = item.find('=');
    if (equals == std::string::npos || equals == 0) return error(errc::invalid_argument, "--labels '" + item + "': expected KEY=VALUE");
    const std::string key = item.substr(0, equals), value = item.substr(equals + 1);
    // The member record separates labels with ',' and ':' and fields with ';' and '='.
    if (key.find_first_of(",:;=") != std::string::npos || value.find_first_of(",:;=") != std::string::npos) {
      return error(errc::invalid_argument, "--labels '" + item + "': keys and values may not contain , : ; or =");
    }
    labels[key] = value;
  }
  return labels;
}

/// Sleeps up to `duration`, waking early on a stop signal.
void nap(std::chrono::milliseconds duration) {
  const auto until = std::chrono::steady_clock::now() + duration;
  while (!stop_requested() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(20ms);
}

/// The controller's turn on each tick: places what was deployed when this node leads, and
/// says when it starts or stops leading and what it placed.
void reconcile_if_leading(control::placement_controller& placement, const control::key_value& candidate, const std::string& name,
                          bool& leading) {
  auto leads = placement.controllers().is_leader(candidate);
  if (!leads) return;  // etcd away: the renewal says so
  if (*leads != leading) {
    leading = *leads;
    std::fprintf(stderr, "rml node %s: %s the placement controller (epoch %lld)\n", name.c_str(), leading ? "is" : "is no longer",
                 (long long)candidate.create_revision);
  }
  if (!leading) return;
  auto wrote = placement.reconcile(candidate);
  if (!wrote) {
    std::fprintf(stderr, "rml node %s: placement: %s\n", name.c_str(), wrote.error().message().c_str());
    return;
  }
  if (!*wrote) return;
  auto shown = placement.view();
  if (!shown) return;
  if (shown->topology_name.empty()) {
    std::fprintf(stderr, "rml node %s: nothing deployed: desired state cleared\n", name.c_str());
  } else if (!shown->error.empty()) {
    std::fprintf(stderr, "rml node %s: placed topology %s: %zu replicas; not placed: %s\n", name.c_str(), shown->topology_name.c_str(),
                 shown->replicas.size(), shown->error.c_str());
  } else {
    std::fprintf(stderr, "rml node %s: placed topology %s: %zu replicas\n", name.c_str(), shown->topology_name.c_str(), shown->replicas.size());
  }
}

int run_node(const node_options& options) {
  if (options.name.empty() || options.name.find_first_of("/;=,: ") != std::string::npos) {
    std::fprintf(stderr, "rml node: --name '%s' must be non-empty, without / ; = , : or spaces\n", options.name.c_str());
    return 2;
  }
  if (!(options.lease_seconds >= 1 && options.lease_seconds <= 3600)) {
    std::fprintf(stderr, "rml node: --lease-ttl %g: must be in [1, 3600] seconds\n", options.lease_seconds);
    return 2;
  }
  auto listen = parse_listen(options.listen);
  if (!listen) {
    std::fprintf(stderr, "rml node: %s\n", listen.error().message().c_str());
    return 2;
  }
  auto labels = parse_labels(options.labels);
  if (!labels) {
    std::fprintf(stderr, "rml node: %s\n", labels.error().message().c_str());
    return 2;
  }
  const bool tls = !options.tls_cert.empty() || !options.tls_key.empty() || !options.tls_ca.empty();
  if (tls && (options.tls_cert.empty() || options.tls_key.empty() || options.tls_ca.empty())) {
    std::fprintf(stderr, "rml node: node-to-node TLS needs all of --tls-cert, --tls-key and --tls-ca\n");
    return 2;
  }
  if (!tls && !options.insecure && !is_loopback(listen->first)) {
    std::fprintf(stderr, "rml node: --listen %s: other nodes would reach this one's actors in the clear; give --tls-cert, --tls-key and "
                         "--tls-ca (mutual TLS), or --insecure-plain-tcp on a network you trust\n", options.listen.c_str());
    return 2;
  }
  const auto ttl = std::chrono::milliseconds(std::int64_t(options.lease_seconds * 1000));
  // A renewal must fail (or succeed) well inside the lease: a third of it at most.
  auto plane = connect_etcd(options.access, std::clamp<std::chrono::milliseconds>(ttl / 3, 200ms, 2s));
  if (!plane) {
    std::fprintf(stderr, "rml node: cannot reach etcd: %s\n", plane.error().message().c_str());
    return 1;
  }

  // Other nodes reach this one's actors over BASP. CAF 0.17 has its heartbeats off by
  // default: on here, so a silent peer is noticed (etcd, not BASP, decides who is a member).
  caf::actor_system_config config;
  config.load<caf::io::middleman>();
  if (tls) {
    // BASP over TLS; a peer must present a certificate the CA signed, both ways.
    config.load<caf::openssl::manager>();
    config.openssl_certificate = options.tls_cert;
    config.openssl_key = options.tls_key;
    config.openssl_cafile = options.tls_ca;
  }
  config.set("middleman.heartbeat-interval", caf::timespan{1s});
  config.set("middleman.connection-timeout", caf::timespan{5s});
  config.set("logger.verbosity", caf::atom("quiet"));
  config.set("scheduler.max-threads", available_cores());
  config.set("work-stealing.moderate-poll-attempts", 1);  // as rml run (run_command.cpp says why)
  messaging::register_messaging(config);  // rml's messages cross nodes
  caf::actor_system system{config};
  const auto& [host, port] = listen.value();
  // Other nodes connect here and ask this directory for the components that run here.
  auto directory = topologies::spawn_node_directory(system);
  caf::actor sweeper;
  if (tls) sweeper = topologies::spawn_tls_error_queue_sweeper(system, std::chrono::milliseconds(5), options.name);
  auto opened = topologies::publish_node_directory(directory, port, host, tls);
  if (!opened) {
    std::fprintf(stderr, "rml node: --listen %s: cannot listen: %s\n", options.listen.c_str(), system.render(opened.error()).c_str());
    caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
    if (sweeper) caf::anon_send_exit(sweeper, caf::exit_reason::user_shutdown);
    return 1;
  }
  control::member_info self{options.name, host + ":" + std::to_string(*opened), options.cores, options.gpus, labels.value()};

  stop_on_signals();
  control::membership members(**plane, options.access.cluster);
  control::placement_controller placement(**plane, options.access.cluster);
  node_local_settings local = options.local;
  local.name = options.name;
  local.tls = tls;
  local.identity = std::make_shared<messaging::sender_identity>();
  local.identity->node = options.name;
  if (local.data_dir.empty()) local.data_dir = "rml-node-" + options.name;
  node_job job(system, local);
  bool told_waiting = false;
  while (!stop_requested()) {
    auto joined = members.join(self, ttl, since_start());
    if (!joined) {
      // A name still held (this node restarted within its old lease) or etcd away: try again.
      if (!told_waiting) std::fprintf(stderr, "rml node %s: waiting to join: %s\n", options.name.c_str(), joined.error().message().c_str());
      told_waiting = true;
      nap(500ms);
      continue;
    }
    told_waiting = false;
    std::fprintf(stderr, "rml node %s: joined cluster %s as incarnation %lld, reachable at %s (lease %llx, TTL %g s)\n",
                 options.name.c_str(), options.access.cluster.c_str(), (long long)joined->incarnation, self.address.c_str(),
                 (unsigned long long)joined->lease, options.lease_seconds);
    // Every node is a candidate controller under its own lease; the oldest leads.
    local.identity->incarnation.store(joined->incarnation);
    auto candidate = placement.controllers().campaign(joined->lease, options.name);
    if (!candidate) std::fprintf(stderr, "rml node %s: not a controller candidate: %s\n", options.name.c_str(), candidate.error().message().c_str());
    bool leading = false;
    // A member gone or joined, or a new request, wakes the controller at once rather than at
    // its next renewal: failover then takes the lease's expiry, not that plus a tick.
    struct wake_up {
      std::mutex mutex;
      std::condition_variable signal;
      bool changed = true;
    };
    auto wake = std::make_shared<wake_up>();
    std::vector<control::watch_id> watches;
    for (const char* what : {"/members/", "/requested/", "/desired/"}) {
      auto watching = (*plane)->watch(control::key_range::prefix(options.access.cluster + what), 0, [wake](const control::watch_response&) {
        std::lock_guard lock(wake->mutex);
        wake->changed = true;
        wake->signal.notify_one();
      });
      if (watching) watches.push_back(*watching);
    }
    auto next_renewal = std::chrono::steady_clock::now() + ttl / 3;
    control::desired_state desired(**plane, options.access.cluster);
    std::uint64_t pointer_written = 0;  // the model pointer as this node last moved (or found) it
    while (!stop_requested()) {
      // The controller moves etcd's model pointer to each version the registry publishes
      // (forward only, fenced by its epoch): the cluster's one answer to "which is latest".
      const auto [model, version] = job.watch_model_versions();
      if (leading && candidate && !model.empty() && version > pointer_written) {
        if (auto moved = desired.advance_model(*candidate, model, version)) {
          pointer_written = *moved;
          job.follow_model_pointer(*moved);  // serving here need not wait for the watch
          std::fprintf(stderr, "rml node %s: model %s: version pointer at v%llu\n", options.name.c_str(), model.c_str(),
                       (unsigned long long)*moved);
        } else {
          std::fprintf(stderr, "rml node %s: model %s: %s\n", options.name.c_str(), model.c_str(), moved.error().message().c_str());
          if (moved.error().code() == errc::invalid_argument) pointer_written = version;  // it is ahead already: said once
        }
      }
      bool changed = false;
      {
        std::lock_guard lock(wake->mutex);
        std::swap(changed, wake->changed);
      }
      if (candidate && changed) reconcile_if_leading(placement, *candidate, options.name, leading);
      if (changed) {
        // The controller's epoch as this node's requests to other nodes carry it (a leader
        // change takes a member's lease with it, so the members' watch wakes this too).
        if (auto leader = placement.controllers().leader(); leader && *leader) {
          const std::int64_t epoch = (*leader)->create_revision;
          if (epoch > local.identity->epoch.load()) local.identity->epoch.store(epoch);
        }
        // Serving here takes versions up to the cluster's model pointer as the latest (a
        // pointer moved wakes this: it is under /desired/).
        if (!model.empty()) {
          if (auto pointer = desired.model_pointer(model)) job.follow_model_pointer(*pointer);
        }
        // Run what is placed here and find the rest (the job applies it on its own thread).
        auto deployed = placement.deployed();
        auto now_members = members.members();
        if (deployed && now_members) job.post(std::move(deployed.value()), std::move(now_members.value()));
        else std::fprintf(stderr, "rml node %s: cannot read desired state: %s\n", options.name.c_str(),
                          (deployed ? now_members.error() : deployed.error()).message().c_str());
      }
      {
        // Until the next renewal or a change; every 100 ms at most, to see a stop signal (a
        // signal handler cannot notify a condition variable).
        std::unique_lock lock(wake->mutex);
        wake->signal.wait_until(lock, std::min(next_renewal, std::chrono::steady_clock::now() + 100ms), [&] { return wake->changed; });
      }
      if (stop_requested()) break;
      if (std::chrono::steady_clock::now() < next_renewal) continue;  // a change, or a look at the stop flag: not time to renew yet
      next_renewal = std::chrono::steady_clock::now() + ttl / 3;
      {
        std::lock_guard lock(wake->mutex);
        wake->changed = true;  // and a pass on every renewal too: leadership may have come to this node
      }
      auto renewed = members.renew(since_start());
      if (renewed) {
        // The load of what scales here, under the lease (gone with this node), then the
        // controller's look at every node's: once per renewal, the autoscaler's unit of time.
        for (const auto& [component, load] : job.scaling_load()) {
          auto reported = (*plane)->commit({{}, {control::operation::put(control::load_key(options.access.cluster, options.name, component),
                                                                          control::encode_load(load), joined->lease)}, {}});
          if (!reported) std::fprintf(stderr, "rml node %s: cannot report %s's load: %s\n", options.name.c_str(), component.c_str(),
                                      reported.error().message().c_str());
        }
        if (leading && candidate) {
          auto decided = placement.autoscale(*candidate);
          if (!decided) {
            std::fprintf(stderr, "rml node %s: autoscaling: %s\n", options.name.c_str(), decided.error().message().c_str());
          } else {
            for (const auto& decision : *decided) {
              std::fprintf(stderr, "rml node %s: scales %s from %u to %u replicas: %s\n", options.name.c_str(), decision.component.c_str(),
                           decision.from, decision.to, decision.why.c_str());
            }
          }
        }
        continue;
      }
      std::fprintf(stderr, "rml node %s: stops serving: %s; joining again\n", options.name.c_str(), renewed.error().message().c_str());
      // Not a member: what runs here stops (its replicas are placed elsewhere by now, or
      // will be), before the lease can have expired in etcd's view.
      job.stop_now();
      break;
    }
    for (auto id : watches) (*plane)->cancel(id);
  }
  job.stop_now();
  caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);  // the actor system waits for every actor
  if (sweeper) caf::anon_send_exit(sweeper, caf::exit_reason::user_shutdown);
  if (auto left = members.leave(); !left) {
    std::fprintf(stderr, "rml node %s: leaving: %s (its lease expires by itself)\n", options.name.c_str(), left.error().message().c_str());
  } else {
    std::fprintf(stderr, "rml node %s: left cluster %s\n", options.name.c_str(), options.access.cluster.c_str());
  }
  return 0;
}

int run_status(const cluster_access& options) {
  auto plane = connect_etcd(options);
  if (!plane) {
    std::fprintf(stderr, "rml status: cannot reach etcd: %s\n", plane.error().message().c_str());
    return 1;
  }
  control::membership members(**plane, options.cluster);
  auto now = (*plane)->current_revision();
  auto listed = members.members();
  if (!now || !listed) {
    std::fprintf(stderr, "rml status: %s\n", (now ? listed.error() : now.error()).message().c_str());
    return 1;
  }
  control::placement_controller placement(**plane, options.cluster);
  auto shown = placement.view();
  if (!shown) {
    std::fprintf(stderr, "rml status: %s\n", shown.error().message().c_str());
    return 1;
  }
  std::printf("cluster %s (etcd %s, revision %lld)\n", options.cluster.c_str(), options.etcd.c_str(), (long long)now.value());
  if (shown->controller) std::printf("├─ controller: %s (epoch %lld)\n", shown->controller->c_str(), (long long)shown->controller_epoch);
  else std::printf("├─ controller: none\n");
  control::desired_state desired(**plane, options.cluster);
  if (auto pointers = desired.model_pointers(); pointers && !pointers->empty()) {
    for (const auto& [model, version] : *pointers) std::printf("├─ model %s: latest v%llu\n", model.c_str(), (unsigned long long)version);
  }
  std::printf("├─ nodes: %zu\n", listed->size());
  for (std::size_t index = 0; index < listed->size(); ++index) {
    const auto& node = listed->at(index);
    std::string labels;
    for (const auto& [key, value] : node.info.labels) labels += (labels.empty() ? "" : ",") + key + "=" + value;
    std::printf("│  %s %s  %s  incarnation %lld  cores %u  gpus %u%s%s\n", index + 1 == listed->size() ? "└─" : "├─",
                node.info.name.c_str(), node.info.address.c_str(), (long long)node.incarnation, node.info.cores, node.info.gpus,
                labels.empty() ? "" : "  labels ", labels.c_str());
  }
  if (shown->topology_name.empty()) {
    std::printf("└─ topology: none deployed\n");
    return 0;
  }
  std::printf("└─ topology %s: %zu replicas placed\n", shown->topology_name.c_str(), shown->replicas.size());
  for (const auto& scale : shown->scaling) {
    std::printf("   ├─ scaling %s: %u replicas wanted (%u..%u, chosen by %s)\n", scale.component.c_str(), scale.replicas, scale.min, scale.max,
                scale.chosen_by == "min" ? "its minimum" : scale.chosen_by == "autoscaler" ? "the autoscaler" : "rml scale");
  }
  std::map<std::string, std::string> by_node;
  for (const auto& placed : shown->replicas) by_node[placed.node] += " " + placed.component + "/" + std::to_string(placed.replica);
  std::size_t index = 0;
  for (const auto& [node, replicas] : by_node) {
    const bool member = std::any_of(listed->begin(), listed->end(), [&](const control::member& each) { return each.info.name == node; });
    std::printf("   %s %s:%s%s\n", ++index == by_node.size() && shown->error.empty() ? "└─" : "├─", node.c_str(), replicas.c_str(),
                member ? "" : "  (not a member: lost)");
  }
  if (!shown->error.empty()) std::printf("   └─ not placed: %s\n", shown->error.c_str());
  return 0;
}

int run_deploy(const cluster_access& access, const std::string& file) {
  std::ifstream in(file);
  if (!in) {
    std::fprintf(stderr, "rml deploy: %s: cannot open the topology file\n", file.c_str());
    return 2;
  }
  std::ostringstream text;
  text << in.rdbuf();
  return with_placement(access, "rml deploy", [&](control::placement_controller& placement) {
    if (auto asked = placement.request_deploy(text.str(), file); !asked) {
      std::fprintf(stderr, "rml deploy: %s\n", asked.error().message().c_str());
      return asked.error().code() == errc::io_error ? 1 : 2;
    }
    std::fprintf(stderr, "rml deploy: %s asked for; the placement controller places it (rml status shows where)\n", file.c_str());
    return 0;
  });
}

int run_undeploy(const cluster_access& access) {
  return with_placement(access, "rml undeploy", [](control::placement_controller& placement) {
    if (auto asked = placement.request_undeploy(); !asked) {
      std::fprintf(stderr, "rml undeploy: %s\n", asked.error().message().c_str());
      return 1;
    }
    std::fprintf(stderr, "rml undeploy: withdrawn; the placement controller clears it\n");
    return 0;
  });
}

int run_scale(const cluster_access& access, const std::string& component, std::uint32_t replicas) {
  return with_placement(access, "rml scale", [&](control::placement_controller& placement) {
    if (auto asked = placement.request_scale(component, replicas); !asked) {
      std::fprintf(stderr, "rml scale: %s\n", asked.error().message().c_str());
      return asked.error().code() == errc::io_error ? 1 : 2;
    }
    std::fprintf(stderr, "rml scale: %s to %u replicas asked for\n", component.c_str(), replicas);
    return 0;
  });
}

}  // namespace

void register_node_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<node_options>();
  auto* command = app.add_subcommand("node", "Join a cluster: hold a membership lease in etcd and listen for other nodes");
  command->add_option("--name", options->name, "This node's name in the cluster (unique; a restart under it is a new incarnation)")
      ->required();
  command->add_option("--listen", options->listen, "HOST:PORT other nodes reach this one's actors on (PORT 0: the system picks)")
      ->capture_default_str();
  command->add_option("--labels", options->labels, "KEY=VALUE labels placement selects nodes by (gpu=1, zone=a)")->delimiter(',');
  command->add_option("--cores", options->cores, "Cores this node offers")->capture_default_str()->check(CLI::Range(1u, 4096u));
  command->add_option("--gpus", options->gpus, "GPUs this node offers")->capture_default_str()->check(CLI::Range(0u, 64u));
  command->add_option("--data-dir", options->local.data_dir, "Durable state of the components placed here (default: rml-node-NAME)");
  command->add_option("--dataset-dir", options->local.dataset_dir, "Directory of the Fashion-MNIST IDX files (default: the topology's, or Debian's)");
  command->add_option("--bind", options->local.bind_host, "Address the prediction, event and HTTP sockets bind to")->capture_default_str();
  command->add_option("--http-port", options->local.http_port, "HTTP port of KServe V2 and /metrics (0: any free, printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--predict-port", options->local.predict_port, "ZeroMQ prediction port (0: any free, printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--ingest-port", options->local.ingest_port, "ZeroMQ event port (0: any free, printed)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--tls-cert", options->tls_cert, "Node-to-node TLS: this node's certificate (PEM), signed by --tls-ca")
      ->check(CLI::ExistingFile);
  command->add_option("--tls-key", options->tls_key, "Node-to-node TLS: this node's private key (PEM)")->check(CLI::ExistingFile);
  command->add_option("--tls-ca", options->tls_ca, "Node-to-node TLS: the CA every node's certificate must chain to")
      ->check(CLI::ExistingFile);
  command->add_flag("--insecure-plain-tcp", options->insecure, "Allow --listen on an address other than loopback without TLS");
  command->add_option("--lease-ttl", options->lease_seconds,
                      "Seconds the cluster waits before it counts a silent node gone (etcd's minimum is 2)")
      ->capture_default_str();
  add_cluster_access(command, options->access);
  command->callback([options, &exit_code] { exit_code = run_node(*options); });

  auto status = std::make_shared<cluster_access>();
  auto* status_command = app.add_subcommand("status", "Show the cluster: controller, nodes and where each replica is placed");
  add_cluster_access(status_command, *status);
  status_command->callback([status, &exit_code] { exit_code = run_status(*status); });

  auto deploy = std::make_shared<std::pair<cluster_access, std::string>>();
  auto* deploy_command = app.add_subcommand("deploy", "Ask the cluster to run a topology file (validated first)");
  deploy_command->add_option("file", deploy->second, "The topology file (docs/topologies.md)")->required();
  add_cluster_access(deploy_command, deploy->first);
  deploy_command->callback([deploy, &exit_code] { exit_code = run_deploy(deploy->first, deploy->second); });

  auto undeploy = std::make_shared<cluster_access>();
  auto* undeploy_command = app.add_subcommand("undeploy", "Withdraw the deployed topology");
  add_cluster_access(undeploy_command, *undeploy);
  undeploy_command->callback([undeploy, &exit_code] { exit_code = run_undeploy(*undeploy); });

  struct scale_options {
    cluster_access access;
    std::string component;
    std::uint32_t replicas = 1;
  };
  auto scale = std::make_shared<scale_options>();
  auto* scale_command = app.add_subcommand("scale", "Set how many replicas of a deployed component run (within its min..max)");
  scale_command->add_option("component", scale->component, "The component, by its name in the topology")->required();
  scale_command->add_option("replicas", scale->replicas, "How many replicas")->required()->check(CLI::Range(1u, 4096u));
  add_cluster_access(scale_command, scale->access);
  scale_command->callback([scale, &exit_code] { exit_code = run_scale(scale->access, scale->component, scale->replicas); });
}

}  // namespace rml::app
