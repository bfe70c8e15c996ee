#include "supervision/supervisor.hpp"
#include "supervision/restart_window.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"

namespace rml::supervision {
namespace {
using restart_now_atom = caf::atom_constant<caf::atom("restart")>;
using kill_late_atom = caf::atom_constant<caf::atom("killlate")>;
using clock_type = caf::actor_clock;

struct child_state {
  child_spec spec;
  caf::actor handle;
  /// Asked to stop by the supervisor; its exit is expected.
  bool stopping = false;
  /// A temporary child that exited: never started again.
  bool removed = false;
  std::uint64_t generation = 0;
  std::uint32_t restarts = 0;
  restart_window recent_restarts;
};

struct supervisor_state {
  supervisor_spec spec;
  std::vector<child_state> children;
  restart_window restart_times;
  /// Children waiting for their group's members to stop before they restart together.
  std::vector<std::size_t> pending_group;
  std::size_t pending_trigger = 0;
  std::string pending_reason;
  std::uint64_t pending_epoch = 0;
  bool shutting_down = false;
  caf::error shutdown_reason;
  /// The running children, shared with the functor that stops them should this supervisor
  /// die without its orderly shutdown (killed): no child outlives its supervisor.
  std::shared_ptr<std::vector<caf::actor>> running = std::make_shared<std::vector<caf::actor>>();
  static inline const char* name = "rml.supervisor";
};

using supervisor_actor = caf::stateful_actor<supervisor_state>;

std::string describe_reason(const caf::error& reason) {
  if (!reason) return "normal";
  if (messaging::rml_code(reason)) return messaging::describe(reason);
  return caf::to_string(reason);
}

bool is_normal(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal;
}

bool is_shutdown(const caf::error& reason) { return reason == caf::exit_reason::user_shutdown; }

class supervisor_logic {
 public:
  explicit supervisor_logic(supervisor_actor* self) : self_(self), state_(self->state) {}

  bool start_child(std::size_t index) {
    child_state& child = state_.children[index];
    child.handle = child.spec.start(self_->system());
    if (!child.handle) return false;
    ++child.generation;
    // Monitors, not links: a link would carry a child's untrappable `kill` exit to the
    // supervisor and kill it too.
    self_->monitor(child.handle);
    state_.running->push_back(child.handle);
    return true;
  }

  /// Someone (the parent, or an operator) tells this supervisor to stop.
  void on_exit(caf::exit_msg& message) { begin_shutdown(message.reason); }

  void on_down(caf::down_msg& message) {
    const auto found = std::find_if(state_.children.begin(), state_.children.end(), [&](const child_state& child) {
      return child.handle && child.handle.address() == message.source;
    });
    if (found == state_.children.end()) return;
    const std::size_t index = std::size_t(found - state_.children.begin());
    child_state& child = *found;
    auto& running = *state_.running;
    running.erase(std::remove(running.begin(), running.end(), child.handle), running.end());
    child.handle = nullptr;
    if (state_.shutting_down) {
      continue_shutdown();
      return;
    }
    if (child.stopping) {
      child.stopping = false;
      if (child.spec.restart == restart_type::temporary) child.removed = true;
      start_pending_when_stopped();
      return;
    }
    on_unexpected_exit(index, message.reason);
  }


  void on_unexpected_exit(std::size_t index, const caf::error& reason) {
    child_state& child = state_.children[index];
    const bool abnormal = !is_normal(reason) && !is_shutdown(reason);
    if (child.spec.restart == restart_type::temporary) child.removed = true;
    const bool restart = child.spec.restart == restart_type::permanent ||
                         (child.spec.restart == restart_type::transient && abnormal);
    if (!restart) return;
    if (intensity_exceeded_now(child)) {
      begin_shutdown(intensity_exceeded(state_.spec.name));
      return;
    }
    std::vector<std::size_t> group;
    switch (state_.spec.strategy) {
      case restart_strategy::one_for_one:
        group = {index};
        break;
      case restart_strategy::one_for_all:
        for (std::size_t other = 0; other < state_.children.size(); ++other) group.push_back(other);
        break;
      case restart_strategy::rest_for_one:
        for (std::size_t other = index; other < state_.children.size(); ++other) group.push_back(other);
        break;
    }
    state_.pending_group = group;
    state_.pending_trigger = index;
    state_.pending_reason = describe_reason(reason);
    // Stop the rest of the group, latest started first.
    for (auto other = group.rbegin(); other != group.rend(); ++other) {
      if (*other != index) request_stop(*other);
    }
    start_pending_when_stopped();
  }

