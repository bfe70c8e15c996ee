#pragma once
// What an `rml node` runs of the deployed topology. It follows desired state (the topology
// placed and its plan, topologies/placement_controller.hpp): the components placed on this
// node run here under one supervisor, built from the topology's options exactly as `rml run`
// builds them (apps/rml/run_options.hpp); the components placed on other nodes are found
// there by name (topologies/peer_directory.hpp), so a trainer here publishes to a registry
// there and a registry there pushes models to serving here. The node's sockets (HTTP, the
// ZeroMQ prediction and event sockets) send to their component wherever it runs.
//
// When the set of components placed here changes (a node lost, a scale, a new deploy), the
// node drains its serving, stops its components and starts the new set; state on disk (the
// log, checkpoints, the registry) is resumed, as after a restart.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <condition_variable>
#include <mutex>
#include <atomic>
#include <chrono>
#include <utility>

#include "apps/rml/run_options.hpp"
#include "topologies/membership.hpp"
#include "topologies/placement_controller.hpp"

namespace rml::app {

/// What the node's own flags say about where it keeps things and what it listens on; they
/// win over a topology's options (ports and directories belong to the host, not the file).
struct node_local_settings {
  std::string name;
  std::string data_dir;
  /// Empty: the topology's (or rml run's default).
  std::string dataset_dir;
  std::string bind_host = "127.0.0.1";
  int http_port = 0;
  int predict_port = 0;
  int ingest_port = 0;
  /// Peers are reached over TLS (the node loaded caf::openssl::manager).
  bool tls = false;
  /// This node as its requests to other nodes name it: its incarnation and the controller's
  /// epoch, updated by the node as they change (messaging/at_most_once.hpp).
  std::shared_ptr<messaging::sender_identity> identity;
};

class node_job {
 public:
  node_job(caf::actor_system& system, node_local_settings settings);
  ~node_job();
  node_job(const node_job&) = delete;
  node_job& operator=(const node_job&) = delete;

  /// Follows what is deployed (nothing: stops what runs) with the members now. Applied by
  /// the job's own thread, the latest posted winning: starting and draining take seconds,
  /// and the node's lease renewals must not wait for them.
  void post(std::optional<control::deployment> deployed, std::vector<control::member> members);
  /// Stops what runs (drains serving, closes the sockets, stops the components) and waits
  /// for it: the node lost its membership, or leaves.
  void stop_now();

  /// The served model's name and the highest version the registry (here or on its node) has
  /// published while this node watched; version 0 before any. Subscribes the node's watcher
  /// to the registry when that is a new actor (call it on every tick).
  std::pair<std::string, std::uint64_t> watch_model_versions();

  /// The cluster's model pointer for the served model (etcd, moved forward only by the
  /// controller): serving running here takes versions up to it as the latest. Call it on
  /// every tick (a serving started since gets it then); a pointer not above the last is
  /// ignored by serving.
  void follow_model_pointer(std::uint64_t version);

  /// The load of each component running here that scales across nodes (serving, when its
  /// replicas have max above min), since the previous call: what this node reports for the
  /// cluster's autoscaler (topologies/autoscaler.hpp). Empty when none runs here.
  std::vector<std::pair<std::string, control::load_report>> scaling_load();

 private:
  void work();
  void follow(const std::optional<control::deployment>& deployed, const std::vector<control::member>& members);
  void stop();
  struct running_group {
    caf::actor supervisor;
    std::set<std::string> kinds;
  };
  /// Reads the topology's options, loads the data, opens the sockets; false (said) if not.
  bool prepare(const control::deployment& deployed);
  /// Starts, stops or restarts the groups of components so that `kinds` run here.
  bool run_groups(const std::set<std::string>& kinds);
  void stop_group(running_group& group);
  void point_resolver(const std::map<std::string, std::string>& remote_addresses);
  /// The members and the placement as series on the node's /metrics (rml_cluster_member,
  /// rml_cluster_replica): the dashboard's view of the cluster.
  void export_cluster_view(const control::deployment& deployed, const std::vector<control::member>& members);
  std::set<std::vector<std::pair<std::string, std::string>>> exported_members_, exported_replicas_;

  caf::actor_system& system_;
  node_local_settings settings_;
  caf::actor resolver_;
  /// What runs: the topology's text and the kinds placed here (empty text: nothing).
  std::string running_topology_;
  std::set<std::string> running_kinds_;
  /// A start that failed is not tried again until what is placed here changes.
  std::string failed_key_;
  /// What runs, by group (node_job.cpp: group_of), each under its own supervisor.
  std::map<std::string, running_group> groups_;
  std::optional<endpoints> sockets_;
  std::optional<run_options> options_;
  std::optional<topologies::pipeline_options> pipeline_;
  std::string topology_name_;
  /// Watches the registry's published versions (the controller moves etcd's model pointer).
  caf::actor version_watcher_;
  std::shared_ptr<std::atomic<std::uint64_t>> highest_published_ = std::make_shared<std::atomic<std::uint64_t>>(0);
  /// The cluster's model pointer as last followed: a serving router started (or restarted by
  /// its supervisor) here reads it at once (router_options::known_model_pointer).
  std::shared_ptr<std::atomic<std::uint64_t>> model_pointer_ = std::make_shared<std::atomic<std::uint64_t>>(0);
  caf::actor_addr watched_registry_;
  std::string model_name_;
  /// The serving component's name when it runs here and scales across nodes ("": not), the
  /// node's metrics, and the lane's load at the previous report.
  std::string scaling_serving_;
  bool serving_runs_ = false;
  std::shared_ptr<messaging::metrics::registry> metrics_;
  struct load_reading {
    double looks = 0, backlog_looks = 0, busy_seconds = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::optional<load_reading> last_load_;
  std::int64_t drain_timeout_ms_ = 10'000;
  /// The datasets of the last start, kept while the same files are named.
  std::string datasets_key_;
  std::shared_ptr<const data::dataset> train_;
  std::int32_t classes_ = 0;

  struct posted {
    std::optional<control::deployment> deployed;
    std::vector<control::member> members;
  };
  std::mutex mutex_;
  std::condition_variable wake_;
  std::optional<posted> pending_;
  bool stop_wanted_ = false, stopped_ = true, quit_ = false;
  std::thread worker_;
};

}  // namespace rml::app
