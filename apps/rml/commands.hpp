#pragma once
// The subcommands of `rml`, each registered on the command line by its own file.

#include <CLI/CLI.hpp>

#include "compute/status.hpp"

namespace rml::topologies {
struct topology;
}

namespace rml::app {

/// `rml run`: the main job. For now it trains a built-in model on Fashion-MNIST in process
/// and reports test accuracy; the actor pipeline takes this command over.
void register_run_command(CLI::App& app, int& exit_code);

/// `rml predict`: a small client of the prediction socket.
void register_predict_command(CLI::App& app, int& exit_code);

/// `rml loadgen`: open-loop Poisson load on the prediction socket.
void register_loadgen_command(CLI::App& app, int& exit_code);

/// Checks the values of a topology's component options as `rml run` would take them (they
/// are its flags); the error names the file, line, component and option.
status check_topology_options(const topologies::topology& topology);

/// `rml topology check|show`: topology files (topologies/topology_file.hpp).
void register_topology_command(CLI::App& app, int& exit_code);

/// `rml node` (join a cluster: membership in etcd, BASP for other nodes, a candidate
/// placement controller), `rml status`, `rml deploy`, `rml scale`, `rml undeploy`.
void register_node_command(CLI::App& app, int& exit_code);

/// `rml cluster up`: etcd and N nodes on loopback, for trying the cluster out.
void register_cluster_command(CLI::App& app, int& exit_code);

/// `rml sim SCENARIO --seed N | --seeds A..B` (sim_command.cpp).
void register_sim_command(CLI::App& app, int& exit_code);

}  // namespace rml::app