  /// Records a restart and says whether it is one too many for the intensity window.
  bool intensity_exceeded_now(child_state& child) {
    const auto now = self_->clock().now();
    child.recent_restarts.record(now, state_.spec.period);
    return int(state_.restart_times.record(now, state_.spec.period)) > state_.spec.intensity;
  }

  void request_stop(std::size_t index) {
    child_state& child = state_.children[index];
    if (!child.handle || child.stopping) return;
    child.stopping = true;
    self_->send_exit(child.handle, caf::exit_reason::user_shutdown);
    self_->delayed_send(self_, child.spec.shutdown_timeout, kill_late_atom::value,
                        std::uint64_t(index), child.generation);
  }

  void on_kill_late(std::uint64_t index, std::uint64_t generation) {
    if (index >= state_.children.size()) return;
    child_state& child = state_.children[index];
    if (child.handle && child.stopping && child.generation == generation) {
      self_->send_exit(child.handle, caf::exit_reason::kill);
    }
  }

  void start_pending_when_stopped() {
    if (state_.pending_group.empty()) return;
    for (std::size_t index : state_.pending_group) {
      if (state_.children[index].handle) return;  // still stopping
    }
    const child_state& trigger = state_.children[state_.pending_trigger];
    const auto delay = backoff(trigger);
    const std::uint64_t epoch = ++state_.pending_epoch;
    if (delay.count() == 0) {
      start_pending(epoch);
    } else {
      self_->delayed_send(self_, delay, restart_now_atom::value, epoch);
    }
  }

  std::chrono::milliseconds backoff(const child_state& child) const {
    return child.recent_restarts.backoff(state_.spec.backoff_initial, state_.spec.backoff_max);
  }

  void start_pending(std::uint64_t epoch) {
    if (epoch != state_.pending_epoch || state_.shutting_down) return;
    const std::vector<std::size_t> group = std::move(state_.pending_group);
    state_.pending_group.clear();
    for (std::size_t index : group) {
      child_state& child = state_.children[index];
      if (child.removed || child.handle) continue;
      if (!start_child(index)) {
        begin_shutdown(messaging::make_error(errc::invalid_argument, "supervisor '" + state_.spec.name +
                                                                         "': child '" + child.spec.id + "' failed to restart"));
        return;
      }
      ++child.restarts;
      if (state_.spec.report_to) {
        const std::string reason = index == state_.pending_trigger
                                       ? state_.pending_reason
                                       : "restarted with '" + state_.children[state_.pending_trigger].spec.id + "'";
        self_->send(state_.spec.report_to,
                    messaging::child_restarted{state_.spec.name, child.spec.id, reason, child.restarts});
      }
    }
  }

  void begin_shutdown(caf::error reason) {
    if (state_.shutting_down) return;
    state_.shutting_down = true;
    state_.shutdown_reason = std::move(reason);
    state_.pending_group.clear();
    continue_shutdown();
  }

  /// Stops children one at a time, latest started first; quits when none runs.
  void continue_shutdown() {
    for (std::size_t index = state_.children.size(); index-- > 0;) {
      child_state& child = state_.children[index];
      if (!child.handle) continue;
      request_stop(index);
      return;  // wait for this child's exit before the next
    }
    self_->quit(state_.shutdown_reason);
  }

