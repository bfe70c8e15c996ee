// The trainer: it learns from feature batches with progressive validation, publishes
// snapshots to the registry, refuses malformed batches by name, and — the recovery
// contract — a trainer killed mid-stream and restarted resumes from its checkpoint and,
// fed the log again from there, ends with exactly the weights of an uninterrupted run.
// Runs under CAF's test_coordinator.
#include <cmath>
#include <map>

#include "actors/training/trainer.hpp"
#include "compute/data/dataset.hpp"
#include "compute/model_file.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
constexpr std::uint32_t rows_per_batch = 64;

/// A checkpoint store in memory, shared by a trainer and its restarted instance.
class memory_store final : public supervision::checkpoint_store {
 public:
  status save(std::string_view component, std::span<const char> bytes) override {
    saved_[std::string(component)].assign(bytes.begin(), bytes.end());
    ++saves;
    return {};
  }
  std::optional<std::vector<char>> load(std::string_view component) const override {
    auto found = saved_.find(std::string(component));
    if (found == saved_.end()) return std::nullopt;
    return found->second;
  }
  int saves = 0;

 private:
  std::map<std::string, std::vector<char>> saved_;
};

const data::dataset& fashion_train() {
  static auto train = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::train);
  if (!train.ok()) FAIL(train.error().message());
  return *train;
}

/// Batch `index` of the stream: rows [index·64, index·64 + 64) of Fashion-MNIST, as log offsets.
feature_batch batch_at(std::uint64_t index) {
  const auto& train = fashion_train();
  feature_batch batch;
  batch.rows = rows_per_batch;
  batch.columns = 784;
  const float* begin = train.features.data() + index * rows_per_batch * 784;
  batch.values.values.assign(begin, begin + rows_per_batch * 784);
  batch.labels.assign(train.labels.begin() + index * rows_per_batch, train.labels.begin() + (index + 1) * rows_per_batch);
  batch.first_offset = index * rows_per_batch;
  batch.last_offset = (index + 1) * rows_per_batch - 1;
  batch.feature_pipeline = "scale(0.00392156862745098)";
  return batch;
}

struct fixture : test::actor_fixture {
  std::shared_ptr<memory_store> store = std::make_shared<memory_store>();
  std::vector<caf::error> errors;
  std::vector<model_snapshot> published;

  // The actors write into the members above: stop them while those still exist.
  ~fixture() {
    for (auto& actor : keep_alive) caf::anon_send_exit(actor, caf::exit_reason::kill);
    scheduler->run();
  }

  actors::trainer_actor spawn(actors::trainer_options options) {
    auto* sink = &published;
    // Numbers snapshots as the registry does: a snapshot comes without a version.
    auto registry = system->spawn([sink](caf::event_based_actor*) -> caf::behavior {
      return {[sink](model_snapshot& snapshot) {
        REQUIRE(snapshot.version == 0);
        snapshot.version = sink->size() + 1;
        sink->push_back(snapshot);
        return snapshot.version;
      }};
    });
    hold(registry);
    auto trainer = actors::spawn_trainer(*system, store, options, registry);
    hold(trainer);
    scheduler->run();
    return trainer;
  }

  /// Feeds batches [from, to) one request at a time, as the feature actor does.
  void feed(const actors::trainer_actor& trainer, std::uint64_t from, std::uint64_t to) {
    for (std::uint64_t index = from; index < to; ++index) feed_batch(trainer, batch_at(index));
  }
  void feed_batch(const actors::trainer_actor& trainer, feature_batch batch) {
    auto* failures = &errors;
    auto client = system->spawn([trainer, batch = std::move(batch), failures](caf::event_based_actor* self) {
      self->request(trainer, caf::infinite, batch).then([](std::uint64_t) {}, [failures](caf::error& failure) {
        failures->push_back(failure);
      });
    });
    hold(client);
    scheduler->run();
  }

  /// The trainer's answer to `atom` (the test fails if it answers with an error).
  template <class Reply, class Atom>
  Reply ask(const actors::trainer_actor& trainer, Atom atom) {
    auto answer = test::actor_fixture::ask<Reply>(trainer, atom);
    REQUIRE(answer.first.has_value());
    return *answer.first;
  }
};

actors::trainer_options small_options() {
  actors::trainer_options options;
  options.checkpoint_events = 5 * rows_per_batch;
  options.publish_steps = 4;
  options.rolling_window_rows = 640;
  return options;
}
}  // namespace

