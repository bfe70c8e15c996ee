// The router, under CAF's test_coordinator, with fake replicas whose answer is the class a
// snapshot tells them to predict: version policies (latest, pinned, a version asked by
// number, canary promotion and rollback on live accuracy, shadow comparison, the Exp3
// bandit learning from delayed feedback), graceful drain, and policy spec errors.
#include <atomic>
#include "actors/serving/router.hpp"
#include "messaging/request_ledger.hpp"
#include "messaging/trace.hpp"
#include "tests/actor_fixture.hpp"

#include <deque>

using namespace rml;
using namespace rml::messaging;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t features = 2;
using done_atom = caf::atom_constant<caf::atom("done")>;

/// A snapshot without a model: the fake replicas answer class `predicts` for every row.
model_snapshot fake_snapshot(std::uint64_t version, int predicts) {
  model_snapshot snapshot;
  snapshot.version = version;
  snapshot.metrics = {{"predicts", double(predicts)}, {"classes", 3}};
  return snapshot;
}

struct fake_replica_state {
  std::optional<model_snapshot> snapshot;
  std::deque<std::pair<caf::typed_response_promise<predict_reply>, predict_request>> pending;
};

predict_reply answer_of(const model_snapshot& snapshot, const predict_request& request) {
  const auto predicts = std::int32_t(snapshot.metrics.at("predicts"));
  predict_reply reply{request.request_id, snapshot.version, request.rows, 3, {}, {}};
  for (std::uint32_t row = 0; row < request.rows; ++row) {
    for (int c = 0; c < 3; ++c) reply.probabilities.values.push_back(c == predicts ? 0.8f : 0.1f);
    reply.top_classes.push_back(predicts);
  }
  return reply;
}

/// Answers after `service_time` (virtual) when it is non-zero.
actors::serving_actor::behavior_type version_replica(actors::serving_actor::stateful_pointer<fake_replica_state> self,
                                                     caf::timespan service_time) {
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (!view.content().match_elements<done_atom>() || self->state.pending.empty()) return caf::sec::unexpected_message;
    auto [promise, request] = std::move(self->state.pending.front());
    self->state.pending.pop_front();
    promise.deliver(answer_of(*self->state.snapshot, request));
    return caf::message{};
  });
  return {
      [self, service_time](predict_request& request) -> caf::result<predict_reply> {
        if (!self->state.snapshot) return make_error(errc::not_ready, "no model");
        if (request.features.values()[0] == 99.0f) {
          // Takes its lane down with it, holding the batch (a crash no lane can retry).
          caf::anon_send_exit(caf::actor_cast<caf::actor>(self->current_sender()), caf::exit_reason::kill);
          return self->make_response_promise<predict_reply>();
        }
        if (request.features.values()[0] == 98.0f) {
          // Tells its lane to exit (as a linked actor's death would), holding the batch.
          caf::anon_send_exit(caf::actor_cast<caf::actor>(self->current_sender()), caf::exit_reason::unhandled_exception);
          return self->make_response_promise<predict_reply>();
        }
        if (service_time == caf::timespan{0}) return answer_of(*self->state.snapshot, request);
        auto promise = self->make_response_promise<predict_reply>();
        self->state.pending.emplace_back(promise, std::move(request));
        caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), service_time, done_atom::value);
        return promise;
      },
      [self](model_snapshot& snapshot) { self->state.snapshot = snapshot; },
      [](status_atom) { return replica_status{}; },
  };
}

/// A registry that knows some versions, and keeps what serving refused.
caf::behavior fake_registry(caf::event_based_actor*, std::map<std::uint64_t, model_snapshot> stored,
                            std::shared_ptr<std::vector<model_refused>> refused) {
  return {[stored](version_atom, std::uint64_t version) -> caf::result<model_snapshot> {
            auto found = stored.find(version);
            if (found == stored.end()) return make_error(errc::not_found, "model version " + std::to_string(version) + " is not stored");
            return found->second;
          },
          [refused](model_refused& refusal) { refused->push_back(refusal); }};
}

