#include "actors/monitoring/monitor.hpp"

#include <caf/all.hpp>

#include <cstdio>

#include "messaging/reporting.hpp"

namespace rml::actors {
namespace {
using report_atom = caf::atom_constant<caf::atom("report")>;

/// Counters whose rate of change the monitor reports as "<name>_per_s".
const char* const rated_counters[] = {"events_trained", "events_appended", "requests", "events_acked", "steps"};

struct monitor_state {
  monitor_options options;
  std::unique_ptr<drift_watch> drift;
  caf::actor retrain_loop;
  metrics_report latest;
  std::map<std::string, std::int64_t> latest_timestamp_us;
  static inline const char* name = "rml.monitor";
};

using monitor_pointer = monitor_actor::stateful_pointer<monitor_state>;

void raise(monitor_pointer self, const drift_alarm& alarm) {
  auto& state = self->state;
  state.latest["drift"] = state.drift->report();
  if (state.options.on_alarm) state.options.on_alarm(alarm);
  if (state.retrain_loop) {
    caf::anon_send(state.retrain_loop, messaging::drift_alarmed{alarm.stream, alarm.detector, alarm.model_version, alarm.timestamp_us,
                                                                alarm.detail, state.drift->window_of("training")});
  }
}

monitor_actor::behavior_type monitor(monitor_pointer self, monitor_options options) {
  self->state.options = std::move(options);
  self->state.drift = std::make_unique<drift_watch>(self->state.options.drift, self->state.options.telemetry);
  if (auto& retrain = self->state.options.retrain) {
    retrain->telemetry = self->state.options.telemetry;
    // Linked: the loop ends with the monitor, and a loop that fails takes the monitor to its
    // supervisor with it.
    self->state.retrain_loop = spawn_retrain_loop(self->system(), *retrain);
    self->link_to(self->state.retrain_loop);
  }
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
        auto& state = self->state;
        auto& values = state.latest[sample.component];
        const auto previous = values;
        const std::int64_t previous_us = state.latest_timestamp_us[sample.component];
        values = std::move(sample.values);
        if (previous.count("restarts") != 0) values["restarts"] = previous.at("restarts");
        // Rates from two successive samples of the same component.
        const double seconds = double(sample.timestamp_us - previous_us) * 1e-6;
        for (const char* counter : rated_counters) {
          auto now = values.find(counter);
          auto before = previous.find(counter);
          if (now == values.end() || before == previous.end() || seconds <= 0) continue;
          values[std::string(counter) + "_per_s"] = (now->second - before->second) / seconds;
        }
        state.latest_timestamp_us[sample.component] = sample.timestamp_us;
      },
      [self](messaging::child_restarted& report) { self->state.latest[report.child]["restarts"] += 1; },
      [self](messaging::outcomes_observed& outcomes) {
        auto& state = self->state;
        for (const auto& alarm : state.drift->observe(outcomes, messaging::clock_us(self))) raise(self, alarm);
        state.latest["drift"] = state.drift->report();
      },
      [self](messaging::inputs_sampled& inputs) {
        auto& state = self->state;
        if (auto alarm = state.drift->sample(inputs, messaging::clock_us(self))) raise(self, *alarm);
        state.latest["drift"] = state.drift->report();
      },
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