TEST_CASE("a trainer learns online and reports progressive accuracy") {
  fixture f;
  auto trainer = f.spawn(small_options());
  f.feed(trainer, 0, 60);
  REQUIRE(f.errors.empty());
  auto status = f.ask<trainer_status>(trainer, status_atom::value);
  REQUIRE(status.events_trained == 60 * rows_per_batch);
  REQUIRE(status.next_offset == 60 * rows_per_batch);
  REQUIRE(status.steps == 60);
  INFO("rolling accuracy " << status.rolling_accuracy);
  REQUIRE(status.rolling_accuracy > 0.6);
  // A snapshot every 4 steps, versions moving forward, each carrying its feature pipeline.
  REQUIRE(f.published.size() == 15);
  for (std::size_t index = 0; index < f.published.size(); ++index) {
    REQUIRE(f.published[index].version == index + 1);
    REQUIRE(f.published[index].parent_version == index);  // the version the trainer knew was current
    REQUIRE(f.published[index].feature_pipeline == "scale(0.00392156862745098)");
  }
  REQUIRE(f.store->saves == 12);
}

TEST_CASE("a restarted trainer resumes from its checkpoint and replays to the same weights") {
  fixture uninterrupted;
  auto reference = uninterrupted.spawn(small_options());
  uninterrupted.feed(reference, 0, 12);
  const auto expected = uninterrupted.ask<model_snapshot>(reference, snapshot_atom::value);

  fixture f;
  auto first = f.spawn(small_options());
  f.feed(first, 0, 8);  // checkpoint after batch 5 (320 events); 3 batches since
  caf::anon_send_exit(first, caf::exit_reason::kill);
  f.scheduler->run();
  auto second = f.spawn(small_options());
  const auto resumed = f.ask<trainer_status>(second, status_atom::value);
  REQUIRE(resumed.next_offset == 5 * rows_per_batch);
  REQUIRE(resumed.events_trained == 5 * rows_per_batch);
  // What the feature reader asks to resume from: the same offset, and the pipeline's state.
  const auto position = f.ask<training_position>(second, position_atom::value);
  REQUIRE(position.next_offset == 5 * rows_per_batch);
  REQUIRE(position.feature_state == f.ask<model_snapshot>(second, snapshot_atom::value).feature_state);
  // The feature actor replays the log from the checkpoint's offset; earlier batches it
  // might send again are acknowledged and skipped.
  f.feed(second, 3, 12);
  REQUIRE(f.errors.empty());
  const auto final_status = f.ask<trainer_status>(second, status_atom::value);
  REQUIRE(final_status.events_trained == 12 * rows_per_batch);
  REQUIRE(f.ask<model_snapshot>(second, snapshot_atom::value).model_file == expected.model_file);
}

TEST_CASE("a retrain starts a fresh model on the log's last events and the trainer's position moves back to them") {
  fixture f;
  auto options = small_options();
  options.telemetry = f.telemetry;
  auto trainer = f.spawn(options);
  f.feed(trainer, 0, 20);
  const auto trained = f.ask<model_snapshot>(trainer, snapshot_atom::value);
  REQUIRE(trained.reference.edges_per_feature.size() == 784);  // snapshots carry the training reference
  const auto answer = f.test::actor_fixture::ask<std::uint64_t>(trainer, retrain_atom::value, std::uint64_t(3 * rows_per_batch));
  REQUIRE(answer.first);
  CHECK(*answer.first == 5);  // the version it had published before
  CHECK(f.traced("trainer/trainer", "retrain_started") == 1);
  // The feature reader's next batch (offset 20 batches in) is refused; it asks where to go on.
  f.feed(trainer, 20, 21);
  REQUIRE(f.errors.size() == 1);
  const auto position = f.ask<training_position>(trainer, position_atom::value);
  REQUIRE(position.next_offset == 17 * rows_per_batch);
  // Fresh weights, not the trained ones; the replay trains them on.
  const auto fresh = f.ask<model_snapshot>(trainer, snapshot_atom::value);
  CHECK(fresh.model_file != trained.model_file);
  CHECK(fresh.reference.empty());  // its reference starts over with what it trains on
  f.feed(trainer, 17, 40);
  REQUIRE(f.errors.size() == 1);
  const auto status = f.ask<trainer_status>(trainer, status_atom::value);
  CHECK(status.next_offset == 40 * rows_per_batch);
  CHECK(status.rolling_accuracy > 0.5);
}