struct router_fixture : test::actor_fixture {
  actors::router_actor router;
  std::map<std::uint64_t, predict_reply> replies;
  std::map<std::uint64_t, caf::error> errors;
  std::uint64_t next_id = 0;
  std::shared_ptr<std::vector<model_refused>> refused = std::make_shared<std::vector<model_refused>>();

  explicit router_fixture(const std::string& policy, caf::timespan service_time = caf::timespan{0},
                          std::map<std::uint64_t, model_snapshot> stored = {}, std::uint32_t feedback_min = 20,
                          bool follow_model_pointer = false,
                          std::shared_ptr<const std::atomic<std::uint64_t>> known_model_pointer = nullptr) {
    auto registry = hold(system->spawn(fake_registry, stored, refused));
    system->registry().erase(names::registry);
    system->registry().put(names::registry, registry);
    actors::router_options options;
    options.model = "fake";
    options.policy = policy;
    options.lane.features = features;
    options.lane.settings.batch_rows_max = 8;
    options.lane.settings.queue_delay_max_us = 100;
    options.lane.spawn_replica = [service_time](caf::actor_system& sys) { return sys.spawn(version_replica, service_time); };
    options.canary.feedback_min = feedback_min;
    options.canary.latency_slack_us = 1'000'000;  // virtual time: latency never decides here
    options.telemetry = telemetry;
    options.follow_model_pointer = follow_model_pointer;
    options.known_model_pointer = known_model_pointer;
    REQUIRE(actors::validate(options));
    router = hold(actors::spawn_router(*system, options));
  }

  void publish(const model_snapshot& snapshot) {
    caf::anon_send(router, snapshot);
    scheduler->run();
  }

  /// Sends one request (id returned) without waiting for its answer.
  std::uint64_t send(std::uint64_t version = 0, float first_feature = 0.5f) {
    predict_request request;
    request.request_id = ++next_id;
    request.rows = 1;
    request.model_version = version;
    request.features.values() = {first_feature, 0.5f};
    auto target = router;
    const auto id = request.request_id;
    hold(system->spawn([this, target, request, id](caf::event_based_actor* self) {
      self->request(target, caf::infinite, request)
          .then([this, id](predict_reply& reply) { replies[id] = reply; }, [this, id](caf::error& failure) { errors[id] = failure; });
    }));
    return id;
  }

  void settle() {
    scheduler->run();
    for (int step = 0; step < 20; ++step) {
      scheduler->advance_time(caf::timespan(1ms));
      scheduler->run();
    }
  }

  predict_reply predict(std::uint64_t version = 0) {
    const auto id = send(version);
    settle();
    if (errors.count(id)) FAIL("request " << id << " failed: " << describe(errors[id]));
    REQUIRE(replies.count(id) == 1);
    return replies[id];
  }

  bool feedback(std::uint64_t id, std::int32_t label) { return *ask<bool>(router, prediction_feedback{id, label}).first; }
  serving_status status() { return *ask<serving_status>(router, status_atom::value).first; }
  serving_info info() { return *ask<serving_info>(router, info_atom::value).first; }
};


}  // namespace

TEST_CASE("latest: every request goes to the newest published version") {
  router_fixture f("latest");
  REQUIRE_FALSE(f.info().ready);
  f.publish(fake_snapshot(1, 0));
  REQUIRE(f.predict().model_version == 1);
  f.publish(fake_snapshot(2, 1));
  const auto reply = f.predict();
  REQUIRE(reply.model_version == 2);
  REQUIRE(reply.top_classes == std::vector<std::int32_t>{1});
  const auto info = f.info();
  REQUIRE(info.ready);
  REQUIRE(info.serving_version == 2);
  REQUIRE(info.classes == 3);
  REQUIRE(info.policy == "latest");
}

