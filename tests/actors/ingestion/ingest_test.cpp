// Ingest: batches are acked only once durable, batches waiting together share one durable
// write (group commit), duplicates are counted not re-appended, and every malformed batch is
// refused with an error naming batch, event and field. Runs under CAF's test_coordinator.
#include <filesystem>
#include <unistd.h>

#include "actors/ingestion/ingest.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
struct outcome {
  std::vector<event_acked> acks;
  std::vector<caf::error> errors;
};

struct fixture : test::actor_fixture {
  std::filesystem::path directory;
  std::shared_ptr<event_log> log;
  actors::ingest_actor ingest;
  outcome seen;

  explicit fixture(actors::ingest_options options = {4, 10, 8, 3}) {
    directory = std::filesystem::temp_directory_path() / ("rml_ingest_test_" + std::to_string(::getpid()));
    std::filesystem::remove_all(directory);
    log = std::shared_ptr<event_log>(std::move(event_log::open(directory.string()).value()));
    ingest = hold(actors::spawn_ingest(*system, log, options));
  }
  ~fixture() {
    caf::anon_send_exit(ingest, caf::exit_reason::kill);
    scheduler->run();
    log.reset();
    std::filesystem::remove_all(directory);
  }

  /// Sends a batch from a fresh client actor that records the answer.
  void send(event_batch batch) {
    outcome* sink = &seen;
    auto target = ingest;
    hold(system->spawn([sink, target, batch](caf::event_based_actor* self) {
      self->request(target, caf::infinite, batch)
          .then([sink](event_acked& ack) { sink->acks.push_back(ack); },
                [sink](caf::error& failure) { sink->errors.push_back(failure); });
    }));
  }
};

event make_event(std::uint64_t id, std::vector<float> features = {1, 2, 3, 4}, std::int32_t label = 3) {
  return event{id, 0, {std::move(features)}, label};
}
}  // namespace

TEST_CASE("batches waiting together are acked after one durable write") {
  fixture f;
  f.send({1, {make_event(10), make_event(11)}});
  f.send({2, {make_event(12)}});
  f.send({3, {make_event(11), make_event(13)}});
  f.scheduler->run();
  REQUIRE(f.seen.errors.empty());
  REQUIRE(f.seen.acks.size() == 3);
  std::sort(f.seen.acks.begin(), f.seen.acks.end(), [](auto& a, auto& b) { return a.batch_id < b.batch_id; });
  REQUIRE(f.seen.acks[0] == event_acked{1, 0, 2, 0});
  REQUIRE(f.seen.acks[1] == event_acked{2, 2, 1, 0});
  REQUIRE(f.seen.acks[2] == event_acked{3, 3, 1, 1});
  REQUIRE(f.log->append_writes() == 1);
  REQUIRE(f.log->end_offset() == 4);
  // Every acked event is in the log.
  auto stored = f.log->read(0, 10);
  REQUIRE(stored->size() == 4);
  REQUIRE(stored->back().fact.id == 13);
}

TEST_CASE("malformed batches are refused naming batch, event and field") {
  fixture f;
  f.send({1, {make_event(1, {1, 2, 3})}});
  f.send({2, {make_event(2, {1, std::nanf(""), 3, 4})}});
  f.send({3, {make_event(3, {1, 2, INFINITY, 4})}});
  f.send({4, {make_event(4, {1, 2, 3, 4}, 10)}});
  f.send({5, {}});
  f.send({6, std::vector<event>(9, make_event(6))});
  f.send({7, {make_event(7, {1, -3e38f, 3, 4})}});  // finite, and poisonous to the model
  f.scheduler->run();
  REQUIRE(f.seen.acks.empty());
  std::vector<std::string> messages;
  for (auto& failure : f.seen.errors) {
    REQUIRE(rml_code(failure) == errc::invalid_argument);
    messages.push_back(describe(failure));
  }
  std::sort(messages.begin(), messages.end());
  REQUIRE(messages == std::vector<std::string>{
                          "batch 1: event 1: 3 features, expected 4",
                          "batch 2: event 2: feature 1 is NaN",
                          "batch 3: event 3: feature 2 is infinite",
                          "batch 4: event 4: label 10 outside [0, 10)",
                          "batch 5: no events",
                          "batch 6: 9 events, at most 8",
                          "batch 7: event 7: feature 1 is -3e+38, beyond the bound of ±1e+06",
                      });
  REQUIRE(f.log->end_offset() == 0);
}

TEST_CASE("beyond the bound of waiting batches, ingest answers overloaded at once") {
  fixture f;  // at most 3 batches waiting
  for (std::uint64_t batch = 1; batch <= 5; ++batch) f.send({batch, {make_event(batch * 100)}});
  f.scheduler->run();
  REQUIRE(f.seen.acks.size() + f.seen.errors.size() == 5);
  REQUIRE(f.seen.acks.size() == 3);
  for (auto& failure : f.seen.errors) REQUIRE(rml_code(failure) == errc::overloaded);
  REQUIRE(f.log->end_offset() == 3);
}
