// The whole pipeline in one process on a small stream (dataset source, no sockets), under
// CAF's deterministic test_coordinator: it trains on every acked event and publishes models
// that serving answers with; the same seed twice gives identical metrics and identical
// weights; and a trainer killed mid-stream is restarted, recovers from its checkpoint and
// still trains on every acked event while serving keeps answering.
#include <filesystem>
#include <unistd.h>

#include "tests/actor_fixture.hpp"
#include "topologies/default_topology.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
constexpr std::int64_t stream_rows = 4096;

std::shared_ptr<const data::dataset> small_stream() {
  static std::shared_ptr<const data::dataset> shared = [] {
    auto train = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::train, 1.0f);
    REQUIRE(train.ok());
    auto subset = std::make_shared<data::dataset>();
    subset->features = train->features.rows(0, stream_rows).clone();
    subset->labels.assign(train->labels.begin(), train->labels.begin() + stream_rows);
    subset->classes = 10;
    subset->source = "fashion-mnist[0, 4096)";
    return subset;
  }();
  return shared;
}

struct pipeline_fixture : test::actor_fixture {
  std::filesystem::path directory;
  topologies::running_pipeline pipeline;
  std::vector<child_restarted> restarts;

  /// `events_per_second` > 0 paces the source in virtual time, so that the stream is still
  /// flowing when a test intervenes.
  explicit pipeline_fixture(const std::string& name, double events_per_second = 0) {
    directory = std::filesystem::temp_directory_path() / ("rml_pipeline_test_" + std::to_string(::getpid()) + "_" + name);
    std::filesystem::remove_all(directory);
    topologies::pipeline_options options;
    options.data_dir = directory.string();
    options.train = small_stream();
    options.source.seed = 7;
    options.source.events_per_second = events_per_second;
    options.trainer.seed = 7;
    options.trainer.checkpoint_events = 640;
    options.trainer.publish_steps = 8;
    auto* sink = &restarts;
    options.restart_reports = hold(system->spawn([sink](caf::event_based_actor*) -> caf::behavior {
      return {[sink](child_restarted& report) { sink->push_back(report); }};
    }));
    auto started = topologies::start_pipeline(*system, options);
    REQUIRE(started.ok());
    pipeline = started.value();
    hold(pipeline.supervisor);
  }
  ~pipeline_fixture() {
    caf::anon_send_exit(pipeline.supervisor, caf::exit_reason::user_shutdown);
    scheduler->run();
    pipeline.log.reset();
    std::filesystem::remove_all(directory);
  }

  template <class Handle>
  Handle component(caf::atom_value name) {
    return system->registry().get<Handle>(name);
  }

  trainer_status trainer_now() {
    auto answer = ask<trainer_status>(component<actors::trainer_actor>(names::trainer), status_atom::value);
    if (answer.second) FAIL("the trainer did not answer: " << describe(*answer.second));
    return *answer.first;
  }

  /// Runs in virtual time until the trainer has taken `events` events, or gives up.
  void run_until_trained(std::uint64_t events) {
    for (int round = 0; round < 20000; ++round) {
      scheduler->run();
      if (trainer_now().next_offset >= events) return;
      scheduler->advance_time(caf::timespan(std::chrono::milliseconds(2)));
    }
    FAIL("the pipeline stalled at offset " << trainer_now().next_offset);
  }
};
}  // namespace

