#pragma once
// Monitoring: collects the metrics samples every component sends (counts, rates, latency
// quantiles, queue depths, progressive accuracy, model version) and the supervisors'
// restart reports, keeps the latest of each, and reports them: on request, and as a console
// line per component every `report_interval` when a sink is given. It also watches the
// model: the labelled outcomes serving and the trainer send, and the request rows serving
// samples, go through the drift detectors (drift_watch.hpp), whose state is on /metrics and
// whose alarms are in the trace, in the report (component "drift"), and — when given — sent
// to `on_alarm`.

#include <caf/typed_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "actors/monitoring/drift_watch.hpp"
#include "actors/monitoring/retrain_loop.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

/// The latest sample of every component, plus restarts counted as "restarts" per component.
using metrics_report = std::map<std::string, std::map<std::string, double>>;

using monitor_actor = caf::typed_actor<
    caf::reacts_to<messaging::metrics_sample>,
    caf::reacts_to<messaging::child_restarted>,
    caf::reacts_to<messaging::outcomes_observed>,
    caf::reacts_to<messaging::inputs_sampled>,
    caf::replies_to<messaging::status_atom>::with<metrics_report>>;

struct monitor_options {
  /// How often the console report is written; zero disables it.
  std::chrono::milliseconds report_interval{0};
  /// Where report lines go (one per component); stderr when not set.
  std::function<void(const std::string&)> sink;
  /// The drift detectors' parameters.
  drift_watch_options drift;
  /// Called (on the monitor's thread) with every drift alarm: the alert webhook.
  std::function<void(const drift_alarm&)> on_alarm;
  /// Drift's response (`--on-drift retrain`): the monitor runs a retrain loop
  /// (retrain_loop.hpp) and hands it every alarm. Nothing: alarms are only reported.
  std::optional<retrain_loop_options> retrain;
  /// Where the detectors' series and alarms go (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
};

monitor_actor spawn_monitor(caf::actor_system& system, const monitor_options& options);

/// "trainer: events_trained=60000 rolling_accuracy=0.837 …" for one component.
std::string format_report_line(const std::string& component, const std::map<std::string, double>& values);

}  // namespace rml::actors
