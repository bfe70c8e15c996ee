// Dynamic batching, under CAF's test_coordinator: batches close when full, when the queue
// delay expires, under deadline pressure and when the replica is free, each counted by
// reason; requests are served earliest deadline first and each gets exactly its own rows;
// expired requests get deadline errors and are never computed; beyond the queue bound
// requests are refused at once; the adaptive mode grows and shrinks the batch size; settings
// change at run time.
#include "actors/serving/batcher.hpp"
#include "actors/serving/replica.hpp"
#include "tests/actor_fixture.hpp"

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
          const float marker = request.features.values[row * features];
          log->first_features.push_back(marker);
          reply.probabilities.values.push_back(marker);
          reply.probabilities.values.push_back(1 - marker);
          reply.top_classes.push_back(std::int32_t(row));
        }
        return reply;
      },
      [](model_snapshot&) {},
      [](status_atom) { return std::map<std::string, double>{}; },
  };
}

predict_request request_of(std::uint64_t id, float marker, std::uint32_t rows = 1, std::int64_t deadline_us = 0) {
  predict_request request;
  request.request_id = id;
  request.rows = rows;
  request.deadline_us = deadline_us;
  for (std::uint32_t row = 0; row < rows; ++row) {
    request.features.values.push_back(marker + float(row) * 0.01f);
    request.features.values.push_back(0);
  }
  return request;
}

struct batcher_fixture : test::actor_fixture {
  replica_log seen;
  actors::batcher_actor batcher;
  std::map<std::uint64_t, predict_reply> replies;
  std::map<std::uint64_t, caf::error> errors;

  explicit batcher_fixture(batching_settings settings) {
    auto replica = hold(system->spawn(fake_replica, &seen));
    system->registry().put(names::serving, replica);
    batcher = hold(actors::spawn_batcher(*system, {settings, features, names::serving}));
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

  std::map<std::string, double> status() { return *ask<std::map<std::string, double>>(batcher, status_atom::value).first; }
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
  REQUIRE(f.status()["batches_closed_full"] == 1);
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
  REQUIRE(f.status()["batches_closed_delay_expired"] == 1);
}

TEST_CASE("requests are served earliest deadline first; expired ones are never computed") {
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
  REQUIRE(f.status()["batches_closed_replica_free"] >= 1);
}

TEST_CASE("a close deadline closes a partial batch at once") {
  batching_settings settings;
  settings.batch_rows_max = 8;
  settings.queue_delay_max_us = 5'000;
  batcher_fixture f(settings);
  f.send(request_of(1, 0.1f, 1, actors::actor_clock_us(*f.system) + 1'000));
  f.scheduler->run();
  REQUIRE(f.seen.batch_rows == std::vector<std::uint32_t>{1});
  REQUIRE(f.status()["batches_closed_deadline_pressure"] == 1);
}

TEST_CASE("beyond the queue bound requests are refused overloaded, malformed ones by name") {
  batching_settings settings;
  settings.batch_rows_max = 100;
  settings.queue_delay_max_us = 1'000'000;
  settings.queue_requests_max = 3;
  batcher_fixture f(settings);
  for (std::uint64_t id = 1; id <= 5; ++id) f.send(request_of(id, 0.1f));
  auto wrong = request_of(9, 0.1f);
  wrong.features.values.pop_back();
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
  REQUIRE(f.status()["batch_rows"] == 1);
  for (std::uint64_t id = 1; id <= 40; ++id) {
    f.send(request_of(id, 0.1f));
    f.scheduler->run();
    f.scheduler->advance_time(caf::timespan(100us));
    f.scheduler->run();
  }
  const double grown = f.status()["batch_rows"];
  REQUIRE(grown > 1);
  // Batches answered in zero virtual time meet any objective; a negative one none: halve.
  settings.latency_objective_us = -1;
  caf::anon_send(f.batcher, settings);
  f.send(request_of(100, 0.1f));
  f.scheduler->run();
  f.scheduler->advance_time(caf::timespan(100us));
  f.scheduler->run();
  REQUIRE(f.status()["batch_rows"] <= std::max(1.0, std::floor(grown / 2)));
  REQUIRE(f.errors.empty());
}