TEST_CASE("versions move forward only: a lower one pushed is refused and reported, an explicit rollback is taken") {
  router_fixture f("latest");
  f.publish(fake_snapshot(2, 1));
  REQUIRE(f.predict().model_version == 2);
  // A stale registry (across a partition) or a reordered push: refused, said to the registry.
  f.publish(fake_snapshot(1, 0));
  REQUIRE(f.predict().model_version == 2);
  REQUIRE(f.refused->size() == 1);
  CHECK(f.refused->front().version == 1);
  CHECK(f.refused->front().reason == "version 1 is below version 2 already given to serving; versions move back only by rollback");
  // The registry's explicit rollback is taken, and the next newer version after it too.
  caf::anon_send(f.router, rollback_atom::value, fake_snapshot(1, 0));
  f.scheduler->run();
  REQUIRE(f.predict().model_version == 1);
  f.publish(fake_snapshot(3, 2));
  REQUIRE(f.predict().model_version == 3);
  REQUIRE(f.refused->size() == 1);
}

TEST_CASE("pinned: requests stay on the pinned version while newer ones are published") {
  router_fixture f("pinned:1", caf::timespan{0}, {{1, fake_snapshot(1, 0)}});
  f.publish(fake_snapshot(2, 1));
  f.settle();
  REQUIRE(f.predict().model_version == 1);
  f.publish(fake_snapshot(3, 1));
  REQUIRE(f.predict().model_version == 1);
  // Policies change at run time.
  auto changed = f.ask<std::string>(f.router, policy_atom::value, std::string("latest"));
  REQUIRE(*changed.first == "latest");
  REQUIRE(f.predict().model_version == 3);
}

