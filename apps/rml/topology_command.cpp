// `rml topology check FILE` and `rml topology show [FILE]`: validate a topology file, print
// its placement plan (topologies/topology_file.hpp). Without a file, show prints the default
// topology of `rml run`.
#include <cstdio>
#include <optional>

#include "apps/rml/commands.hpp"
#include "topologies/topology_file.hpp"

namespace rml::app {
namespace {
/// The topology in `path` (the default one when empty), or null after saying what is wrong.
std::optional<topologies::topology> read(const std::string& path, int& exit_code) {
  auto declared = path.empty() ? topologies::parse_topology(topologies::default_topology_text(), "default.yaml (embedded)")
                               : topologies::load_topology(path);
  if (declared) return std::move(declared.value());
  std::fprintf(stderr, "rml topology: %s\n", declared.error().message().c_str());
  exit_code = 1;
  return std::nullopt;
}
}  // namespace

void register_topology_command(CLI::App& app, int& exit_code) {
  auto* command = app.add_subcommand("topology", "Check a topology file or show its placement plan");
  command->require_subcommand(1);
  auto check_path = std::make_shared<std::string>();
  auto* check = command->add_subcommand(
      "check", "Validate a topology file, option values included: exit 0 when valid, else the first error (file:line:column)");
  check->add_option("file", *check_path, "The topology file (YAML)")->required();
  check->callback([check_path, &exit_code] {
    auto declared = read(*check_path, exit_code);
    if (!declared) return;
    if (auto values = check_topology_options(*declared); !values) {
      std::fprintf(stderr, "rml topology: %s\n", values.error().message().c_str());
      exit_code = 1;
      return;
    }
    std::printf("%s: topology %s is valid (%zu components, %zu nodes)\n", check_path->c_str(), declared->name.c_str(),
                declared->components.size(), declared->nodes.size());
  });
  auto show_path = std::make_shared<std::string>();
  auto* show = command->add_subcommand("show", "Print where each component's replicas run (the default topology without a file)");
  show->add_option("file", *show_path, "The topology file (YAML)");
  show->callback([show_path, &exit_code] {
    auto declared = read(*show_path, exit_code);
    if (!declared) return;
    auto plan = topologies::plan_placement(*declared);
    if (!plan) {
      std::fprintf(stderr, "rml topology: %s\n", plan.error().message().c_str());
      exit_code = 1;
      return;
    }
    std::fputs(topologies::describe(*declared, *plan).c_str(), stdout);
  });
}

}  // namespace rml::app
