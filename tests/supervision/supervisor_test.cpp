// Supervisors, tested as a matrix (OTP supervisor_SUITE): exit kind × restart type ×
// strategy, the escalation case of each strategy, the intensity window, backoff, ordered
// shutdown with per-child timeouts, and spec validation. Everything runs under CAF's
// deterministic test_coordinator, in virtual time.
#include "tests/actor_fixture.hpp"

#include <map>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "supervision/dynamic_supervisor.hpp"
#include "supervision/supervisor.hpp"

using namespace rml;
using namespace rml::supervision;
using namespace std::chrono_literals;

namespace {

/// What the children and observers saw, shared with the test body.
struct journal {
  std::map<std::string, std::vector<caf::actor>> instances;  // by child id, in start order
  std::vector<std::string> exits;                            // child ids, in exit order
  std::vector<messaging::child_restarted> reports;
  std::optional<caf::error> supervisor_exit;
  std::vector<std::string> started_as;  // dynamic children: the name each instance got
};

/// Asks a worker to end itself with the given exit reason (an exit message cannot end an
/// actor normally: CAF ignores exit messages whose reason is `normal`).
using quit_atom = caf::atom_constant<caf::atom("quit")>;

/// A child that does nothing but say when it exits; optionally ignores shutdown requests.
caf::behavior worker(caf::event_based_actor* self, journal* log, std::string id, bool ignore_shutdown) {
  self->attach_functor([log, id] { log->exits.push_back(id); });
  if (ignore_shutdown) {
    self->set_exit_handler([self](caf::exit_msg& message) {
      if (message.reason == caf::exit_reason::kill) self->quit(message.reason);
    });
  }
  return {
      [](int value) { return value; },
      [self](quit_atom, int reason) { self->quit(caf::exit_reason(reason)); },
  };
}

child_spec child(journal* log, const std::string& id, restart_type restart = restart_type::permanent,
                 bool ignore_shutdown = false) {
  child_spec spec;
  spec.id = id;
  spec.restart = restart;
  spec.shutdown_timeout = 100ms;
  spec.start = [log, id, ignore_shutdown](caf::actor_system& system) {
    auto instance = system.spawn(worker, log, id, ignore_shutdown);
    log->instances[id].push_back(instance);
    return instance;
  };
  return spec;
}

struct fixture : test::actor_fixture {
  journal log;

  // Supervisors go first, while `log` (which their start functions write to) still exists.
  ~fixture() {
    for (auto& actor : keep_alive) caf::anon_send_exit(actor, caf::exit_reason::kill);
    scheduler->run();
    for (auto& [id, instances] : log.instances)
      for (auto& instance : instances) caf::anon_send_exit(instance, caf::exit_reason::kill);
    scheduler->run();
  }

  caf::actor start(supervisor_spec spec) {
    journal* log_pointer = &log;
    spec.report_to = system->spawn([log_pointer](caf::event_based_actor*) -> caf::behavior {
      return {[log_pointer](messaging::child_restarted& report) { log_pointer->reports.push_back(report); }};
    });
    hold(spec.report_to);
    REQUIRE(validate(spec).ok());
    auto supervisor = spawn_supervisor(*system, std::move(spec));
    hold(supervisor);
    hold(system->spawn([log_pointer, supervisor](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(supervisor);
      self->set_down_handler([log_pointer, self](caf::down_msg& down) {
        log_pointer->supervisor_exit = down.reason;
        self->quit();
      });
      return {[](int) {}};
    }));
    scheduler->run();

    return supervisor;
  }

  /// Makes the latest instance of `id` exit with `reason` and lets everything settle: `kill`
  /// arrives as an exit message, like a crash; other reasons the child gives itself.
  void exit_child(const std::string& id, caf::exit_reason reason) {
    if (reason == caf::exit_reason::kill) {
      caf::anon_send_exit(log.instances.at(id).back(), reason);
    } else {
      caf::anon_send(log.instances.at(id).back(), quit_atom::value, int(reason));
    }
    scheduler->run();
  }