TEST_CASE("a request naming a version is served by it, an unknown version is not_found") {
  router_fixture f("latest", caf::timespan{0}, {{1, fake_snapshot(1, 2)}});
  f.publish(fake_snapshot(2, 0));
  const auto old = f.predict(1);
  REQUIRE(old.model_version == 1);
  REQUIRE(old.top_classes == std::vector<std::int32_t>{2});
  REQUIRE(f.predict().model_version == 2);
  const auto id = f.send(9);
  f.settle();
  REQUIRE(rml_code(f.errors[id]) == errc::not_found);
  REQUIRE(describe(f.errors[id]) == "request 3: model version 9 cannot be served: model version 9 is not stored");
  REQUIRE(f.info().loaded_versions == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("canary: a worse candidate is rolled back on live accuracy") {
  router_fixture f("canary:30");
  f.publish(fake_snapshot(1, 0));  // stable: right for label 0
  f.publish(fake_snapshot(2, 1));  // candidate: wrong
  std::map<std::uint64_t, int> by_version;
  for (int round = 0; round < 200 && f.status().canary_rolled_back == 0; ++round) {
    const auto reply = f.predict();
    ++by_version[reply.model_version];
    f.feedback(reply.request_id, 0);
  }
  REQUIRE(by_version[2] > 0);
  REQUIRE(by_version[1] > by_version[2]);  // 30 % to the canary, roughly
  auto status = f.status();
  REQUIRE(status.canary_rolled_back == 1);
  REQUIRE(status.canary_promoted == 0);
  REQUIRE(f.traced("router/fake", "canary_rolled_back") >= 1);
  for (int request = 0; request < 20; ++request) REQUIRE(f.predict().model_version == 1);
}

TEST_CASE("canary: a candidate as good as the stable version is promoted, the next one waits its turn") {
  router_fixture f("canary:50");
  f.publish(fake_snapshot(1, 0));
  f.publish(fake_snapshot(2, 0));
  f.publish(fake_snapshot(3, 1));  // published during the evaluation: the next candidate
  for (int round = 0; round < 400 && f.status().canary_promoted == 0; ++round) {
    const auto reply = f.predict();
    f.feedback(reply.request_id, 0);
  }
  auto status = f.status();
  REQUIRE(status.canary_promoted == 1);
  REQUIRE(status.lane("main") != nullptr);
  REQUIRE(status.lane("main")->version == 2);
  REQUIRE(status.lane("canary") != nullptr);
  REQUIRE(status.lane("canary")->version == 3);
  for (int round = 0; round < 400 && f.status().canary_rolled_back == 0; ++round) {
    const auto reply = f.predict();
    f.feedback(reply.request_id, 0);
  }
  REQUIRE(f.status().canary_rolled_back == 1);
  REQUIRE(f.predict().model_version == 2);
}

TEST_CASE("shadow: the candidate sees every request, its answers are compared and never returned") {
  router_fixture f("shadow");
  f.publish(fake_snapshot(1, 0));
  f.publish(fake_snapshot(2, 1));
  for (int round = 0; round < 30; ++round) {
    const auto reply = f.predict();
    REQUIRE(reply.model_version == 1);
    REQUIRE(f.feedback(reply.request_id, 1));
  }
  auto status = f.status();
  REQUIRE(status.shadow_answers == 30);
  REQUIRE(status.shadow_disagree == 30);
  REQUIRE(status.lane("main") != nullptr);
  REQUIRE(status.lane("main")->accuracy == 0.0);
  REQUIRE(status.lane("shadow") != nullptr);
  REQUIRE(status.lane("shadow")->accuracy == 1.0);
}

TEST_CASE("bandit: Exp3 learns from delayed feedback to favour the better version") {
  router_fixture f("bandit:1,2", caf::timespan{0}, {{1, fake_snapshot(1, 1)}, {2, fake_snapshot(2, 0)}});
  f.settle();
  std::vector<std::uint64_t> unlabelled;
  for (int round = 0; round < 600; ++round) {
    unlabelled.push_back(f.predict().request_id);
    // Labels arrive 50 predictions late.
    if (unlabelled.size() > 50) {
      f.feedback(unlabelled.front(), 0);
      unlabelled.erase(unlabelled.begin());
    }
  }
  auto status = f.status();
  REQUIRE(status.lane("v2") != nullptr);
  REQUIRE(status.lane("v2")->bandit_probability > 0.85);
  REQUIRE(status.lane("v1") != nullptr);
  REQUIRE(status.lane("v1")->bandit_probability >= 0.05 / 2 - 1e-9);  // γ/K: exploration never stops
  REQUIRE_FALSE(f.feedback(999'999, 0));  // unknown ids are reported, not guessed
}

TEST_CASE("drain: admission stops, readiness turns false, every admitted request is answered") {
  router_fixture f("latest", caf::timespan(5ms));
  f.publish(fake_snapshot(1, 0));
  std::vector<std::uint64_t> admitted;
  for (int request = 0; request < 20; ++request) admitted.push_back(f.send());
  f.scheduler->run();
  std::optional<std::uint64_t> unanswered;
  auto router = f.router;
  f.hold(f.system->spawn([&unanswered, router](caf::event_based_actor* self) {
    self->request(router, caf::infinite, drain_atom::value, std::int64_t(10'000)).then([&unanswered](std::uint64_t left) { unanswered = left; });
  }));
  f.scheduler->run();
  REQUIRE_FALSE(unanswered.has_value());
  const auto late = f.send();
  f.scheduler->run();
  REQUIRE(rml_code(f.errors[late]) == errc::not_ready);
  REQUIRE_FALSE(f.info().ready);
  for (int step = 0; step < 200 && !unanswered; ++step) {
    f.scheduler->advance_time(caf::timespan(1ms));
    f.scheduler->run();
  }
  REQUIRE(unanswered == std::uint64_t{0});
  for (auto id : admitted) {
    CAPTURE(id);
    REQUIRE(f.replies.count(id) == 1);
  }
}

TEST_CASE("a lane that dies holding requests: each gets one error, the lane restarts with its version") {
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 0));
  const auto doomed = f.send(0, 99.0f);
  f.settle();
  REQUIRE(f.errors.count(doomed) == 1);
  REQUIRE(rml_code(f.errors[doomed]) == errc::not_ready);
  REQUIRE(f.replies.count(doomed) == 0);
  auto status = f.status();
  REQUIRE(status.lane_restarts == 1);
  REQUIRE(status.in_flight == 0);
  REQUIRE(f.predict().model_version == 1);
  REQUIRE(f.traced("router/fake", "lane_restarted") == 1);
  // The router hands its telemetry to its lanes: their series are in the test node's registry.
  const auto rendered = f.telemetry.metrics->render();
  REQUIRE(rendered.find("rml_lane_restarts_total{model=\"fake\"} 1") != std::string::npos);
  REQUIRE(rendered.find("rml_batch_rows_count{model=\"fake\",lane=\"main\"}") != std::string::npos);
}

/// Collects what an endpoint's request ledger hands its endpoint; the route is a number.
struct collecting_listener : ledger_listener<std::uint64_t> {
  std::map<std::uint64_t, int> answers;  // by route: how many
  std::map<std::uint64_t, caf::error> failures;
  void answered(std::vector<routed_answer<std::uint64_t>>& ready) override {
    for (auto& [route, answer] : ready) {
      ++answers[route];
      if (!answer.ok()) failures[route] = answer.failure;
    }
  }
};

/// A burst of `count` requests whose first feature is `first_feature`, routes from `first`.
ledger_intake<std::uint64_t> burst_of(std::uint64_t first, std::uint64_t count, float first_feature, std::int64_t deadline_us = 0) {
  ledger_intake<std::uint64_t> burst;
  for (std::uint64_t route = first; route < first + count; ++route) {
    predict_request request;
    request.request_id = 500 + route;
    request.rows = 1;
    request.deadline_us = deadline_us;
    request.features.values() = {first_feature, 0.5f};
    burst.requests.push_back(request);
    burst.routes.push_back(route);
  }
  return burst;
}

/// An endpoint's request ledger in front of the fixture's router (registered for it).
caf::actor ledger_for(router_fixture& f, collecting_listener& listener) {
  ledger_options options;
  options.target = caf::atom("rtserving");
  f.system->registry().put(options.target, f.router);
  return f.hold(spawn_request_ledger<std::uint64_t>(*f.system, &listener, options));
}

TEST_CASE("a lane killed holding a burst: the endpoint's ledger sees it go and fails each request once") {
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 0));
  collecting_listener listener;
  auto ledger = ledger_for(f, listener);
  caf::anon_send(ledger, burst_of(1, 8, 99.0f));  // the lane is killed: it answers nothing
  f.settle();
  REQUIRE(listener.answers.size() == 8);
  for (const auto& [ticket, count] : listener.answers) {
    CAPTURE(ticket);
    REQUIRE(count == 1);
    REQUIRE(rml_code(listener.failures.at(ticket)) == errc::not_ready);
  }
  auto status = f.status();
  REQUIRE(status.lane_restarts == 1);
  REQUIRE(status.in_flight == 0);
  REQUIRE(status.requests_at_lost_lanes == 8);
  // The restarted lane serves the next burst, through the same ledger.
  caf::anon_send(ledger, burst_of(9, 4, 0.5f));
  f.settle();
  REQUIRE(listener.answers.size() == 12);
  for (std::uint64_t route = 9; route <= 12; ++route) REQUIRE(listener.failures.count(route) == 0);
}

TEST_CASE("a lane told to exit answers what it holds itself before it goes") {
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 0));
  collecting_listener listener;
  auto ledger = ledger_for(f, listener);
  caf::anon_send(ledger, burst_of(1, 3, 98.0f));
  f.settle();
  REQUIRE(listener.answers.size() == 3);
  for (const auto& [ticket, count] : listener.answers) {
    CAPTURE(ticket);
    REQUIRE(count == 1);
    // The lane's own words, not the bridge's: it answered before it exited.
    REQUIRE(describe(listener.failures.at(ticket)).find("lane main stopped before answering") != std::string::npos);
  }
  auto status = f.status();
  REQUIRE(status.lane_restarts == 1);
  REQUIRE(status.in_flight == 0);
  REQUIRE(status.requests_at_lost_lanes == 0);
  REQUIRE(f.traced("batcher/fake/main", "lane_stopped") == 1);
}

