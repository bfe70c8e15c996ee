#include "supervision/dynamic_supervisor.hpp"
#include "supervision/restart_window.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>
#include <map>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"

namespace rml::supervision {
namespace {
using restart_later_atom = caf::atom_constant<caf::atom("restartat")>;
using kill_late_atom = caf::atom_constant<caf::atom("killlate")>;

struct dynamic_child {
  caf::actor handle;
  /// What it was started with, for its restarts.
  caf::message args;
  /// Asked to stop (terminate_child or shutdown): its exit is expected, not restarted.
  bool stopping = false;
  std::uint32_t restarts = 0;
  restart_window recent_restarts;
};

struct dynamic_state {
  dynamic_supervisor_spec spec;
  /// Children by the address of their current instance.
  std::map<caf::actor_addr, dynamic_child> children;
  /// Restarts waiting for their backoff, by ticket: what the replaced instance was.
  std::map<std::uint64_t, std::pair<caf::actor_addr, dynamic_child>> waiting;
  std::uint64_t next_ticket = 0;
  restart_window restart_times;
  bool shutting_down = false;
  caf::error shutdown_reason;
  std::shared_ptr<std::vector<caf::actor>> running = std::make_shared<std::vector<caf::actor>>();
  static inline const char* name = "rml.dynamic_supervisor";
};

using dynamic_actor = caf::stateful_actor<dynamic_state>;

caf::actor start_instance(dynamic_actor* self, const caf::message& args) {
  auto child = self->state.spec.start(self->system(), args);
  if (!child) return child;
  self->monitor(child);
  self->state.running->push_back(child);
  return child;
}

void forget_running(dynamic_actor* self, const caf::actor_addr& address) {
  auto& running = *self->state.running;
  running.erase(std::remove_if(running.begin(), running.end(), [&](const caf::actor& each) { return each.address() == address; }), running.end());
}

void request_stop(dynamic_actor* self, dynamic_child& child) {
  if (child.stopping) return;
  child.stopping = true;
  self->send_exit(child.handle, caf::exit_reason::user_shutdown);
  self->delayed_send(self, self->state.spec.shutdown_timeout, kill_late_atom::value, child.handle.address());
}

void begin_shutdown(dynamic_actor* self, caf::error reason) {
  auto& state = self->state;
  if (state.shutting_down) return;
  state.shutting_down = true;
  state.shutdown_reason = std::move(reason);
  state.waiting.clear();
  if (state.children.empty()) return self->quit(state.shutdown_reason);
  for (auto& [address, child] : state.children) request_stop(self, child);
}

/// Records a restart; says whether it is one too many for the intensity window.
bool intensity_exceeded_now(dynamic_actor* self, dynamic_child& child) {
  auto& state = self->state;
  const auto now = self->clock().now();
  child.recent_restarts.record(now, state.spec.period);
  return int(state.restart_times.record(now, state.spec.period)) > state.spec.intensity;
}

void restart(dynamic_actor* self, const caf::actor_addr& previous, dynamic_child child, const std::string& reason) {
  auto& state = self->state;
  if (state.shutting_down) return;
  child.handle = start_instance(self, child.args);
  if (!child.handle) {
    begin_shutdown(self, messaging::make_error(errc::invalid_argument, "supervisor '" + state.spec.name + "': a child failed to restart"));
    return;
  }
  child.stopping = false;
  ++child.restarts;
  const auto current = child.handle;
  const std::uint32_t count = child.restarts;
  state.children.emplace(current.address(), std::move(child));
  if (state.spec.report_to) {
    self->send(state.spec.report_to, messaging::child_restarted{state.spec.name, caf::to_string(current.address()), reason, count});
    self->send(state.spec.report_to, messaging::child_replaced{state.spec.name, previous, current, count});
  }
}

void on_down(dynamic_actor* self, caf::down_msg& down) {
  auto& state = self->state;
  auto found = state.children.find(down.source);
  if (found == state.children.end()) return;
  auto child = std::move(found->second);
  state.children.erase(found);
  forget_running(self, down.source);
  if (state.shutting_down) {
    if (state.children.empty()) self->quit(state.shutdown_reason);
    return;
  }
  if (child.stopping) return;  // terminated on request
  const bool abnormal = down.reason && down.reason != caf::exit_reason::normal && down.reason != caf::exit_reason::user_shutdown;
  const bool again = state.spec.restart == restart_type::permanent || (state.spec.restart == restart_type::transient && abnormal);
  if (!again) return;
  if (intensity_exceeded_now(self, child)) return begin_shutdown(self, intensity_exceeded(state.spec.name));
  const std::string reason = down.reason ? caf::to_string(down.reason) : "normal";
  const auto delay = child.recent_restarts.backoff(state.spec.backoff_initial, state.spec.backoff_max);
  if (delay.count() == 0) return restart(self, down.source, std::move(child), reason);
  const std::uint64_t ticket = ++state.next_ticket;
  state.waiting.emplace(ticket, std::make_pair(down.source, std::move(child)));
  self->delayed_send(self, delay, restart_later_atom::value, ticket, reason);
}

caf::result<caf::actor> start_child(dynamic_actor* self, caf::message args) {
  auto& state = self->state;
  const std::string which = "supervisor '" + state.spec.name + "': ";
  if (state.shutting_down) return messaging::make_error(errc::not_ready, which + "stopping, starts no child");
  if (state.children.size() + state.waiting.size() >= state.spec.children_max) {
    return messaging::make_error(errc::overloaded, which + "at most " + std::to_string(state.spec.children_max) + " children");
  }
  auto child = start_instance(self, args);
  if (!child) return messaging::make_error(errc::invalid_argument, which + "the start function returned no actor");
  dynamic_child started;
  started.handle = child;
  started.args = std::move(args);
  state.children.emplace(child.address(), std::move(started));
  return child;
}

caf::behavior dynamic_supervisor(dynamic_actor* self, dynamic_supervisor_spec spec) {
  self->state.spec = std::move(spec);
  self->set_down_handler([self](caf::down_msg& down) { on_down(self, down); });
  self->set_exit_handler([self](caf::exit_msg& message) { begin_shutdown(self, message.reason); });
  // Killed without its orderly shutdown: no child outlives it.
  self->attach_functor([running = self->state.running](const caf::error& reason) {
    for (const caf::actor& child : *running) caf::anon_send_exit(child, reason ? caf::exit_reason::kill : caf::exit_reason::user_shutdown);
  });
  return {
      [self](start_child_atom) { return start_child(self, caf::message{}); },
      [self](start_child_atom, caf::message& args) { return start_child(self, std::move(args)); },
      [self](terminate_child_atom, caf::actor& child) {
        auto found = self->state.children.find(child.address());
        if (found == self->state.children.end()) return false;
        request_stop(self, found->second);
        return true;
      },
      [self](which_children_atom) {
        std::vector<caf::actor> running;
        for (auto& [address, child] : self->state.children) {
          if (!child.stopping) running.push_back(child.handle);
        }
        return running;
      },
      [self](restart_later_atom, std::uint64_t ticket, std::string& reason) {
        auto found = self->state.waiting.find(ticket);
        if (found == self->state.waiting.end()) return;
        auto [previous, child] = std::move(found->second);
        self->state.waiting.erase(found);
        restart(self, previous, std::move(child), reason);
      },
      [self](kill_late_atom, caf::actor_addr& address) {
        auto found = self->state.children.find(address);
        if (found != self->state.children.end() && found->second.stopping) self->send_exit(found->second.handle, caf::exit_reason::kill);
      },
  };
}
}  // namespace

status validate(const dynamic_supervisor_spec& spec) {
  const std::string prefix = "supervisor '" + spec.name + "': ";
  auto invalid = [&](const std::string& what) { return error(errc::invalid_argument, prefix + what); };
  if (spec.name.empty()) return error(errc::invalid_argument, "supervisor: name must not be empty");
  if (!spec.start) return invalid("no start function");
  if (spec.intensity < 0) return invalid("intensity must be >= 0, got " + std::to_string(spec.intensity));
  if (spec.period.count() <= 0) return invalid("period must be > 0 ms, got " + std::to_string(spec.period.count()));
  if (spec.backoff_initial.count() < 0) return invalid("backoff_initial must be >= 0 ms");
  if (spec.backoff_max < spec.backoff_initial) return invalid("backoff_max must be >= backoff_initial");
  if (spec.shutdown_timeout.count() < 0) return invalid("shutdown_timeout must be >= 0 ms");
  if (spec.children_max == 0 || spec.children_max > supervisor_children_max) {
    return invalid("children_max must be in [1, " + std::to_string(supervisor_children_max) + "], got " + std::to_string(spec.children_max));
  }
  return {};
}

caf::actor spawn_dynamic_supervisor(caf::actor_system& system, dynamic_supervisor_spec spec) {
  auto valid = validate(spec);
  if (!valid) detail::assertion_failed("validate(spec)", __FILE__, __LINE__, valid.error().message().c_str());
  return system.spawn(dynamic_supervisor, std::move(spec));
}

}  // namespace rml::supervision