  std::size_t starts(const std::string& id) const { return log.instances.at(id).size(); }
};

enum class exit_kind { normal, shutdown, abnormal };

caf::exit_reason reason_of(exit_kind kind) {
  switch (kind) {
    case exit_kind::normal:
      return caf::exit_reason::normal;
    case exit_kind::shutdown:
      return caf::exit_reason::user_shutdown;
    case exit_kind::abnormal:
      return caf::exit_reason::kill;
  }
  return caf::exit_reason::kill;
}

const char* name_of(exit_kind kind) {
  return kind == exit_kind::normal ? "normal" : kind == exit_kind::shutdown ? "shutdown" : "abnormal";
}
}  // namespace

TEST_CASE("restart decisions follow exit kind, restart type and strategy") {
  for (auto strategy : {restart_strategy::one_for_one, restart_strategy::one_for_all, restart_strategy::rest_for_one}) {
    for (auto type : {restart_type::permanent, restart_type::transient, restart_type::temporary}) {
      for (auto kind : {exit_kind::normal, exit_kind::shutdown, exit_kind::abnormal}) {
        CAPTURE(to_string(strategy), to_string(type), name_of(kind));
        fixture f;
        supervisor_spec spec;
        spec.name = "matrix";
        spec.strategy = strategy;
        spec.children = {child(&f.log, "a"), child(&f.log, "b", type), child(&f.log, "c")};
        auto supervisor = f.start(spec);
        f.exit_child("b", reason_of(kind));

        const bool restarted = type == restart_type::permanent || (type == restart_type::transient && kind == exit_kind::abnormal);
        REQUIRE(f.starts("b") == (restarted ? 2u : 1u));
        const bool siblings_after = restarted && strategy != restart_strategy::one_for_one;
        const bool siblings_before = restarted && strategy == restart_strategy::one_for_all;
        REQUIRE(f.starts("a") == (siblings_before ? 2u : 1u));
        REQUIRE(f.starts("c") == (siblings_after ? 2u : 1u));
        REQUIRE(f.log.reports.size() == std::size_t(restarted) * (1 + siblings_before + siblings_after));
        if (restarted) {
          auto report = std::find_if(f.log.reports.begin(), f.log.reports.end(), [](auto& r) { return r.child == "b"; });
          REQUIRE(report != f.log.reports.end());
          REQUIRE(report->supervisor == "matrix");
          REQUIRE(report->restart_count == 1);
          REQUIRE(report->reason == (kind == exit_kind::normal ? "normal" : caf::to_string(caf::error(reason_of(kind)))));
        }
        REQUIRE_FALSE(f.log.supervisor_exit.has_value());
        caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
        f.scheduler->run();
        REQUIRE(f.log.supervisor_exit.has_value());
      }
    }
  }
}

TEST_CASE("a temporary sibling is not restarted with the others under one_for_all") {
  fixture f;
  supervisor_spec spec;
  spec.strategy = restart_strategy::one_for_all;
  spec.children = {child(&f.log, "helper", restart_type::temporary), child(&f.log, "worker")};
  f.start(spec);
  f.exit_child("worker", caf::exit_reason::kill);
  REQUIRE(f.starts("worker") == 2);
  REQUIRE(f.starts("helper") == 1);
  REQUIRE(std::count(f.log.exits.begin(), f.log.exits.end(), "helper") == 1);
}