TEST_CASE("the endpoint's ledger answers a request serving holds past its deadline, once, and drops the late answer") {
  router_fixture f("latest", caf::timespan(400ms));  // the replica takes 400 ms a batch
  f.publish(fake_snapshot(1, 0));
  collecting_listener listener;
  auto ledger = ledger_for(f, listener);
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(f.system->clock().now().time_since_epoch()).count();
  caf::anon_send(ledger, burst_of(1, 2, 0.5f, now + 10'000));  // due in 10 ms
  caf::anon_send(ledger, burst_of(3, 1, 0.5f, now + 1'000'000));  // due in 1 s: answered in time
  f.scheduler->run();
  for (int step = 0; step < 100; ++step) {  // 100 ms: past the first deadline and its 50 ms grace
    f.scheduler->advance_time(caf::timespan(1ms));
    f.scheduler->run();
  }
  REQUIRE(listener.answers.size() == 2);
  for (std::uint64_t route = 1; route <= 2; ++route) {
    REQUIRE(rml_code(listener.failures.at(route)) == errc::deadline_exceeded);
    REQUIRE(describe(listener.failures.at(route)).find("no answer by its deadline") != std::string::npos);
  }
  for (int step = 0; step < 100; ++step) {  // the replica's answers come at 400 ms
    f.scheduler->advance_time(caf::timespan(10ms));
    f.scheduler->run();
  }
  REQUIRE(listener.answers.size() == 3);
  for (const auto& [route, count] : listener.answers) {
    CAPTURE(route);
    REQUIRE(count == 1);
  }
  REQUIRE(listener.failures.count(3) == 0);
}

TEST_CASE("requests that arrive while the lanes' supervisor starts a lane wait for it and are answered") {
  router_fixture f("latest");
  // Nothing has run yet: the router's start_child for its main lane is unanswered.
  caf::anon_send(f.router, fake_snapshot(4, 2));
  const auto first = f.send();
  const auto second = f.send();
  f.settle();
  REQUIRE(f.errors.empty());
  REQUIRE(f.replies.at(first).model_version == 4);
  REQUIRE(f.replies.at(second).top_classes == std::vector<std::int32_t>{2});
  REQUIRE(f.status().lane_restarts == 0);
}

TEST_CASE("version policy specs are parsed, and bad ones refused by name") {
  REQUIRE(actors::to_string(*actors::parse_version_policy("canary:5")) == "canary:5");
  REQUIRE(actors::parse_version_policy("bandit:3,4,9")->arms == std::vector<std::uint64_t>{3, 4, 9});
  REQUIRE(actors::parse_version_policy("pinned:0").error().message() == "version policy 'pinned:0': expected pinned:<version ≥ 1>");
  REQUIRE(actors::parse_version_policy("canary:100").error().message() == "version policy 'canary:100': expected canary:<percent in (0, 100)>");
  REQUIRE(actors::parse_version_policy("bandit:3").error().message() == "version policy 'bandit:3': a bandit needs at least two versions");
  REQUIRE(actors::parse_version_policy("newest").error().message() ==
          "version policy 'newest': unknown policy (latest, pinned:V, canary:P, shadow, bandit:V1,V2,...)");
}

TEST_CASE("a burst of requests costs actor messages per batch, not per request") {
  // Per burst: one message into serving, one to the lane and one telling the asker which lane
  // holds its requests; per batch of 8: one to the replica, its answer, the lane's answers
  // straight to the asker and its outcomes to the router. Sent one by one, the same requests
  // cost four messages each (and a batch's two).
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 0));
  constexpr std::uint64_t requests = 64;
  predict_burst burst;
  for (std::uint64_t id = 1; id <= requests; ++id) {
    predict_request request;
    request.request_id = 1000 + id;
    request.rows = 1;
    request.features.values() = {0.5f, 0.5f};
    burst.requests.push_back({id, request});
  }
  std::map<std::uint64_t, int> answers;
  std::map<std::uint64_t, std::uint64_t> request_ids;
  std::vector<std::uint64_t> routed;
  auto router = f.router;
  f.hold(f.system->spawn([&answers, &request_ids, &routed, burst, router](caf::event_based_actor* self) -> caf::behavior {
    self->send(router, burst);
    return {[&answers, &request_ids](predict_answers& ready) {
              for (auto& answer : ready.answers) {
                ++answers[answer.ticket];
                request_ids[answer.ticket] = answer.ok() ? answer.reply.request_id : 0;
              }
            },
            [&routed](burst_routed& where) { routed.insert(routed.end(), where.tickets.begin(), where.tickets.end()); }};
  }));
  const std::size_t messages = f.scheduler->run();
  REQUIRE(answers.size() == requests);
  for (const auto& [ticket, count] : answers) {
    CAPTURE(ticket);
    REQUIRE(count == 1);
    REQUIRE(request_ids[ticket] == 1000 + ticket);
  }
  REQUIRE(routed.size() == requests);  // decided once: all of them to the main lane
  CAPTURE(messages);
  REQUIRE(messages <= 4 + 4 * requests / 8);
  REQUIRE(f.status().in_flight == 0);
}

