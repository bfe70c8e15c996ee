#include "actors/monitoring/retrain_loop.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <cstdio>

#include "messaging/atoms.hpp"
#include "messaging/errors.hpp"
#include "messaging/reporting.hpp"

namespace rml::actors {
namespace {
using loop_tick_atom = caf::atom_constant<caf::atom("rtlooptck")>;

enum class phase { idle, shadow, canary };

struct retrain_loop_state {
  retrain_loop_options options;
  phase now = phase::idle;
  /// Versions up to this one were published before the retrain: a candidate is above it.
  std::uint64_t published_before = 0;
  /// What served before the loop began: where a rolled-back candidate leaves serving.
  std::uint64_t stable_version = 0;
  /// Shadow comparisons and canary decisions counted before the candidate's own.
  std::uint64_t comparisons_before = 0, decisions_before = 0, promoted_before = 0;
  std::uint64_t candidate = 0;
  std::int64_t started_us = 0, idle_since_us = INT64_MIN / 2;
  std::uint64_t tick_epoch = 0;
  /// Asking serving whether to begin: a second alarm meanwhile starts nothing.
  bool asking = false;
  messaging::metrics::gauge* phase_gauge = nullptr;
  static inline const char* name = "rml.retrain_loop";
};

using loop_pointer = caf::stateful_actor<retrain_loop_state>*;

void trace(loop_pointer self, const char* kind, std::string detail) {
  self->state.options.telemetry.trace->record({messaging::clock_us(self), "monitor/retrain", kind, std::move(detail)});
}

void count(loop_pointer self, const char* outcome) {
  self->state.options.telemetry.metrics->get_counter("rml_retrains_total", "Drift responses: retrains started and how they ended", {{"outcome", outcome}}).add();
}

void enter(loop_pointer self, phase next) {
  auto& state = self->state;
  state.now = next;
  state.phase_gauge->set(double(int(next)));
  if (next == phase::idle) {
    state.idle_since_us = messaging::clock_us(self);
    ++state.tick_epoch;  // the poll stops
  }
}

caf::actor serving_of(loop_pointer self) { return self->system().registry().get<caf::actor>(messaging::names::serving); }

/// Sets serving's policy; the outcome is traced (a refusal too).
void set_policy(loop_pointer self, const std::string& policy) {
  auto serving = serving_of(self);
  if (!serving) return trace(self, "retrain_policy_failed", "policy " + policy + ": no serving running");
  self->request(serving, std::chrono::seconds(5), messaging::policy_atom::value, policy)
      .then([](std::string&) {}, [self, policy](caf::error& failure) {
        trace(self, "retrain_policy_failed", "policy " + policy + ": " + messaging::describe(failure));
      });
}

void poll_later(loop_pointer self) {
  self->delayed_send(self, self->state.options.poll_interval, loop_tick_atom::value, self->state.tick_epoch);
}

void finish(loop_pointer self, const char* outcome, const std::string& policy, const std::string& detail) {
  trace(self, (std::string("retrain_") + outcome).c_str(), detail + "; serving's policy back to " + policy);
  count(self, outcome);
  set_policy(self, policy);
  enter(self, phase::idle);
}

void on_status(loop_pointer self, const messaging::serving_status& status) {
  auto& state = self->state;
  const std::int64_t now = messaging::clock_us(self);
  if (now - state.started_us > std::chrono::duration_cast<std::chrono::microseconds>(state.options.timeout).count()) {
    return finish(self, "abandoned", "latest",
                  "no decision " + std::to_string(state.options.timeout.count() / 1000) + " s after the retrain began (candidate v" +
                      std::to_string(state.candidate) + ")");
  }
  if (state.now == phase::shadow) {
    const auto* shadow = status.lane("shadow");
    const std::uint64_t compared = status.shadow_agree + status.shadow_disagree;
    if (!shadow || shadow->version <= state.published_before) {
      state.comparisons_before = compared;  // comparisons of a version from before the retrain do not count
      return poll_later(self);
    }
    if (state.candidate != shadow->version) {
      state.candidate = shadow->version;
      trace(self, "retrain_shadow", "candidate v" + std::to_string(state.candidate) + " mirrored beside stable v" + std::to_string(state.stable_version));
    }
    if (compared - state.comparisons_before < state.options.shadow_comparisons_min) return poll_later(self);
    char detail[160];
    std::snprintf(detail, sizeof(detail), "candidate v%llu agreed with stable v%llu on %llu of %llu shadow comparisons; canary at %.0f %%",
                  (unsigned long long)state.candidate, (unsigned long long)state.stable_version,
                  (unsigned long long)(status.shadow_agree), (unsigned long long)compared, state.options.canary_percent);
    trace(self, "retrain_canary", detail);
    state.decisions_before = status.canary_promoted + status.canary_rolled_back;
    state.promoted_before = status.canary_promoted;
    enter(self, phase::canary);
    char policy[32];
    std::snprintf(policy, sizeof(policy), "canary:%g", state.options.canary_percent);
    set_policy(self, policy);
    return poll_later(self);
  }
  if (state.now == phase::canary) {
    if (status.canary_promoted + status.canary_rolled_back == state.decisions_before) return poll_later(self);
    const auto* main = status.lane("main");
    const std::string serving = main ? "v" + std::to_string(main->version) : "none";
    if (status.canary_promoted > state.promoted_before) {
      return finish(self, "promoted", "latest", "the retrained model won its canary; main serves " + serving);
    }
    return finish(self, "rolled_back", "pinned:" + std::to_string(state.stable_version),
                  "the retrained model lost its canary; serving stays on stable v" + std::to_string(state.stable_version));
  }
}

void tick(loop_pointer self) {
  auto serving = serving_of(self);
  if (!serving) return poll_later(self);
  self->request(serving, std::chrono::seconds(5), messaging::status_atom::value)
      .then([self](messaging::serving_status& status) { on_status(self, status); }, [self](caf::error&) { poll_later(self); });
}

void start(loop_pointer self, const messaging::drift_alarmed& alarm, const messaging::serving_info& info) {
  auto& state = self->state;
  if (info.policy != "latest") {
    return trace(self, "retrain_skipped", "alarm on " + alarm.stream + " (" + alarm.detector + "): serving's policy is " + info.policy +
                                              ", an operator's choice; the loop acts only from latest");
  }
  auto trainer = self->system().registry().get<caf::actor>(messaging::names::trainer);
  if (!trainer) return trace(self, "retrain_skipped", "alarm on " + alarm.stream + ": no trainer running");
  const std::uint64_t events = std::clamp(alarm.training_window, state.options.retrain_events_min, state.options.retrain_events_max);
  state.stable_version = info.serving_version;
  state.started_us = messaging::clock_us(self);
  state.candidate = 0;
  enter(self, phase::shadow);
  ++state.tick_epoch;
  count(self, "started");
  trace(self, "retrain_requested",
        "alarm on " + alarm.stream + " (" + alarm.detector + "); retrain on the last " + std::to_string(events) + " events; stable v" +
            std::to_string(state.stable_version) + " keeps answering, the retrained versions are mirrored (shadow)");
  set_policy(self, "shadow");
  self->request(trainer, std::chrono::seconds(30), messaging::retrain_atom::value, events)
      .then(
          [self](std::uint64_t published_before) {
            self->state.published_before = std::max(published_before, self->state.stable_version);
            poll_later(self);
          },
          [self](caf::error& failure) { finish(self, "abandoned", "latest", "the trainer refused the retrain: " + messaging::describe(failure)); });
}

caf::behavior retrain_loop(loop_pointer self, retrain_loop_options options) {
  self->state.options = std::move(options);
  self->state.phase_gauge = &self->state.options.telemetry.metrics->get_gauge(
      "rml_retrain_loop_state", "Drift response: 0 idle, 1 a retrained model in shadow, 2 in canary");
  return {
      [self](messaging::drift_alarmed& alarm) {
        auto& state = self->state;
        if (alarm.stream == "inputs") return;  // the inputs moved, not the labels: a retrain on the same labels would not help
        if (state.now != phase::idle || state.asking) return;
        const std::int64_t cooldown_us = std::chrono::duration_cast<std::chrono::microseconds>(state.options.cooldown).count();
        if (messaging::clock_us(self) - state.idle_since_us < cooldown_us) return;
        auto serving = serving_of(self);
        if (!serving) return trace(self, "retrain_skipped", "alarm on " + alarm.stream + ": no serving running");
        state.asking = true;
        self->request(serving, std::chrono::seconds(5), messaging::info_atom::value)
            .then(
                [self, alarm](messaging::serving_info& info) {
                  self->state.asking = false;
                  start(self, alarm, info);
                },
                [self, alarm](caf::error& failure) {
                  self->state.asking = false;
                  trace(self, "retrain_skipped", "alarm on " + alarm.stream + ": serving did not answer: " + messaging::describe(failure));
                });
      },
      [self](loop_tick_atom, std::uint64_t epoch) {
        if (epoch != self->state.tick_epoch || self->state.now == phase::idle) return;
        tick(self);
      },
  };
}
}  // namespace

status validate(const retrain_loop_options& options) {
  if (options.retrain_events_min < 1 || options.retrain_events_min > options.retrain_events_max) {
    return error(errc::invalid_argument, "retrain events must be 1 ≤ min ≤ max, got min " + std::to_string(options.retrain_events_min) + ", max " +
                                             std::to_string(options.retrain_events_max));
  }
  if (!(options.canary_percent > 0 && options.canary_percent < 100)) {
    return error(errc::invalid_argument, "retrain canary percent must be in (0, 100), got " + std::to_string(options.canary_percent));
  }
  if (options.poll_interval.count() < 1) return error(errc::invalid_argument, "retrain poll interval must be ≥ 1 ms");
  return {};
}

caf::actor spawn_retrain_loop(caf::actor_system& system, const retrain_loop_options& options) {
  RML_ASSERT(validate(options).ok(), "retrain loop options not checked");
  return system.spawn(retrain_loop, options);
}

}  // namespace rml::actors