 private:
  supervisor_actor* self_;
  supervisor_state& state_;
};

caf::behavior supervisor_behavior(supervisor_actor* self, supervisor_spec spec) {
  self->state.spec = std::move(spec);
  for (child_spec& spec : self->state.spec.children) {
    child_state child;
    child.spec = spec;
    self->state.children.push_back(std::move(child));
  }
  self->set_exit_handler([self](caf::exit_msg& message) { supervisor_logic(self).on_exit(message); });
  self->set_down_handler([self](caf::down_msg& message) { supervisor_logic(self).on_down(message); });
  self->attach_functor([running = self->state.running](const caf::error& reason) {
    for (const caf::actor& child : *running) caf::anon_send_exit(child, reason ? caf::exit_reason::kill : caf::exit_reason::user_shutdown);
  });
  supervisor_logic logic(self);
  for (std::size_t index = 0; index < self->state.children.size(); ++index) {
    if (!logic.start_child(index)) {
      logic.begin_shutdown(messaging::make_error(errc::invalid_argument, "supervisor '" + self->state.spec.name +
                                                                              "': child '" + self->state.children[index].spec.id +
                                                                              "' failed to start"));
      return {};
    }
  }
  return {
      [self](restart_now_atom, std::uint64_t epoch) { supervisor_logic(self).start_pending(epoch); },
      [self](kill_late_atom, std::uint64_t index, std::uint64_t generation) {
        supervisor_logic(self).on_kill_late(index, generation);
      },
      [self](which_children_atom) {
        std::vector<caf::actor> running;
        for (const child_state& child : self->state.children) running.push_back(child.handle);
        return running;
      },
  };
}
}  // namespace

const char* to_string(restart_type type) {
  switch (type) {
    case restart_type::permanent:
      return "permanent";
    case restart_type::transient:
      return "transient";
    case restart_type::temporary:
      return "temporary";
  }
  return "unknown";
}

const char* to_string(restart_strategy strategy) {
  switch (strategy) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
  }
  return "unknown";
}

status validate(const supervisor_spec& spec) {
  const std::string prefix = "supervisor '" + spec.name + "': ";
  auto invalid = [&](const std::string& what) { return error(errc::invalid_argument, prefix + what); };
  if (spec.name.empty()) return error(errc::invalid_argument, "supervisor: name must not be empty");
  if (spec.intensity < 0) return invalid("intensity must be >= 0, got " + std::to_string(spec.intensity));
  if (spec.period.count() <= 0) return invalid("period must be > 0 ms, got " + std::to_string(spec.period.count()));
  if (spec.backoff_initial.count() < 0) return invalid("backoff_initial must be >= 0 ms");
  if (spec.backoff_max < spec.backoff_initial) return invalid("backoff_max must be >= backoff_initial");
  if (spec.children.size() > supervisor_children_max) {
    return invalid("at most " + std::to_string(supervisor_children_max) + " children, got " + std::to_string(spec.children.size()));
  }
  for (std::size_t index = 0; index < spec.children.size(); ++index) {
    const child_spec& child = spec.children[index];
    const std::string which = "child " + std::to_string(index + 1);
    if (child.id.empty()) return invalid(which + " has an empty id");
    if (!child.start) return invalid(which + " ('" + child.id + "') has no start function");
    if (child.shutdown_timeout.count() < 0) return invalid(which + " ('" + child.id + "') has a negative shutdown_timeout");
    for (std::size_t earlier = 0; earlier < index; ++earlier) {
      if (spec.children[earlier].id == child.id) return invalid("two children have the id '" + child.id + "'");
    }
  }
  return {};
}

caf::actor spawn_supervisor(caf::actor_system& system, supervisor_spec spec) {
  auto valid = validate(spec);
  if (!valid) detail::assertion_failed("validate(spec)", __FILE__, __LINE__, valid.error().message().c_str());
  return system.spawn(supervisor_behavior, std::move(spec));
}

caf::error intensity_exceeded(const std::string& supervisor) {
  return messaging::make_error(errc::restart_intensity_exceeded,
                               "supervisor '" + supervisor + "': restart intensity exceeded");
}

}  // namespace rml::supervision