TEST_CASE("lanes that keep crashing exhaust the router's restart intensity, every request still gets one answer") {
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 0));
  caf::error exit_reason;
  auto router = f.router;
  f.hold(f.system->spawn([router, &exit_reason](caf::event_based_actor* self) -> caf::behavior {
    self->monitor(router);
    self->set_down_handler([&exit_reason](caf::down_msg& down) { exit_reason = down.reason; });
    return {[](int) {}};
  }));
  f.scheduler->run();
  std::vector<std::uint64_t> doomed;
  // The default intensity is 10 restarts in 10 s: the eleventh crash ends the router.
  for (int crash = 0; crash < 11; ++crash) {
    doomed.push_back(f.send(0, 99.0f));
    f.settle();
  }
  for (auto id : doomed) {
    CAPTURE(id);
    REQUIRE(f.errors.count(id) + f.replies.count(id) == 1);
  }
  REQUIRE(rml_code(exit_reason) == errc::restart_intensity_exceeded);
  REQUIRE(f.traced("router/fake", "restart_intensity_exceeded") == 1);
}

TEST_CASE("requests from another node are admitted at most once, re-based onto this node's clock, a stale sender refused") {
  router_fixture f("latest");
  f.publish(fake_snapshot(1, 2));
  const auto now = std::chrono::duration_cast<std::chrono::microseconds>(f.scheduler->clock().now().time_since_epoch()).count();
  // The sender's actor clock (steady, since its boot) is far ahead of this one: taken as
  // they are, its deadlines would hold requests here for days, and a past one would not show.
  const std::int64_t sender_now = now + 1'000'000'000'000;
  auto burst_of = [&](std::vector<std::uint64_t> tickets, std::int64_t incarnation, std::int64_t epoch, std::int64_t deadline_in_us) {
    predict_burst burst;
    burst.origin = {"edge/12", incarnation, epoch, sender_now};
    for (auto ticket : tickets) {
      predict_request request;
      request.request_id = 500 + ticket;
      request.rows = 1;
      request.deadline_us = sender_now + deadline_in_us;
      request.features.values() = {0.5f, 0.5f};
      burst.requests.push_back({ticket, request});
    }
    return burst;
  };
  std::map<std::uint64_t, std::vector<ticketed_answer>> answers;
  auto router = f.router;
  auto sender = f.hold(f.system->spawn([&answers](caf::event_based_actor*) -> caf::behavior {
    return {[&answers](predict_answers& ready) {
              for (auto& answer : ready.answers) answers[answer.ticket].push_back(answer);
            },
            [](burst_routed&) {}};
  }));
  auto send_from_edge = [&](predict_burst burst) {
    caf::send_as(sender, router, std::move(burst));
    f.settle();
  };
  send_from_edge(burst_of({1, 2}, 5, 3, 1'000'000));
  REQUIRE(answers[1].size() == 1);
  REQUIRE(answers[1][0].ok());
  REQUIRE(answers[1][0].reply.top_classes == std::vector<std::int32_t>{2});
  REQUIRE(answers[2].size() == 1);
  REQUIRE(answers[2][0].ok());

  // Ticket 2 again (BASP delivering a copy): dropped, its first answer stands; 3 is new.
  send_from_edge(burst_of({2, 3}, 5, 3, 1'000'000));
  REQUIRE(answers[2].size() == 1);
  REQUIRE(answers[3].size() == 1);
  REQUIRE(answers[3][0].ok());
  REQUIRE(f.telemetry.metrics->get_counter("rml_requests_duplicate_dropped_total", "", {{"model", "fake"}}).value() == 1);

  // An older incarnation of the node (its predecessor, still cut off somewhere): refused.
  send_from_edge(burst_of({4}, 4, 3, 1'000'000));
  REQUIRE(answers[4].size() == 1);
  REQUIRE(rml_code(answers[4][0].failure) == errc::unauthorized);
  REQUIRE_THAT(describe(answers[4][0].failure), Catch::Matchers::Contains("incarnation 4"));

  // A controller epoch below the highest seen (the sender follows a deposed controller).
  send_from_edge(burst_of({5}, 5, 2, 1'000'000));
  REQUIRE(answers[5].size() == 1);
  REQUIRE(rml_code(answers[5][0].failure) == errc::unauthorized);
  REQUIRE_THAT(describe(answers[5][0].failure), Catch::Matchers::Contains("has seen epoch 3"));

  // Past its deadline on the sender's own clock: answered so, not computed.
  send_from_edge(burst_of({6}, 5, 3, -1));
  REQUIRE(answers[6].size() == 1);
  CAPTURE(describe(answers[6][0].failure));
  REQUIRE(rml_code(answers[6][0].failure) == errc::deadline_exceeded);

  // A new incarnation starts afresh: its ticket 1 is a request of its own.
  send_from_edge(burst_of({1}, 6, 3, 1'000'000));
  REQUIRE(answers[1].size() == 2);
  REQUIRE(answers[1][1].ok());
  REQUIRE(f.status().in_flight == 0);
}

