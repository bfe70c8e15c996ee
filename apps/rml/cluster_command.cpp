// `rml cluster up`: a cluster on this machine for trying things out — Debian's etcd and N
// `rml node` processes on loopback, their logs and etcd's data in one directory. It prints
// the cluster's status once every node has joined and runs until SIGINT or SIGTERM, then
// stops the nodes (they leave) and etcd. Node 1 is labelled role=data, the others
// role=serving, as tests/data/cluster-topology.yaml expects; node-k keeps its components'
// state in DIR/node-k and answers HTTP on --http-base-port + k - 1.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apps/rml/commands.hpp"
#include "apps/rml/stop_signal.hpp"
#include "topologies/etcd_control_plane.hpp"
#include "topologies/membership.hpp"

extern char** environ;

namespace rml::app {
namespace {

using namespace std::chrono_literals;


struct cluster_options {
  std::uint32_t nodes = 3;
  std::string data_dir = "rml-cluster";
  std::uint16_t etcd_port = 2379;
  /// 0: the client port + 1.
  std::uint16_t etcd_peer_port = 0;
  /// 0: each node's port is picked by the system.
  std::uint16_t base_port = 4700;
  /// node-k's HTTP port is this + k - 1 (0: each picks a free one).
  std::uint16_t http_base_port = 8000;
  double lease_seconds = 3;
  /// Cores each node offers to placement: all share this machine's, so this is a budget for
  /// trying placement out, not a measurement.
  std::uint32_t cores = 8;
};

/// A child process whose output goes to `log`.
result<pid_t> start(const std::vector<std::string>& arguments, const std::string& log) {
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
  std::vector<std::string> copies = arguments;
  std::vector<char*> argv;
  for (auto& argument : copies) argv.push_back(argument.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  const int failed = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&files);
  if (failed != 0) return error(errc::io_error, std::string("cannot start ") + argv[0] + ": " + std::strerror(failed));
  return pid;
}

/// Stops `pid` with SIGTERM, then SIGKILL after `grace`.
void stop(pid_t pid, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  ::kill(pid, SIGTERM);
  const auto give_up = std::chrono::steady_clock::now() + grace;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > give_up) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
}

int run_cluster_up(const cluster_options& options) {
  if (options.etcd_port == 0 || options.etcd_port == 65535) {
    std::fprintf(stderr, "rml cluster up: --etcd-port %u: must be in [1, 65534] (the next port is etcd's peer port)\n", options.etcd_port);
    return 2;
  }
  if (options.nodes < 1 || options.nodes > 64) {
    std::fprintf(stderr, "rml cluster up: --nodes %u: must be in [1, 64]\n", options.nodes);
    return 2;
  }
  const std::string etcd_binary = "/usr/bin/etcd";
  if (::access(etcd_binary.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "rml cluster up: %s not found: install Debian's etcd-server (scripts/setup.sh does)\n", etcd_binary.c_str());
    return 1;
  }
  std::error_code made;
  std::filesystem::create_directories(options.data_dir, made);
  if (made) {
    std::fprintf(stderr, "rml cluster up: --data-dir %s: %s\n", options.data_dir.c_str(), made.message().c_str());
    return 1;
  }
  const std::string directory = std::filesystem::absolute(options.data_dir).string();
  const std::string url = "http://127.0.0.1:" + std::to_string(options.etcd_port);
  const std::string peer =
      "http://127.0.0.1:" + std::to_string(options.etcd_peer_port != 0 ? options.etcd_peer_port : options.etcd_port + 1);

  // If something already answers there, it is not ours to start: say so.
  {
    control::etcd_options probe;
    probe.endpoints = {url};
    probe.request_timeout = 300ms;
    if (control::etcd_control_plane::connect(probe).ok()) {
      std::fprintf(stderr, "rml cluster up: an etcd already answers at %s: stop it, or pick another --etcd-port\n", url.c_str());
      return 1;
    }
  }
  stop_on_signals();
  std::vector<pid_t> children;
  auto stop_all = [&] {
    for (auto it = children.rbegin(); it != children.rend(); ++it) stop(*it, 5s);  // nodes first, etcd last
    children.clear();
  };
  auto etcd = start({etcd_binary, "--name=rml-cluster", "--data-dir=" + directory + "/etcd", "--listen-client-urls=" + url,
                     "--advertise-client-urls=" + url, "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
                     "--initial-cluster=rml-cluster=" + peer, "--logger=zap", "--log-level=warn"},
                    directory + "/etcd.log");
  if (!etcd) {
    std::fprintf(stderr, "rml cluster up: %s\n", etcd.error().message().c_str());
    return 1;
  }
  children.push_back(*etcd);
  control::etcd_options client;
  client.endpoints = {url};
  client.request_timeout = 500ms;
  std::unique_ptr<control::etcd_control_plane> plane;
  for (int attempt = 0; attempt < 200 && !plane && !stop_requested(); ++attempt) {
    if (auto connected = control::etcd_control_plane::connect(client)) {
      plane = std::move(connected.value());
      break;
    }
    int status = 0;
    if (::waitpid(*etcd, &status, WNOHANG) == *etcd) {
      // Gone already (a port in use, a data directory it cannot use): its log says why.
      children.clear();
      std::ifstream log(directory + "/etcd.log");
      std::string line, last;
      while (std::getline(log, line)) {
        if (!line.empty()) last = line;
      }
      std::fprintf(stderr, "rml cluster up: etcd exited at once; the last line of its log (%s/etcd.log):\n%s\n", directory.c_str(),
                   last.c_str());
      stop_all();
      return 1;
    }
    std::this_thread::sleep_for(100ms);
  }
  if (!plane) {
    std::fprintf(stderr, "rml cluster up: etcd did not answer at %s within 20 s (its log: %s/etcd.log)\n", url.c_str(), directory.c_str());
    stop_all();
    return 1;
  }

  char self_path[4096] = {};
  const ssize_t length = ::readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
  const std::string rml = length > 0 ? std::string(self_path, std::size_t(length)) : "rml";
  char ttl[32];
  std::snprintf(ttl, sizeof(ttl), "%g", options.lease_seconds);
  for (std::uint32_t index = 1; index <= options.nodes; ++index) {
    const std::string name = "node-" + std::to_string(index);
    const std::uint16_t port = options.base_port == 0 ? 0 : std::uint16_t(options.base_port + index - 1);
    const std::uint16_t http_port = options.http_base_port == 0 ? 0 : std::uint16_t(options.http_base_port + index - 1);
    auto node = start({rml, "node", "--name", name, "--listen", "127.0.0.1:" + std::to_string(port), "--etcd", url,
                       "--labels", index == 1 ? "role=data" : "role=serving", "--lease-ttl", ttl, "--cores",
                       std::to_string(options.cores), "--data-dir", directory + "/" + name, "--http-port", std::to_string(http_port)},
                      directory + "/" + name + ".log");
    if (!node) {
      std::fprintf(stderr, "rml cluster up: %s\n", node.error().message().c_str());
      stop_all();
      return 1;
    }
    children.push_back(*node);
  }
  control::membership members(*plane);
  bool all_joined = false;
  for (int attempt = 0; attempt < 300 && !stop_requested(); ++attempt) {
    auto listed = members.members();
    if (listed && listed->size() == options.nodes) {
      all_joined = true;
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  if (!all_joined && !stop_requested()) {
    std::fprintf(stderr, "rml cluster up: not every node joined within 30 s (their logs: %s/node-*.log)\n", directory.c_str());
    stop_all();
    return 1;
  }
  if (!stop_requested()) {
    std::fprintf(stderr, "rml cluster up: etcd at %s and %u nodes on loopback; logs and data in %s; Ctrl-C stops it\n", url.c_str(),
                 options.nodes, directory.c_str());
    std::fprintf(stderr, "rml cluster up: try  rml status --etcd %s  and  rml deploy tests/data/cluster-topology.yaml --etcd %s\n",
                 url.c_str(), url.c_str());
    std::fflush(stderr);
  }
  while (!stop_requested()) {
    // A child that exits is reported; the rest keep running.
    int status = 0;
    const pid_t gone = ::waitpid(-1, &status, WNOHANG);
    if (gone > 0) {
      std::fprintf(stderr, "rml cluster up: process %d exited (%s %d); see its log in %s\n", int(gone),
                   WIFEXITED(status) ? "status" : "signal", WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), directory.c_str());
      std::erase(children, gone);
    }
    std::this_thread::sleep_for(100ms);
  }
  std::fprintf(stderr, "rml cluster up: stopping %zu processes\n", children.size());
  stop_all();
  return 0;
}

}  // namespace

void register_cluster_command(CLI::App& app, int& exit_code) {
  auto* cluster = app.add_subcommand("cluster", "A cluster on this machine");
  cluster->require_subcommand(1);
  auto options = std::make_shared<cluster_options>();
  auto* up = cluster->add_subcommand("up", "Start etcd and N rml nodes on loopback until Ctrl-C");
  up->add_option("--nodes", options->nodes, "How many nodes")->capture_default_str()->check(CLI::Range(1u, 64u));
  up->add_option("--data-dir", options->data_dir, "etcd's data and every process's log")->capture_default_str();
  up->add_option("--etcd-port", options->etcd_port, "etcd's client port (its peer port is the next one)")->capture_default_str();
  up->add_option("--etcd-peer-port", options->etcd_peer_port, "etcd's peer port (0: the client port + 1)")->capture_default_str();
  up->add_option("--base-port", options->base_port, "node-1's BASP port; node-k listens on base + k - 1 (0: each picks a free one)")
      ->capture_default_str();
  up->add_option("--http-base-port", options->http_base_port,
                 "node-1's HTTP port (KServe V2, /metrics); node-k's is base + k - 1 (0: each picks a free one)")
      ->capture_default_str();
  up->add_option("--lease-ttl", options->lease_seconds, "The nodes' lease TTL in seconds")->capture_default_str();
  up->add_option("--cores", options->cores, "Cores each node offers to placement (they share this machine's)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 4096u));
  up->callback([options, &exit_code] { exit_code = run_cluster_up(*options); });
}

}  // namespace rml::app
