// Supervision benchmark: time from a child's crash (exit reason kill) to its replacement
// answering a message, through a real rml supervisor on CAF's scheduler.
//
//   rml_supervision_bench [--restarts N] [--scheduler-threads N]
//
// A prober actor kills the child, and the start function hands each new instance to the
// prober, which asks it for a reply: crash → restart decision → spawn → reply, all inside
// CAF, so the figure holds no hand-off to an OS thread of the benchmark's own.
// Prints one JSON line (µs): median, p99, max of crash → answered, and the median of
// crash → spawned (the supervisor's own share).
#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>

#include "supervision/supervisor.hpp"

namespace {
using clock_type = std::chrono::steady_clock;
using done_atom = caf::atom_constant<caf::atom("done")>;

struct prober_state {
  int rounds_left = 0;
  int warmup_left = 100;
  clock_type::time_point crashed;
  std::vector<double> answered_us;
  std::vector<double> spawned_us;
  caf::response_promise finished;
};

caf::behavior echo(caf::event_based_actor*) {
  return {[](int value) { return value; }};
}

caf::behavior prober(caf::stateful_actor<prober_state>* self, int rounds) {
  self->state.rounds_left = rounds;
  return {
      // A new instance of the child, from the supervisor's start function.
      [self](caf::actor instance, std::int64_t spawned_ns) {
        const bool measuring = self->state.warmup_left == 0;
        if (measuring && self->state.crashed.time_since_epoch().count() != 0) {
          const auto spawned = clock_type::time_point(clock_type::duration(spawned_ns));
          self->state.spawned_us.push_back(std::chrono::duration<double, std::micro>(spawned - self->state.crashed).count());
        }
        self->request(instance, caf::infinite, 7).then([self, instance, measuring](int) {
          auto& state = self->state;
          if (measuring && state.crashed.time_since_epoch().count() != 0) {
            state.answered_us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - state.crashed).count());
            --state.rounds_left;
          } else if (state.warmup_left > 0) {
            --state.warmup_left;
          }
          if (state.rounds_left == 0) {
            if (state.finished.pending()) state.finished.deliver(true);
            return;
          }
          state.crashed = clock_type::now();
          self->send_exit(instance, caf::exit_reason::kill);
        });
      },
      [self](done_atom) {
        self->state.finished = self->make_response_promise();
        if (self->state.rounds_left == 0) self->state.finished.deliver(true);
        return self->state.finished;
      },
      [self](done_atom, bool) { return std::make_tuple(self->state.answered_us, self->state.spawned_us); },
  };
}

double at(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, std::size_t(fraction * double(values.size())))];
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rml supervision benchmark"};
  int restarts = 20000;
  int scheduler_threads = 2;
  app.add_option("--restarts", restarts)->check(CLI::Range(10, 10'000'000));
  app.add_option("--scheduler-threads", scheduler_threads)->check(CLI::Range(1, 64));
  CLI11_PARSE(app, argc, argv);

  caf::actor_system_config config;
  config.set("scheduler.max-threads", scheduler_threads);
  caf::actor_system system{config};
  auto probe = system.spawn(prober, restarts);

  rml::supervision::supervisor_spec spec;
  spec.name = "bench";
  spec.intensity = INT_MAX;  // measure restarts, never escalate
  spec.period = std::chrono::milliseconds(1);
  spec.children = {{"echo", [probe](caf::actor_system& sys) {
                      auto instance = sys.spawn(echo);
                      caf::anon_send(probe, instance, std::int64_t(clock_type::now().time_since_epoch().count()));
                      return instance;
                    }}};
  auto supervisor = rml::supervision::spawn_supervisor(system, spec);
  caf::scoped_actor self{system};
  self->request(probe, caf::infinite, done_atom::value).receive([](bool) {}, [](caf::error&) {});
  std::vector<double> answered, spawned;
  self->request(probe, caf::infinite, done_atom::value, true)
      .receive([&](std::vector<double>& a, std::vector<double>& s) { answered = std::move(a), spawned = std::move(s); },
               [](caf::error&) {});
  std::printf("{\"benchmark\": \"crash_to_replacement\", \"restarts\": %zu, \"scheduler_threads\": %d, "
              "\"p50_us\": %.1f, \"p99_us\": %.1f, \"max_us\": %.1f, \"spawned_p50_us\": %.1f}\n",
              answered.size(), scheduler_threads, at(answered, 0.5), at(answered, 0.99), at(answered, 1.0),
              at(spawned, 0.5));
  self->send_exit(supervisor, caf::exit_reason::user_shutdown);
  self->send_exit(probe, caf::exit_reason::user_shutdown);
  return 0;
}
