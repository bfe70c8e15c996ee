#pragma once
// Drift's response, when the topology asks for it (`--on-drift retrain`): a concept-drift
// alarm starts a retrain, and the retrained model earns its place through shadow and canary
// before it serves alone.
//
//   idle ── alarm ──► retraining: serving's policy → shadow (the stable version answers, the
//                     newest is mirrored and compared); the trainer trains a fresh model on
//                     the log's last N events (N: ADWIN's window on the training stream, the
//                     stretch since the change, within retrain_events_max)
//        ── a version published after the retrain has `shadow_comparisons_min` comparisons
//                 ──► canary: policy → canary:P (the existing rules decide on labelled answers)
//        ── promoted ──► idle, policy → latest        rolled back ──► idle, policy → pinned:STABLE
//        ── no decision within `timeout` ──► idle, policy → latest (abandoned)
//
// Only from the `latest` policy: an operator's own policy is left alone (the alarm is traced
// as skipped). Alarms while a loop runs, and within `cooldown` after one, start nothing.
// Every step is a trace event ("retrain_*") and rml_retrain_loop_state /
// rml_retrains_total{outcome} count them.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>

#include "compute/status.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

struct retrain_loop_options {
  /// Events the retrain replays at most (and when ADWIN's window says nothing).
  std::uint64_t retrain_events_max = 20'000;
  std::uint64_t retrain_events_min = 500;
  /// Shadow comparisons of a retrained version before its canary starts.
  std::uint64_t shadow_comparisons_min = 200;
  /// Share of requests (%) the retrained version answers as a canary.
  double canary_percent = 20;
  std::chrono::milliseconds poll_interval{500};
  std::chrono::milliseconds timeout{300'000};
  std::chrono::milliseconds cooldown{30'000};
  messaging::telemetry telemetry;
};

/// Spawns the loop (options must be valid). It reacts to messaging::drift_alarmed; it asks
/// serving (status, info, policy) and the trainer (retrain) by their registered names.
caf::actor spawn_retrain_loop(caf::actor_system& system, const retrain_loop_options& options);

/// Checks the options; the error names the field.
status validate(const retrain_loop_options& options);

}  // namespace rml::actors