TEST_CASE("the pipeline trains on every acked event and serving answers with what it published") {
  pipeline_fixture f("end_to_end");
  f.run_until_trained(stream_rows);
  auto source = f.ask<source_status>(f.component<actors::source_actor>(names::source), status_atom::value).first;
  REQUIRE(source->finished);
  REQUIRE(source->events_acked == stream_rows);
  REQUIRE(f.pipeline.log->end_offset() == stream_rows);
  const auto status = f.trainer_now();
  REQUIRE(status.events_trained == stream_rows);
  REQUIRE(status.published_version >= 3);
  INFO("rolling accuracy " << status.rolling_accuracy);
  REQUIRE(status.rolling_accuracy > 0.6);

  predict_request request;
  request.request_id = 1;
  request.rows = 1;
  const auto& test_row = small_stream()->features;
  request.features.values().assign(test_row.data(), test_row.data() + 784);
  auto reply = f.ask<predict_reply>(f.component<actors::serving_actor>(names::serving), request);
  REQUIRE(reply.first.has_value());
  REQUIRE(reply.first->model_version == status.published_version);
  // Monitoring heard from the trainer and from ingest.
  auto report = *f.ask<actors::metrics_report>(f.component<actors::monitor_actor>(names::monitor), status_atom::value).first;
  REQUIRE(report["trainer"]["events_trained"] > 0);
  REQUIRE(report["ingest"]["events_appended"] > 0);
}

TEST_CASE("the same seed gives identical metrics and identical weights") {
  std::vector<trainer_status> statuses;
  std::vector<std::vector<char>> weights;
  for (int run = 0; run < 2; ++run) {
    pipeline_fixture f("determinism_" + std::to_string(run));
    f.run_until_trained(stream_rows);
    statuses.push_back(f.trainer_now());
    weights.push_back(f.ask<model_snapshot>(f.component<actors::trainer_actor>(names::trainer), snapshot_atom::value).first->model_file);
  }
  REQUIRE(statuses[0] == statuses[1]);
  REQUIRE(weights[0] == weights[1]);
}

TEST_CASE("a trainer killed mid-stream recovers and no acked event is lost") {
  pipeline_fixture f("trainer_crash", 100'000);
  f.run_until_trained(1000);
  const auto before = f.trainer_now();
  REQUIRE(before.next_offset < stream_rows);
  caf::anon_send_exit(f.component<actors::trainer_actor>(names::trainer), caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(f.restarts.size() == 1);
  REQUIRE(f.restarts[0].child == "trainer");
  // Serving keeps answering while the trainer recovers.
  predict_request request;
  request.request_id = 2;
  request.rows = 1;
  request.features.values().assign(784, 100.0f);
  REQUIRE(f.ask<predict_reply>(f.component<actors::serving_actor>(names::serving), request).first.has_value());
  // Restored from its last checkpoint (every 640 events), not from scratch.
  const auto restored = f.trainer_now();
  REQUIRE(restored.next_offset >= 640);
  REQUIRE(restored.next_offset <= before.next_offset);
  f.run_until_trained(stream_rows);
  const auto after = f.trainer_now();
  // Every acked event was trained on exactly once in the recovered history.
  REQUIRE(after.events_trained == stream_rows);
  REQUIRE(after.next_offset == stream_rows);
}

TEST_CASE("a crash of any component mid-stream is survived without losing an acked event") {
  for (caf::atom_value victim : {names::ingest, names::feature, names::registry, names::serving, names::source, names::monitor}) {
    CAPTURE(caf::to_string(victim));
    pipeline_fixture f("crash_" + caf::to_string(victim), 100'000);
    f.run_until_trained(1000);
    REQUIRE(f.trainer_now().next_offset < stream_rows);
    caf::anon_send_exit(f.component<caf::actor>(victim), caf::exit_reason::kill);
    f.scheduler->run();
    REQUIRE(f.restarts.size() == 1);
    REQUIRE(f.restarts[0].child == caf::to_string(victim));
    f.run_until_trained(stream_rows);
    auto source = f.ask<source_status>(f.component<actors::source_actor>(names::source), status_atom::value).first;
    // Every event is in the log exactly once (a restarted source sends again; the log
    // deduplicates), and the trainer took every one of them.
    REQUIRE(f.pipeline.log->end_offset() == stream_rows);
    REQUIRE(f.trainer_now().events_trained == stream_rows);
    REQUIRE(source->finished);
    predict_request request;
    request.request_id = 3;
    request.rows = 1;
    request.features.values().assign(784, 50.0f);
    auto answer = f.ask<predict_reply>(f.component<actors::serving_actor>(names::serving), request);
    REQUIRE(answer.first.has_value());
  }
}
