#pragma once
// Supervisors with Erlang/OTP semantics (supervisor.erl), on CAF links. A supervisor starts
// its children in order, restarts them when they exit as their restart type and its
// strategy say, gives up when restarts come faster than its intensity allows (it then stops
// every child and exits with `restart intensity exceeded`, which its own supervisor sees as
// an abnormal exit: escalation), and stops its children in reverse start order, each within
// its shutdown timeout, when it is stopped. It knows no component: a child is a start
// function that returns an actor.
//
// Specs are plain data, validated when built (one named error per bad field). Every restart
// emits a messaging::child_restarted report to `report_to`, when set.
//
// Time comes from the actor clock, so under CAF's test_coordinator restarts, backoff and
// shutdown timeouts run in virtual time (DESIGN.md contract 5).

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "compute/status.hpp"

namespace rml::supervision {

/// Asks a supervisor for its children's running instances, in start order (an invalid
/// handle for a child not running): replies std::vector<caf::actor>.
using which_children_atom = caf::atom_constant<caf::atom("children")>;

/// A limit on children per supervisor (TIGER_STYLE: a limit on everything that grows).
inline constexpr std::size_t supervisor_children_max = 1024;

/// Which exits restart a child (OTP child restart types).
enum class restart_type : std::uint8_t {
  /// Always restarted.
  permanent,
  /// Restarted only after an abnormal exit (not normal, not shutdown).
  transient,
  /// Never restarted, and not restarted with its siblings either.
  temporary,
};

/// Which children restart when one must (OTP strategies).
enum class restart_strategy : std::uint8_t {
  /// Only the child that exited.
  one_for_one,
  /// Every child: the others are stopped (reverse order) and all restarted (start order).
  one_for_all,
  /// The child that exited and every child started after it.
  rest_for_one,
};

const char* to_string(restart_type type);
const char* to_string(restart_strategy strategy);

struct child_spec {
  /// Unique among the supervisor's children; names the child in reports.
  std::string id;
  /// Spawns a fresh instance. Called on start and on every restart.
  std::function<caf::actor(caf::actor_system&)> start;
  restart_type restart = restart_type::permanent;
  /// How long a child may take to exit after a shutdown request before it is killed.
  std::chrono::milliseconds shutdown_timeout{5000};
};

struct supervisor_spec {
  /// Names the supervisor in reports.
  std::string name = "supervisor";
  restart_strategy strategy = restart_strategy::one_for_one;
  /// At most `intensity` restarts within `period`; one more escalates.
  int intensity = 3;
  std::chrono::milliseconds period{5000};
  /// Delay before the n-th consecutive restart of a child: initial · 2^(n−1), at most
  /// `backoff_max`. Zero restarts at once (OTP's behaviour).
  std::chrono::milliseconds backoff_initial{0};
  std::chrono::milliseconds backoff_max{1000};
  std::vector<child_spec> children;
  /// Receives a messaging::child_restarted for every restart, when set.
  caf::actor report_to;
};

/// Checks a spec; the error names the field, e.g. "supervisor 'pipeline': intensity must be
/// ≥ 0, got -1" or "supervisor 'pipeline': child 2 has no start function".
status validate(const supervisor_spec& spec);

/// Spawns a supervisor (the spec must be valid: validate() first; an invalid one asserts).
/// Its children start before it handles its first message.
caf::actor spawn_supervisor(caf::actor_system& system, supervisor_spec spec);

/// The exit reason of a supervisor that gave up.
caf::error intensity_exceeded(const std::string& supervisor);

}  // namespace rml::supervision