TEST_CASE("exceeding the restart intensity escalates under every strategy") {
  for (auto strategy : {restart_strategy::one_for_one, restart_strategy::one_for_all, restart_strategy::rest_for_one}) {
    CAPTURE(to_string(strategy));
    fixture f;
    supervisor_spec spec;
    spec.name = "fragile";
    spec.strategy = strategy;
    spec.intensity = 2;
    spec.period = 1000ms;
    spec.children = {child(&f.log, "a"), child(&f.log, "b"), child(&f.log, "c")};
    f.start(spec);
    f.exit_child("b", caf::exit_reason::kill);
    f.exit_child("b", caf::exit_reason::kill);
    REQUIRE_FALSE(f.log.supervisor_exit.has_value());
    f.exit_child("b", caf::exit_reason::kill);
    CAPTURE(f.starts("a"), f.starts("b"), f.starts("c"), f.log.exits);
    REQUIRE(f.log.supervisor_exit.has_value());
    REQUIRE(messaging::rml_code(*f.log.supervisor_exit) == errc::restart_intensity_exceeded);
    REQUIRE(messaging::describe(*f.log.supervisor_exit) == "supervisor 'fragile': restart intensity exceeded");
    // Every child was stopped, latest started first.
    const std::vector<std::string> tail(f.log.exits.end() - 2, f.log.exits.end());
    REQUIRE(tail == std::vector<std::string>{"c", "a"});
  }
}

TEST_CASE("restarts spread wider than the period do not escalate") {
  fixture f;
  supervisor_spec spec;
  spec.intensity = 1;
  spec.period = 1000ms;
  spec.children = {child(&f.log, "a")};
  f.start(spec);
  for (int round = 0; round < 5; ++round) {
    f.exit_child("a", caf::exit_reason::kill);
    f.scheduler->advance_time(caf::timespan(1500ms));
    f.scheduler->run();
  }
  REQUIRE(f.starts("a") == 6);
  REQUIRE_FALSE(f.log.supervisor_exit.has_value());
}

TEST_CASE("a nested supervisor that gives up is restarted by its parent") {
  fixture f;
  journal* log = &f.log;
  supervisor_spec inner;
  inner.name = "inner";
  inner.intensity = 0;
  inner.children = {child(log, "leaf")};
  supervisor_spec outer;
  outer.name = "outer";
  outer.children = {child_spec{"inner", [inner, log](caf::actor_system& system) {
                                 auto instance = spawn_supervisor(system, inner);
                                 log->instances["inner"].push_back(instance);
                                 return instance;
                               }, restart_type::permanent, 1000ms}};
  f.start(outer);
  REQUIRE(f.starts("leaf") == 1);
  f.exit_child("leaf", caf::exit_reason::kill);
  REQUIRE(f.starts("inner") == 2);
  REQUIRE(f.starts("leaf") == 2);
  auto report = std::find_if(f.log.reports.begin(), f.log.reports.end(), [](auto& r) { return r.child == "inner"; });
  REQUIRE(report != f.log.reports.end());
  REQUIRE(report->reason == "supervisor 'inner': restart intensity exceeded");
}

TEST_CASE("restarts back off exponentially on the actor clock") {
  fixture f;
  supervisor_spec spec;
  spec.intensity = 10;
  spec.backoff_initial = 100ms;
  spec.backoff_max = 150ms;
  spec.children = {child(&f.log, "a")};
  f.start(spec);
  f.exit_child("a", caf::exit_reason::kill);
  REQUIRE(f.starts("a") == 1);
  f.scheduler->advance_time(caf::timespan(99ms));
  f.scheduler->run();
  REQUIRE(f.starts("a") == 1);
  f.scheduler->advance_time(caf::timespan(1ms));
  f.scheduler->run();
  REQUIRE(f.starts("a") == 2);
  // Second restart within the period: 200 ms, capped at 150 ms.
  f.exit_child("a", caf::exit_reason::kill);
  f.scheduler->advance_time(caf::timespan(149ms));
  f.scheduler->run();
  REQUIRE(f.starts("a") == 2);
  f.scheduler->advance_time(caf::timespan(1ms));
  f.scheduler->run();
  REQUIRE(f.starts("a") == 3);
}