TEST_CASE("a router that starts on a node knowing the model pointer serves a pushed version at once, and none above it") {
  // As after its supervisor restarted it: the node has followed the pointer to 1 already.
  auto known = std::make_shared<std::atomic<std::uint64_t>>(1);
  router_fixture f("latest", caf::timespan{0}, {}, 20, true, known);
  f.publish(fake_snapshot(1, 0));
  REQUIRE(f.predict().model_version == 1);  // not refused while waiting for the node's next pass
  f.publish(fake_snapshot(2, 1));
  REQUIRE(f.predict().model_version == 1);  // 2 is above the pointer: held
}

TEST_CASE("serving that follows the cluster's model pointer takes a pushed version as the latest only once the pointer reaches it") {
  router_fixture f("latest", caf::timespan{0}, {}, 20, true);
  auto pointer_at = [&](std::uint64_t version) {
    caf::anon_send(f.router, model_pointer_atom::value, version);
    f.scheduler->run();
  };
  // Pushed by the registry, but the pointer has not reached it: no model to serve yet.
  f.publish(fake_snapshot(1, 0));
  const auto early = f.send();
  f.settle();
  REQUIRE(f.errors.count(early) == 1);
  REQUIRE(rml_code(f.errors[early]) == errc::not_ready);
  pointer_at(1);
  REQUIRE(f.predict().model_version == 1);

  // Two more pushed: held while the pointer stays; when it jumps to 3, 2 is passed over.
  f.publish(fake_snapshot(2, 1));
  f.publish(fake_snapshot(3, 2));
  REQUIRE(f.predict().model_version == 1);
  pointer_at(3);
  const auto reply = f.predict();
  REQUIRE(reply.model_version == 3);
  REQUIRE(reply.top_classes == std::vector<std::int32_t>{2});

  // A pointer told late, lower than one already told, changes nothing.
  pointer_at(2);
  REQUIRE(f.predict().model_version == 3);

  // The registry's explicit rollback goes below the pointer by design: taken at once.
  caf::anon_send(f.router, rollback_atom::value, fake_snapshot(1, 0));
  f.scheduler->run();
  REQUIRE(f.predict().model_version == 1);
}
