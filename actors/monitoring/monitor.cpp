#include "actors/monitoring/monitor.hpp"

#include <caf/all.hpp>

#include <cstdio>

namespace rml::actors {
namespace {
using report_atom = caf::atom_constant<caf::atom("report")>;

struct monitor_state {
  monitor_options options;
  metrics_report latest;
  static inline const char* name = "rml.monitor";
};

using monitor_pointer = monitor_actor::stateful_pointer<monitor_state>;

monitor_actor::behavior_type monitor(monitor_pointer self, monitor_options options) {
  self->state.options = std::move(options);
  if (self->state.options.report_interval.count() > 0) {
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), self->state.options.report_interval, report_atom::value);
  }
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (!view.content().match_elements<report_atom>()) return caf::sec::unexpected_message;
    auto& state = self->state;
    for (const auto& [component, values] : state.latest) {
      const std::string line = format_report_line(component, values);
      if (state.options.sink) state.options.sink(line);
      else std::fprintf(stderr, "%s\n", line.c_str());
    }
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), state.options.report_interval, report_atom::value);
    return caf::message{};
  });
  return {
      [self](messaging::metrics_sample& sample) {
        auto& values = self->state.latest[sample.component];
        const double restarts = values.count("restarts") != 0 ? values["restarts"] : 0.0;
        values = std::move(sample.values);
        if (restarts > 0) values["restarts"] = restarts;
      },
      [self](messaging::child_restarted& report) { self->state.latest[report.child]["restarts"] += 1; },
      [self](messaging::status_atom) { return self->state.latest; },
  };
}
}  // namespace

std::string format_report_line(const std::string& component, const std::map<std::string, double>& values) {
  std::string line = component + ":";
  char number[48];
  for (const auto& [name, value] : values) {
    if (value == std::floor(value) && std::abs(value) < 1e15) {
      std::snprintf(number, sizeof(number), "%.0f", value);
    } else {
      std::snprintf(number, sizeof(number), "%.4g", value);
    }
    line += " " + name + "=" + number;
  }
  return line;
}

monitor_actor spawn_monitor(caf::actor_system& system, const monitor_options& options) {
  return system.spawn(monitor, options);
}

}  // namespace rml::actors