TEST_CASE("a trainer refuses batches that do not fit, naming the offset and the reason") {
  fixture f;
  auto trainer = f.spawn(small_options());
  auto* failures = &f.errors;
  auto send = [&](feature_batch batch) {
    auto client = f.system->spawn([trainer, batch, failures](caf::event_based_actor* self) {
      self->request(trainer, caf::infinite, batch).then([](std::uint64_t) {}, [failures](caf::error& e) { failures->push_back(e); });
    });
    f.hold(client);
    f.scheduler->run();
  };
  auto gap = batch_at(1);  // the trainer expects offset 0 first
  send(gap);
  auto bad_label = batch_at(0);
  bad_label.labels[3] = 12;
  send(bad_label);
  auto wrong_width = batch_at(0);
  wrong_width.columns = 783;
  wrong_width.values.values.resize(64 * 783);
  wrong_width.first_offset = 0;
  send(wrong_width);
  REQUIRE(f.errors.size() == 3);
  REQUIRE(describe(f.errors[0]) == "feature batch starts at offset 64, trainer expects 0");
  REQUIRE(describe(f.errors[1]) == "feature batch at offset 0: label 12 outside [0, 10)");
  REQUIRE(describe(f.errors[2]).rfind("input of shape [64, 783] does not fit", 0) == 0);
}

TEST_CASE("a corrupted checkpoint ends the trainer with an error for its supervisor") {
  fixture f;
  const std::vector<char> garbage = {'n', 'o', 't', ' ', 'a', ' ', 'c', 'h', 'e', 'c', 'k', 'p', 'o', 'i', 'n', 't'};
  REQUIRE(f.store->save("trainer", garbage).ok());
  std::optional<caf::error> exit_reason;
  auto trainer = f.spawn(small_options());
  auto observer = f.system->spawn([trainer, &exit_reason](caf::event_based_actor* self) -> caf::behavior {
    self->monitor(trainer);
    self->set_down_handler([&exit_reason](caf::down_msg& down) { exit_reason = down.reason; });
    return {[](int) {}};
  });
  f.hold(observer);
  f.scheduler->run();
  REQUIRE(exit_reason.has_value());
  REQUIRE(rml_code(*exit_reason) == errc::corrupted);
}

namespace {
bool snapshot_finite(const model_snapshot& snapshot) {
  auto bundle = decode_model(std::as_bytes(std::span(snapshot.model_file)), "snapshot");
  REQUIRE(bundle.ok());
  return !bundle->model.non_finite_weight();
}
}  // namespace

TEST_CASE("a batch of huge finite features is skipped, and the weights stay finite and useful") {
  fixture f;
  auto trainer = f.spawn(small_options());
  f.feed(trainer, 0, 20);
  auto poisonous = batch_at(20);
  for (float& value : poisonous.values.values) value = value > 0.5f ? 3e38f : -3e38f;
  f.feed_batch(trainer, poisonous);
  f.feed(trainer, 21, 40);
  REQUIRE(f.errors.empty());
  const auto status = f.ask<trainer_status>(trainer, status_atom::value);
  REQUIRE(status.steps == 40);
  REQUIRE(status.steps_skipped == 1);
  REQUIRE(status.next_offset == 40 * rows_per_batch);  // the stream goes on past the bad batch
  // As good as a run that never saw the bad batch.
  fixture clean;
  auto reference = clean.spawn(small_options());
  clean.feed(reference, 0, 40);
  const double clean_accuracy = clean.ask<trainer_status>(reference, status_atom::value).rolling_accuracy;
  INFO("rolling accuracy " << status.rolling_accuracy << ", without the bad batch " << clean_accuracy);
  REQUIRE(std::abs(status.rolling_accuracy - clean_accuracy) < 0.08);  // 640-row windows: ±0.02 each
  REQUIRE(status.rolling_accuracy > 0.5);
  for (const auto& snapshot : f.published) REQUIRE(snapshot_finite(snapshot));
  REQUIRE(snapshot_finite(f.ask<model_snapshot>(trainer, snapshot_atom::value)));
}

TEST_CASE("gradients beyond the norm bound are clipped, weights that overflow anyway are restored") {
  fixture f;
  auto options = small_options();
  options.gradient_norm_max = 0;  // no clipping: a learning rate of 1e38 overflows the weights
  options.sgd = {1e38f, 0.0f, 0.0f};
  options.weight_check_steps = 1;
  options.publish_steps = 1;
  auto trainer = f.spawn(options);
  auto steep = batch_at(0);  // finite inputs, finite loss and gradients (up to ~10^2): the update overflows
  for (float& value : steep.values.values) value *= 1000;
  f.feed_batch(trainer, steep);
  auto status = f.ask<trainer_status>(trainer, status_atom::value);
  REQUIRE(status.steps_skipped == 0);
  REQUIRE(status.restores == 1);
  for (const auto& snapshot : f.published) REQUIRE(snapshot_finite(snapshot));

  fixture clipped;
  options.gradient_norm_max = 1;
  options.sgd = {0.05f, 0.9f, 0.0f};
  auto bounded = clipped.spawn(options);
  clipped.feed_batch(bounded, steep);
  REQUIRE(clipped.ask<trainer_status>(bounded, status_atom::value).steps_clipped == 1);
}
