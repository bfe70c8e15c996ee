// Drift's response in virtual time, against a fake serving and trainer registered under their
// names: an alarm sets shadow and asks for a retrain; a retrained version with enough shadow
// comparisons goes to canary; the canary's decision ends the loop with latest (promoted) or
// pinned to the stable version (rolled back); an operator's policy is left alone.
#include "actors/monitoring/retrain_loop.hpp"

#include "messaging/atoms.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
/// What the fake serving was told and what it reports.
struct serving_script {
  std::string policy = "latest";
  std::vector<std::string> policies_set;
  serving_status status;
  std::vector<std::uint64_t> retrains;
};

struct loop_fixture : test::actor_fixture {
  serving_script script;
  caf::actor loop;

  loop_fixture() {
    auto* seen = &script;
    auto serving = hold(system->spawn([seen](caf::event_based_actor*) -> caf::behavior {
      return {
          [seen](info_atom) {
            serving_info info;
            info.policy = seen->policy;
            info.serving_version = 4;
            return info;
          },
          [seen](status_atom) { return seen->status; },
          [seen](policy_atom, std::string& policy) {
            seen->policy = policy;
            seen->policies_set.push_back(policy);
            return policy;
          },
      };
    }));
    system->registry().put(names::serving, serving);
    auto trainer = hold(system->spawn([seen](caf::event_based_actor*) -> caf::behavior {
      return {[seen](retrain_atom, std::uint64_t events) {
        seen->retrains.push_back(events);
        return std::uint64_t(4);
      }};
    }));
    system->registry().put(names::trainer, trainer);
    actors::retrain_loop_options options;
    options.telemetry = telemetry;
    options.shadow_comparisons_min = 100;
    options.cooldown = std::chrono::milliseconds(10'000);
    loop = hold(actors::spawn_retrain_loop(*system, options));
  }
  ~loop_fixture() {
    system->registry().erase(names::serving);
    system->registry().erase(names::trainer);
  }

  void alarm(std::uint64_t training_window = 900) {
    caf::anon_send(loop, drift_alarmed{"training", "adwin", 4, 0, "detail", training_window});
    scheduler->run();
  }
  /// Lets virtual time pass in poll intervals.
  void pass(int polls = 4) {
    for (int poll = 0; poll < polls; ++poll) {
      scheduler->advance_time(caf::timespan(std::chrono::milliseconds(500)));
      scheduler->run();
    }
  }
  void shadow_has(std::uint64_t version, std::uint64_t compared) {
    script.status.lane_evaluations = {{"main", 4, 0, 0, 0}, {"shadow", version, 0, 0, 0}};
    script.status.shadow_disagree = compared;
  }
};
}  // namespace

TEST_CASE("an alarm starts a retrain in shadow, then a canary, and a promotion ends it with latest") {
  loop_fixture f;
  f.alarm(900);
  REQUIRE(f.script.policies_set == std::vector<std::string>{"shadow"});
  REQUIRE(f.script.retrains == std::vector<std::uint64_t>{900});  // ADWIN's window, above the minimum of 500
  CHECK(f.traced("monitor/retrain", "retrain_requested") == 1);
  // A second alarm while the loop runs starts nothing.
  f.alarm();
  CHECK(f.script.retrains.size() == 1);
  // The shadow still holds a version from before the retrain: no canary however many comparisons.
  f.shadow_has(4, 500);
  f.pass();
  CHECK(f.script.policies_set.size() == 1);
  // A retrained version, compared too few times, then enough.
  f.shadow_has(5, 500 + 50);
  f.pass();
  CHECK(f.script.policies_set.size() == 1);
  CHECK(f.traced("monitor/retrain", "retrain_shadow") == 1);
  f.shadow_has(5, 500 + 120);
  f.pass();
  REQUIRE(f.script.policies_set == std::vector<std::string>{"shadow", "canary:20"});
  // The canary's rule decides: promoted.
  f.script.status.canary_promoted = 1;
  f.script.status.lane_evaluations = {{"main", 5, 200, 0.9, 0}};
  f.pass();
  REQUIRE(f.script.policies_set == std::vector<std::string>{"shadow", "canary:20", "latest"});
  CHECK(f.traced("monitor/retrain", "retrain_promoted") == 1);
  const auto rendered = f.telemetry.metrics->render();
  CHECK(rendered.find("rml_retrains_total{outcome=\"promoted\"} 1") != std::string::npos);
  CHECK(rendered.find("rml_retrain_loop_state 0") != std::string::npos);
  // Within the cooldown another alarm starts nothing; after it, a new loop.
  f.alarm();
  CHECK(f.script.retrains.size() == 1);
  f.pass(21);
  f.alarm(100);
  REQUIRE(f.script.retrains.size() == 2);
  CHECK(f.script.retrains.back() == 500);  // a window shorter than the minimum replays the minimum
}

TEST_CASE("a retrained model that loses its canary leaves serving pinned to the stable version") {
  loop_fixture f;
  f.alarm();
  f.shadow_has(6, 150);
  f.pass();
  REQUIRE(f.script.policies_set.back() == "canary:20");
  f.script.status.canary_rolled_back = 1;
  f.pass();
  CHECK(f.script.policies_set.back() == "pinned:4");
  CHECK(f.traced("monitor/retrain", "retrain_rolled_back") == 1);
}

TEST_CASE("the retrain loop leaves an operator's policy alone and gives up without a decision") {
  loop_fixture f;
  f.script.policy = "canary:10";
  f.alarm();
  CHECK(f.script.policies_set.empty());
  CHECK(f.script.retrains.empty());
  CHECK(f.traced("monitor/retrain", "retrain_skipped") == 1);
  // An input-drift alarm never starts a retrain: the labels did not move.
  f.script.policy = "latest";
  caf::anon_send(f.loop, drift_alarmed{"inputs", "psi", 4, 0, "detail", 0});
  f.scheduler->run();
  CHECK(f.script.retrains.empty());
  // From latest, a loop whose candidate never comes is abandoned at the timeout (300 s).
  f.alarm();
  REQUIRE(f.script.retrains.size() == 1);
  f.pass(601);
  CHECK(f.traced("monitor/retrain", "retrain_abandoned") == 1);
  CHECK(f.script.policies_set.back() == "latest");
}
