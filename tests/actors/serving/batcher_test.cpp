// Dynamic batching, under CAF's test_coordinator: batches close when full, when the queue
// delay expires, under deadline pressure and when the replica is free, each counted by
// reason; requests are served earliest deadline first and each gets exactly its own rows;
// expired requests get deadline errors and are never computed; beyond the queue bound
// requests are refused at once; the adaptive mode grows and shrinks the batch size; settings
// change at run time.
#include "actors/serving/batcher.hpp"
#include "actors/serving/replica.hpp"
#include "messaging/trace.hpp"
#include "tests/actor_fixture.hpp"

#include <deque>

using namespace rml;
using namespace rml::messaging;
using namespace std::chrono_literals;

namespace {
constexpr std::uint32_t features = 2;

/// What the fake replica saw: rows per batch, and the first feature of every row in order.
struct replica_log {
  std::vector<std::uint32_t> batch_rows;
  std::vector<float> first_features;
};

/// Answers a batch with, per row, probability [row marker, 1 − marker] where the marker is
/// the row's first feature: a request gets its rows back only if splitting is right.
actors::serving_actor::behavior_type fake_replica(actors::serving_actor::pointer, replica_log* log) {
  return {
      [log](predict_request& request) {
        predict_reply reply{request.request_id, 7, request.rows, 2, {}, {}};
        log->batch_rows.push_back(request.rows);
        for (std::uint32_t row = 0; row < request.rows; ++row) {
          const float marker = request.features.values()[row * features];
          log->first_features.push_back(marker);
          reply.probabilities.values.push_back(marker);
          reply.probabilities.values.push_back(1 - marker);
          reply.top_classes.push_back(std::int32_t(row));
        }
        return reply;
      },
      [](model_snapshot&) {},
      [](status_atom) { return replica_status{}; },
  };
}

predict_request request_of(std::uint64_t id, float marker, std::uint32_t rows = 1, std::int64_t deadline_us = 0) {
  predict_request request;
  request.request_id = id;
  request.rows = rows;
  request.deadline_us = deadline_us;
  for (std::uint32_t row = 0; row < rows; ++row) {
    request.features.values().push_back(marker + float(row) * 0.01f);
    request.features.values().push_back(0);
  }
  return request;
}

struct batcher_fixture : test::actor_fixture {
  replica_log seen;
  actors::batcher_actor batcher;
  std::map<std::uint64_t, predict_reply> replies;
  std::map<std::uint64_t, caf::error> errors;

  explicit batcher_fixture(batching_settings settings) {
    actors::batcher_options options;
    options.settings = settings;
    options.features = features;
    options.spawn_replica = [this](caf::actor_system& sys) { return sys.spawn(fake_replica, &seen); };
    options.telemetry = telemetry;
    batcher = hold(actors::spawn_batcher(*system, options));
    scheduler->run();  // the pool starts the replicas
  }
  ~batcher_fixture() {
    for (auto& actor : keep_alive) caf::anon_send_exit(actor, caf::exit_reason::kill);
    scheduler->run();
  }

  /// Sends without running the scheduler, so that several requests queue together.
  void send(predict_request request) {
    auto target = batcher;
    auto* ok = &replies;
    auto* failed = &errors;
    const auto id = request.request_id;
    hold(system->spawn([target, request, ok, failed, id](caf::event_based_actor* self) {
      self->request(target, caf::infinite, request)
          .then([ok](predict_reply& reply) { (*ok)[reply.request_id] = reply; },
                [failed, id](caf::error& failure) { (*failed)[id] = failure; });
    }));
  }

  lane_status status() { return *ask<lane_status>(batcher, status_atom::value).first; }
};
}  // namespace