TEST_CASE("stopping a supervisor stops its children in reverse order, killing the slow ones after their timeout") {
  fixture f;
  supervisor_spec spec;
  spec.children = {child(&f.log, "first"), child(&f.log, "stubborn", restart_type::permanent, true),
                   child(&f.log, "last")};
  auto supervisor = f.start(spec);
  caf::anon_send_exit(supervisor, caf::exit_reason::user_shutdown);
  f.scheduler->run();
  REQUIRE(f.log.exits == std::vector<std::string>{"last"});
  REQUIRE_FALSE(f.log.supervisor_exit.has_value());
  f.scheduler->advance_time(caf::timespan(100ms));
  f.scheduler->run();
  REQUIRE(f.log.exits == std::vector<std::string>{"last", "stubborn", "first"});
  REQUIRE(f.log.supervisor_exit.has_value());
  CAPTURE(caf::to_string(*f.log.supervisor_exit));
  REQUIRE(*f.log.supervisor_exit == caf::exit_reason::user_shutdown);
}

TEST_CASE("invalid supervisor specs are refused with the field named") {
  journal log;
  supervisor_spec spec;
  spec.name = "pipeline";
  spec.intensity = -1;
  REQUIRE(validate(spec).error().message() == "supervisor 'pipeline': intensity must be >= 0, got -1");
  spec.intensity = 1;
  spec.period = 0ms;
  REQUIRE(validate(spec).error().message() == "supervisor 'pipeline': period must be > 0 ms, got 0");
  spec.period = 1000ms;
  spec.children = {child(&log, "a"), child(&log, "a")};
  REQUIRE(validate(spec).error().message() == "supervisor 'pipeline': two children have the id 'a'");
  spec.children = {child(&log, "a"), child_spec{"b", {}, restart_type::permanent, 10ms}};
  REQUIRE(validate(spec).error().message() == "supervisor 'pipeline': child 2 ('b') has no start function");
  spec.children = {child(&log, "a")};
  REQUIRE(validate(spec).ok());
}

namespace {
/// A dynamic supervisor of `worker`s, with its reports and its own exit collected.
struct dynamic_fixture : test::actor_fixture {
  journal log;
  std::vector<messaging::child_replaced> replaced;
  caf::actor supervisor;

  explicit dynamic_fixture(dynamic_supervisor_spec spec) {
    journal* log_pointer = &log;
    auto* replaced_pointer = &replaced;
    spec.start = [log_pointer](caf::actor_system& system, const caf::message& args) {
      const std::string name = args.match_elements<std::string>() ? args.get_as<std::string>(0) : "worker";
      auto instance = system.spawn(worker, log_pointer, name, false);
      log_pointer->instances["worker"].push_back(instance);
      log_pointer->started_as.push_back(name);
      return instance;
    };
    spec.report_to = hold(system->spawn([log_pointer, replaced_pointer](caf::event_based_actor*) -> caf::behavior {
      return {[log_pointer](messaging::child_restarted& report) { log_pointer->reports.push_back(report); },
              [replaced_pointer](messaging::child_replaced& report) { replaced_pointer->push_back(report); }};
    }));
    REQUIRE(validate(spec).ok());
    supervisor = hold(spawn_dynamic_supervisor(*system, std::move(spec)));
    hold(system->spawn([log_pointer, target = supervisor](caf::event_based_actor* self) -> caf::behavior {
      self->monitor(target);
      self->set_down_handler([log_pointer](caf::down_msg& down) { log_pointer->supervisor_exit = down.reason; });
      return {[](int) {}};
    }));
    scheduler->run();
  }
  ~dynamic_fixture() {
    for (auto& actor : keep_alive) caf::anon_send_exit(actor, caf::exit_reason::kill);
    scheduler->run();
    for (auto& instance : log.instances["worker"]) caf::anon_send_exit(instance, caf::exit_reason::kill);
    scheduler->run();
  }
  caf::actor start_child() { return *ask<caf::actor>(supervisor, start_child_atom::value).first; }
  std::vector<caf::actor> children() { return *ask<std::vector<caf::actor>>(supervisor, which_children_atom::value).first; }
};

dynamic_supervisor_spec pool_spec() {
  dynamic_supervisor_spec spec;
  spec.name = "pool";
  spec.intensity = 3;
  spec.period = 1000ms;
  spec.shutdown_timeout = 100ms;
  spec.start = [](caf::actor_system&, const caf::message&) { return caf::actor{}; };  // replaced by the fixture
  return spec;
}
}  // namespace

