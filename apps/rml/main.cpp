// rml: a reactive machine-learning system. See README.md for the commands.
#include <cstdio>

#include "apps/rml/commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"rml: a reactive machine-learning system"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "rml 0.1.0");
  int exit_code = 0;
  rml::app::register_run_command(app, exit_code);
  rml::app::register_predict_command(app, exit_code);
  rml::app::register_loadgen_command(app, exit_code);
  rml::app::register_topology_command(app, exit_code);
  rml::app::register_node_command(app, exit_code);
  rml::app::register_cluster_command(app, exit_code);
  rml::app::register_sim_command(app, exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code;
}