TEST_CASE("a full batch closes at once and each request gets exactly its own rows") {
  batching_settings settings;
  settings.batch_rows_max = 4;
  settings.queue_delay_max_us = 10'000;
  batcher_fixture f(settings);
  f.send(request_of(1, 0.1f, 1));
  f.send(request_of(2, 0.2f, 2));
  f.send(request_of(3, 0.3f, 1));
  f.scheduler->run();
  REQUIRE(f.seen.batch_rows == std::vector<std::uint32_t>{4});
  REQUIRE(f.replies.size() == 3);
  REQUIRE(f.replies[2].rows == 2);
  REQUIRE(f.replies[2].probabilities.values[0] == Approx(0.2f));
  REQUIRE(f.replies[2].probabilities.values[2] == Approx(0.21f));
  REQUIRE(f.replies[3].probabilities.values[0] == Approx(0.3f));
  REQUIRE(f.replies[1].model_version == 7);
  REQUIRE(f.status().closed_full == 1);
}

TEST_CASE("a partial batch closes when the queue delay expires") {
  batching_settings settings;
  settings.batch_rows_max = 8;
  settings.queue_delay_max_us = 500;
  batcher_fixture f(settings);
  f.send(request_of(1, 0.1f));
  f.send(request_of(2, 0.2f));
  f.scheduler->run();
  REQUIRE(f.seen.batch_rows.empty());
  f.scheduler->advance_time(caf::timespan(500us));
  f.scheduler->run();
  REQUIRE(f.seen.batch_rows == std::vector<std::uint32_t>{2});
  REQUIRE(f.replies.size() == 2);
  REQUIRE(f.status().closed_delay_expired == 1);
}