TEST_CASE("a dynamic supervisor starts children on request and replaces the ones that crash, telling who routes to them") {
  dynamic_fixture f(pool_spec());
  auto first = f.start_child();
  auto second = f.start_child();
  REQUIRE(f.children().size() == 2);
  caf::anon_send_exit(first, caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(f.log.instances["worker"].size() == 3);
  REQUIRE(f.replaced.size() == 1);
  REQUIRE(f.replaced[0].previous == first.address());
  REQUIRE(f.replaced[0].current == f.log.instances["worker"].back());
  REQUIRE(f.replaced[0].restart_count == 1);
  REQUIRE(f.log.reports.size() == 1);
  REQUIRE(f.children().size() == 2);
  // A child stopped on request is not restarted.
  REQUIRE(*f.ask<bool>(f.supervisor, terminate_child_atom::value, second).first);
  f.scheduler->run();
  REQUIRE(f.children().size() == 1);
  REQUIRE(f.log.instances["worker"].size() == 3);
  REQUIRE_FALSE(*f.ask<bool>(f.supervisor, terminate_child_atom::value, second).first);
}

TEST_CASE("a dynamic supervisor restarts a child with the arguments it was started with") {
  dynamic_fixture f(pool_spec());
  auto plain = f.start_child();
  auto named = *f.ask<caf::actor>(f.supervisor, start_child_atom::value, caf::make_message(std::string("main"))).first;
  caf::anon_send_exit(named, caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(f.log.started_as == std::vector<std::string>{"worker", "main", "main"});
  REQUIRE(f.replaced.size() == 1);
  REQUIRE(f.replaced[0].previous == named.address());
  caf::anon_send_exit(plain, caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(f.log.started_as.back() == "worker");
}

TEST_CASE("a dynamic supervisor whose children crash too often stops them all and exits with intensity exceeded") {
  dynamic_fixture f(pool_spec());
  for (int index = 0; index < 3; ++index) f.start_child();
  for (int crash = 0; crash < 4; ++crash) {
    auto children = f.children();
    REQUIRE(children.size() == 3);
    caf::anon_send_exit(children.front(), caf::exit_reason::kill);
    f.scheduler->run();
  }
  REQUIRE(f.log.supervisor_exit.has_value());
  REQUIRE(messaging::rml_code(*f.log.supervisor_exit) == errc::restart_intensity_exceeded);
  // Every instance it started has exited with it: no child outlives its supervisor.
  REQUIRE(f.log.exits.size() == f.log.instances["worker"].size());
}

TEST_CASE("a dynamic supervisor backs off restarts and bounds its children") {
  auto spec = pool_spec();
  spec.intensity = 10;
  spec.backoff_initial = 20ms;
  spec.backoff_max = 40ms;
  spec.children_max = 2;
  dynamic_fixture f(spec);
  auto first = f.start_child();
  f.start_child();
  auto third = f.ask<caf::actor>(f.supervisor, start_child_atom::value);
  REQUIRE(messaging::rml_code(*third.second) == errc::overloaded);
  caf::anon_send_exit(first, caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(f.log.instances["worker"].size() == 2);  // not at once: backoff
  f.scheduler->advance_time(caf::timespan(20ms));
  f.scheduler->run();
  REQUIRE(f.log.instances["worker"].size() == 3);
  REQUIRE(f.replaced.size() == 1);
}

TEST_CASE("dynamic supervisor specs are checked with messages naming the field") {
  auto spec = pool_spec();
  spec.start = nullptr;
  REQUIRE(validate(spec).error().message() == "supervisor 'pool': no start function");
  spec = pool_spec();
  spec.children_max = 0;
  REQUIRE(validate(spec).error().message() == "supervisor 'pool': children_max must be in [1, 1024], got 0");
}
