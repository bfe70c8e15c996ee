#pragma once
// A supervisor of children started at run time from one spec (OTP's simple_one_for_one):
// a pool of identical workers — serving replicas — that its owner grows and shrinks. A child
// that exits is restarted as the spec's restart type says, after a backoff, within the
// supervisor's intensity; beyond it the supervisor stops every child and exits with
// `restart intensity exceeded` (supervisor.hpp's intensity_exceeded), for its own parent to
// decide. Whoever routes work to the children learns of a replacement from a
// messaging::child_replaced (the exited instance's address and the new one's handle) sent
// to `report_to`, besides the messaging::child_restarted report every supervisor sends.
//
// Messages: `start_child_atom` starts a child and answers its handle (an error at
// `children_max` or when the start function fails); `start_child_atom, caf::message args`
// does the same with arguments the start function receives for this child, at its first
// start and every restart (OTP's extra arguments: lanes of one router differ by role); `terminate_child_atom, actor` stops that
// child (within the shutdown timeout, then killed) without restarting it and answers whether
// it was a child; `which_children_atom` answers the running children. An exit message stops
// the children and then the supervisor. Time is the actor clock's (contract 5).

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>

#include <chrono>
#include <functional>
#include <string>

#include "compute/status.hpp"
#include "supervision/supervisor.hpp"

namespace rml::supervision {

using start_child_atom = caf::atom_constant<caf::atom("startchild")>;
using terminate_child_atom = caf::atom_constant<caf::atom("stopchild")>;

struct dynamic_supervisor_spec {
  /// Names the supervisor in reports and errors.
  std::string name = "pool";
  /// Spawns one child from the arguments it was started with (empty without); called for
  /// every start_child and every restart.
  std::function<caf::actor(caf::actor_system&, const caf::message& args)> start;
  restart_type restart = restart_type::permanent;
  /// At most `intensity` restarts within `period`; one more stops everything.
  int intensity = 10;
  std::chrono::milliseconds period{10'000};
  /// Delay before a child's n-th restart within the period: initial · 2^(n−1), at most
  /// `backoff_max`; zero restarts at once.
  std::chrono::milliseconds backoff_initial{0};
  std::chrono::milliseconds backoff_max{1000};
  /// How long a child may take to stop when asked before it is killed.
  std::chrono::milliseconds shutdown_timeout{5000};
  std::size_t children_max = supervisor_children_max;
  /// Receives messaging::child_restarted and messaging::child_replaced, when set.
  caf::actor report_to;
};

/// Checks a spec; the error names the field.
status validate(const dynamic_supervisor_spec& spec);

/// Spawns a dynamic supervisor with no children (the spec must be valid).
caf::actor spawn_dynamic_supervisor(caf::actor_system& system, dynamic_supervisor_spec spec);

}  // namespace rml::supervision