TEST_CASE("requests are served earliest deadline first, expired ones are never computed") {
  batching_settings settings;
  settings.batch_rows_max = 1;
  settings.queue_delay_max_us = 100;
  batcher_fixture f(settings);
  f.scheduler->advance_time(caf::timespan(10ms));
  const std::int64_t now = actors::actor_clock_us(*f.system);
  // The first request occupies the replica; the rest queue and leave in deadline order.
  f.send(request_of(1, 0.1f, 1, now + 100'000));
  f.send(request_of(2, 0.2f, 1, now + 90'000));
  f.send(request_of(3, 0.3f, 1, now + 50'000));
  f.send(request_of(4, 0.4f, 1, now + 70'000));
  f.send(request_of(5, 0.5f, 1, now - 1));  // already late
  f.scheduler->run();
  REQUIRE(f.replies.size() == 4);
  REQUIRE(rml_code(f.errors[5]) == errc::deadline_exceeded);
  REQUIRE(std::find(f.seen.first_features.begin(), f.seen.first_features.end(), 0.5f) == f.seen.first_features.end());
  REQUIRE(f.seen.first_features == std::vector<float>{0.1f, 0.3f, 0.4f, 0.2f});
  REQUIRE(f.status().closed_replica_free >= 1);
}

TEST_CASE("a close deadline closes a partial batch at once") {
  batching_settings settings;
  settings.batch_rows_max = 8;
  settings.queue_delay_max_us = 5'000;
  batcher_fixture f(settings);
  f.send(request_of(1, 0.1f, 1, actors::actor_clock_us(*f.system) + 1'000));
  f.scheduler->run();
  REQUIRE(f.seen.batch_rows == std::vector<std::uint32_t>{1});
  REQUIRE(f.status().closed_deadline_pressure == 1);
}

TEST_CASE("beyond the queue bound requests are refused overloaded, malformed ones by name") {
  batching_settings settings;
  settings.batch_rows_max = 100;
  settings.queue_delay_max_us = 1'000'000;
  settings.queue_requests_max = 3;
  batcher_fixture f(settings);
  for (std::uint64_t id = 1; id <= 5; ++id) f.send(request_of(id, 0.1f));
  auto wrong = request_of(9, 0.1f);
  wrong.features.values().pop_back();
  f.send(wrong);
  f.scheduler->run();
  REQUIRE(rml_code(f.errors[4]) == errc::overloaded);
  REQUIRE(rml_code(f.errors[5]) == errc::overloaded);
  REQUIRE(describe(f.errors[9]) == "request 9: 1 values for 1 rows of 2 features");
  f.scheduler->advance_time(caf::timespan(1s));
  f.scheduler->run();
  REQUIRE(f.replies.size() == 3);
}

TEST_CASE("the adaptive mode grows the batch within the objective and halves it beyond") {
  batching_settings settings;
  settings.batch_rows_max = 64;
  settings.queue_delay_max_us = 100;
  settings.adaptive = true;
  settings.latency_objective_us = 1'000;
  batcher_fixture f(settings);
  REQUIRE(f.status().batch_rows == 1);
  for (std::uint64_t id = 1; id <= 40; ++id) {
    f.send(request_of(id, 0.1f));
    f.scheduler->run();
    f.scheduler->advance_time(caf::timespan(100us));
    f.scheduler->run();
  }
  const double grown = f.status().batch_rows;
  REQUIRE(grown > 1);
  // Batches answered in zero virtual time meet any objective; a negative one none: halve.
  settings.latency_objective_us = -1;
  caf::anon_send(f.batcher, settings);
  f.send(request_of(100, 0.1f));
  f.scheduler->run();
  f.scheduler->advance_time(caf::timespan(100us));
  f.scheduler->run();
  REQUIRE(f.status().batch_rows <= std::max(1.0, std::floor(grown / 2)));
  REQUIRE(f.errors.empty());
}

// ---- The replica pool: routing, crashes, autoscaling --------------------------------------

namespace {
using done_atom = caf::atom_constant<caf::atom("done")>;

/// What one fake replica of a pool did, and how it should misbehave.
struct pool_replica_log {
  std::vector<std::uint32_t> batches_by_replica = std::vector<std::uint32_t>(16, 0);
  std::uint32_t spawned = 0;
  /// The replica spawned n-th (1-based) crashes on this batch (1-based); 0: never.
  std::map<std::uint32_t, std::uint32_t> crash_on_batch;
  /// Every replica crashes on its first batch.
  bool always_crash = false;
  /// The replica spawned n-th hangs on this batch: never answers, never exits.
  std::map<std::uint32_t, std::uint32_t> hang_on_batch;
  /// Virtual time each batch takes (0: answers at once).
  caf::timespan service_time{0};
};

struct slow_replica_state {
  std::deque<std::pair<caf::typed_response_promise<predict_reply>, predict_request>> pending;
  std::uint32_t batches = 0;
};

/// Answers like fake_replica, after `service_time`; crashes when told to.
actors::serving_actor::behavior_type pool_replica(actors::serving_actor::stateful_pointer<slow_replica_state> self,
                                                  pool_replica_log* log) {
  const std::uint32_t ordinal = ++log->spawned;
  auto answer = [](const predict_request& request) {
    predict_reply reply{request.request_id, 7, request.rows, 2, {}, {}};
    for (std::uint32_t row = 0; row < request.rows; ++row) {
      const float marker = request.features.at(row * features);
      reply.probabilities.values.push_back(marker);
      reply.probabilities.values.push_back(1 - marker);
      reply.top_classes.push_back(0);
    }
    return reply;
  };
  self->set_default_handler([self, answer](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (!view.content().match_elements<done_atom>() || self->state.pending.empty()) return caf::sec::unexpected_message;
    auto [promise, request] = std::move(self->state.pending.front());
    self->state.pending.pop_front();
    promise.deliver(answer(request));
    return caf::message{};
  });
  return {
      [self, log, ordinal, answer](predict_request& request) -> caf::result<predict_reply> {
        const std::uint32_t batch = ++self->state.batches;
        ++log->batches_by_replica[ordinal];
        auto crash = log->crash_on_batch.find(ordinal);
        if (log->always_crash || (crash != log->crash_on_batch.end() && crash->second == batch)) {
          // Dies holding the batch: no answer ever comes from this replica.
          auto promise = self->make_response_promise<predict_reply>();
          self->quit(make_error(errc::invalid_argument, "injected crash"));
          return promise;
        }
        if (auto hang = log->hang_on_batch.find(ordinal); hang != log->hang_on_batch.end() && hang->second == batch) {
          return self->make_response_promise<predict_reply>();
        }
        if (log->service_time == caf::timespan{0}) return answer(request);
        auto promise = self->make_response_promise<predict_reply>();
        self->state.pending.emplace_back(promise, std::move(request));
        caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), log->service_time, done_atom::value);
        return promise;
      },
      [](model_snapshot&) {},
      [](status_atom) { return replica_status{}; },
  };
}

struct pool_fixture : test::actor_fixture {
  pool_replica_log log;
  actors::batcher_actor batcher;
  std::map<std::uint64_t, int> answers;  // deliveries per request id
  std::map<std::uint64_t, predict_reply> replies;
  std::map<std::uint64_t, caf::error> errors;

  pool_fixture(batching_settings settings, actors::replica_pool_settings pool, std::string lane) {
    actors::batcher_options options;
    options.settings = settings;
    options.features = features;
    options.pool = pool;
    options.lane = std::move(lane);
    options.spawn_replica = [this](caf::actor_system& sys) { return sys.spawn(pool_replica, &log); };
    options.telemetry = telemetry;
    batcher = hold(actors::spawn_batcher(*system, options));
    scheduler->run();  // the pool starts the replicas
  }

  void send(predict_request request) {
    auto target = batcher;
    const auto id = request.request_id;
    hold(system->spawn([this, target, request, id](caf::event_based_actor* self) {
      self->request(target, caf::infinite, request)
          .then(
              [this](predict_reply& reply) {
                ++answers[reply.request_id];
                replies[reply.request_id] = reply;
              },
              [this, id](caf::error& failure) {
                ++answers[id];
                errors[id] = failure;
              });
    }));
  }

  lane_status status() { return *ask<lane_status>(batcher, status_atom::value).first; }

  void run_for(caf::timespan total, caf::timespan step) {
    for (caf::timespan passed{0}; passed < total; passed += step) {
      scheduler->advance_time(step);
      scheduler->run();
    }
  }
};

}  // namespace

TEST_CASE("batches go to the replica with the fewest outstanding") {
  batching_settings settings;
  settings.batch_rows_max = 1;
  actors::replica_pool_settings pool;
  pool.replicas_min = pool.replicas_max = 2;
  pool_fixture f(settings, pool, "routing");
  f.log.service_time = caf::timespan(std::chrono::milliseconds(1));
  for (std::uint64_t id = 1; id <= 4; ++id) f.send(request_of(id, 0.1f * float(id)));
  f.scheduler->run();
  // Both replicas hold one batch each: the other two wait for the first free one.
  REQUIRE(f.log.batches_by_replica[1] == 1);
  REQUIRE(f.log.batches_by_replica[2] == 1);
  REQUIRE(f.status().batches_outstanding == 2);
  f.run_for(caf::timespan(std::chrono::milliseconds(5)), caf::timespan(std::chrono::milliseconds(1)));
  REQUIRE(f.log.batches_by_replica[1] == 2);
  REQUIRE(f.log.batches_by_replica[2] == 2);
  REQUIRE(f.replies.size() == 4);
  REQUIRE(f.replies[3].probabilities.values[0] == Approx(0.3f));
}

TEST_CASE("a replica that crashes mid-batch is restarted and each of its requests is answered exactly once") {
  batching_settings settings;
  settings.batch_rows_max = 2;
  settings.queue_delay_max_us = 100;
  actors::replica_pool_settings pool;
  pool.replicas_min = pool.replicas_max = 2;
  pool_fixture f(settings, pool, "crash");
  f.log.crash_on_batch[1] = 2;  // the first replica dies holding its second batch
  f.log.service_time = caf::timespan(std::chrono::microseconds(300));
  const std::uint64_t requests = 40;
  for (std::uint64_t id = 1; id <= requests; ++id) f.send(request_of(id, float(id) / 100.0f));
  f.run_for(caf::timespan(std::chrono::milliseconds(50)), caf::timespan(std::chrono::microseconds(100)));
  REQUIRE(f.answers.size() == requests);
  for (const auto& [id, count] : f.answers) {
    CAPTURE(id);
    REQUIRE(count == 1);
    REQUIRE(f.replies.count(id) == 1);  // an answer, not an error
    REQUIRE(f.replies[id].probabilities.values[0] == Approx(float(id) / 100.0f));
  }
  auto status = f.status();
  REQUIRE(status.replica_restarts == 1);
  REQUIRE(status.retried >= 1);
  REQUIRE(status.replicas == 2);
  REQUIRE(f.log.spawned == 3);
  REQUIRE(f.traced("batcher/model/crash", "replica_restarted") >= 1);
}

TEST_CASE("a replica that hangs past the deadline: its requests get the deadline error once, it is replaced") {
  batching_settings settings;
  settings.batch_rows_max = 1;
  actors::replica_pool_settings pool;
  pool_fixture f(settings, pool, "hang");
  f.log.hang_on_batch[1] = 1;
  const std::int64_t now_us = actors::actor_clock_us(*f.system);
  f.send(request_of(1, 0.1f, 1, now_us + 10'000));
  f.scheduler->run();
  f.run_for(caf::timespan(std::chrono::milliseconds(500)), caf::timespan(std::chrono::milliseconds(50)));
  REQUIRE(f.answers.count(1) == 0);  // not before a second past its deadline
  f.run_for(caf::timespan(std::chrono::milliseconds(1000)), caf::timespan(std::chrono::milliseconds(50)));
  REQUIRE(f.answers[1] == 1);
  REQUIRE(rml_code(f.errors[1]) == errc::deadline_exceeded);
  REQUIRE(f.log.spawned == 2);
  REQUIRE(f.traced("batcher/model/hang", "replica_hung") == 1);
  f.send(request_of(2, 0.2f));
  f.run_for(caf::timespan(std::chrono::milliseconds(10)), caf::timespan(std::chrono::milliseconds(1)));
  REQUIRE(f.replies.count(2) == 1);
  f.run_for(caf::timespan(std::chrono::milliseconds(2000)), caf::timespan(std::chrono::milliseconds(100)));
  REQUIRE(f.answers[1] == 1);  // still one answer each
  REQUIRE(f.answers[2] == 1);
}

TEST_CASE("replicas that keep crashing exhaust the restart intensity, every request still gets one answer") {
  batching_settings settings;
  settings.batch_rows_max = 1;
  actors::replica_pool_settings pool;
  pool.restarts_max = 3;
  pool.retries_max = 10;
  pool_fixture f(settings, pool, "intensity");
  f.log.always_crash = true;
  for (std::uint64_t id = 1; id <= 5; ++id) f.send(request_of(id, 0.5f));
  f.run_for(caf::timespan(std::chrono::milliseconds(10)), caf::timespan(std::chrono::milliseconds(1)));
  REQUIRE(f.answers.size() == 5);
  for (const auto& [id, count] : f.answers) REQUIRE(count == 1);
  REQUIRE(f.errors.size() == 5);
  REQUIRE(f.log.spawned == 1 + 3);
  REQUIRE(f.traced("batcher/model/intensity", "restart_intensity_exceeded") == 1);
}

TEST_CASE("autoscaling adds replicas under a sustained backlog and removes idle ones, without oscillating") {
  batching_settings settings;
  settings.batch_rows_max = 4;
  settings.queue_delay_max_us = 100;
  settings.latency_objective_us = 1'000;
  actors::replica_pool_settings pool;
  pool.replicas_min = 1;
  pool.replicas_max = 3;
  pool.scale_interval = std::chrono::milliseconds(100);
  pool.scale_up_after = 2;
  pool.scale_down_after = 3;
  pool_fixture f(settings, pool, "autoscale");
  f.log.service_time = caf::timespan(std::chrono::milliseconds(10));  // 400 rows/s per replica
  const std::uint64_t requests = 800;
  for (std::uint64_t id = 1; id <= requests; ++id) f.send(request_of(id, 0.5f));
  f.scheduler->run();
  REQUIRE(f.status().replicas == 1);
  // The backlog lasts: two looks in a row add a replica, two more add the third.
  f.run_for(caf::timespan(std::chrono::milliseconds(500)), caf::timespan(std::chrono::milliseconds(5)));
  auto busy = f.status();
  REQUIRE(busy.replicas == 3);
  REQUIRE(busy.scaled_up == 2);
  REQUIRE(busy.scaled_down == 0);
  // New replicas took queued work at once (the queue is shared: that is the rebalancing).
  REQUIRE(f.log.batches_by_replica[2] > 0);
  REQUIRE(f.log.batches_by_replica[3] > 0);
  f.run_for(caf::timespan(std::chrono::seconds(3)), caf::timespan(std::chrono::milliseconds(5)));
  REQUIRE(f.answers.size() == requests);
  REQUIRE(f.errors.empty());
  // Idle now: back to the minimum, one replica per three idle looks, never up again.
  auto idle = f.status();
  REQUIRE(idle.replicas == 1);
  REQUIRE(idle.scaled_down == 2);
  REQUIRE(idle.scaled_up == 2);
  REQUIRE(f.traced("batcher/model/autoscale", "scaled_up") == 2);
  REQUIRE(f.traced("batcher/model/autoscale", "scaled_down") == 2);
}

TEST_CASE("pool settings are checked with messages naming the field") {
  actors::batcher_options options;
  options.pool.replicas_min = 3;
  options.pool.replicas_max = 2;
  REQUIRE(actors::validate(options).error().message() == "serving lane main: replicas_max (2) is below replicas_min (3)");
  options.pool.replicas_min = 0;
  REQUIRE(actors::validate(options).error().message() == "serving lane main: replicas_min must be ≥ 1, got 0");
}

// ---- The prediction cache, with real replicas and models ------------------------------------

namespace {
predict_request image_request(std::uint64_t id, std::uint32_t rows) {
  predict_request request;
  request.request_id = id;
  request.rows = rows;
  request.top_k = 3;
  request.features.values().resize(std::size_t(rows) * 784);
  for (std::size_t index = 0; index < request.features.values().size(); ++index) request.features.values()[index] = float(index % 255);
  return request;
}
}  // namespace

TEST_CASE("the lane's prediction cache answers repeats, never across versions, and stays bounded") {
  test::actor_fixture f;
  actors::batcher_options options;
  options.lane = "cache";
  options.cache_entries_max = 2;
  auto lane = f.hold(actors::spawn_batcher(*f.system, options));
  auto status = [&] { return *f.ask<lane_status>(lane, status_atom::value).first; };
  caf::anon_send(lane, test::make_snapshot(1, "mlp", 1));
  f.scheduler->run();
  const auto first = *f.ask<predict_reply>(lane, image_request(1, 1)).first;
  const auto again = *f.ask<predict_reply>(lane, image_request(2, 1)).first;
  REQUIRE(again.request_id == 2);
  REQUIRE(again.model_version == 1);
  REQUIRE(again.probabilities == first.probabilities);
  REQUIRE(again.top_classes == first.top_classes);
  REQUIRE(again.top_classes.size() == 3);
  REQUIRE(status().cache_hits == 1);
  REQUIRE(status().cache_misses == 1);
  REQUIRE(status().batches == 1);  // the repeat never reached a replica

  // A new version: the same input is computed again, by the new model.
  caf::anon_send(lane, test::make_snapshot(2, "mlp", 2));
  f.scheduler->run();
  const auto swapped = *f.ask<predict_reply>(lane, image_request(3, 1)).first;
  REQUIRE(swapped.model_version == 2);
  REQUIRE_FALSE(swapped.probabilities == first.probabilities);
  REQUIRE(status().cache_misses == 2);

  // Bounded: three distinct inputs leave two entries.
  f.ask<predict_reply>(lane, image_request(4, 2));
  f.ask<predict_reply>(lane, image_request(5, 3));
  REQUIRE(status().cache_entries == 2);
  REQUIRE(status().cache_hit_rate() == Approx(1.0 / 5.0));
}
