#include "actors/training/trainer.hpp"

#include <cstdio>

#include <caf/all.hpp>

#include <cmath>
#include <deque>

#include "actors/monitoring/drift_reference.hpp"
#include "compute/random.hpp"
#include "messaging/reporting.hpp"
#include "compute/device_choice.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/training.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"

namespace rml::actors {
namespace {

/// Steps between two metrics samples.
constexpr std::uint64_t trainer_metrics_every_steps = 20;

struct trainer_state {
  trainer_options options;
  std::shared_ptr<supervision::checkpoint_store> store;
  caf::actor registry;
  std::unique_ptr<backend> compute;
  std::optional<nn::sequential> model;
  std::unique_ptr<nn::sgd> update;
  std::unique_ptr<nn::classifier_session> session;
  std::string feature_pipeline;
  std::vector<float> feature_state;
  std::uint64_t next_offset = 0;
  std::uint64_t events_trained = 0;
  std::uint64_t steps = 0;
  std::uint64_t published_version = 0;
  std::uint64_t events_at_checkpoint = 0;
  std::deque<bool> recent_correct;
  std::size_t recent_correct_count = 0;
  /// A uniform sample of the rows trained on (reservoir, seeded): the data-drift reference
  /// snapshots carry is built from it. Restarts begin a new sample.
  std::vector<float> reference_rows;
  std::uint32_t reference_columns = 0;
  std::uint64_t reference_seen = 0;
  std::unique_ptr<random_source> reference_random;
  /// The reference last built from the sample, and the rows seen then.
  messaging::input_reference reference_built;
  std::uint64_t reference_built_at = 0;
  double rolling_loss = 0;
  messaging::latency_histogram step_latency;
  /// The parameters and optimizer state the last time the weights were checked finite.
  std::vector<std::vector<float>> good_parameters, good_optimizer;
  std::uint64_t steps_skipped = 0, steps_clipped = 0, restores = 0, publishes_refused = 0, retrains = 0;
  struct exported_counters {
    messaging::metrics::counter *steps_skipped, *steps_clipped, *restores, *publishes_refused;
  } exported{};
  static inline const char* name = "rml.trainer";
};

using trainer_pointer = trainer_actor::stateful_pointer<trainer_state>;

result<nn::sequential> build_model(const trainer_options& options) {
  if (options.architecture.find('(') == std::string::npos) return nn::make_architecture(options.architecture);
  return nn::sequential::from_spec(options.architecture);
}

std::vector<char> encode(messaging::trainer_checkpoint& checkpoint) {
  std::vector<char> bytes;
  caf::binary_serializer sink{nullptr, bytes};
  auto failed = sink(checkpoint);
  RML_ASSERT(!failed, "a checkpoint always serialises");
  return bytes;
}

void trace(trainer_pointer self, const char* kind, std::string detail) {
  self->state.options.telemetry.trace->record({messaging::clock_us(self), "trainer/" + self->state.options.name, kind, std::move(detail)});
}

/// Holds the weights and optimizer state in host memory while it lives, for what reads or
/// writes them there (the finiteness check, the last good state, checkpoints, snapshots),
/// and copies them back into the same device tensors after: a GPU session's recorded steps
/// read and write those in place, and stay valid. Nothing to do for a CPU trainer, or
/// inside another one.
class host_access {
 public:
  explicit host_access(trainer_state& state)
      : state_(state), moved_(state.model->parameters().front()->value.device() != device_kind::cpu) {
    if (!moved_) return;
    for (tensor* held : held_tensors()) {
      on_device_.push_back(*held);
      *held = on_host(*state.compute, *held);
    }
  }
  ~host_access() {
    if (!moved_) return;
    std::size_t index = 0;
    for (tensor* held : held_tensors()) {
      tensor& device = on_device_[index++];
      state_.compute->copy(*held, device);
      *held = device;
    }
  }
  host_access(const host_access&) = delete;
  host_access& operator=(const host_access&) = delete;

 private:
  std::vector<tensor*> held_tensors() {
    std::vector<tensor*> held;
    for (parameter* each : state_.model->parameters()) held.push_back(&each->value);
    for (tensor* each : state_.update->state()) held.push_back(each);
    return held;
  }

  trainer_state& state_;
  bool moved_;
  std::vector<tensor> on_device_;
};

/// Copies the weights and optimizer state into the last good state (reusing its buffers).
void keep_good_state(trainer_state& state) {
  host_access on_host(state);
  const auto parameters = state.model->parameters();
  state.good_parameters.resize(parameters.size());
  for (std::size_t index = 0; index < parameters.size(); ++index) {
    state.good_parameters[index].assign(parameters[index]->value.values().begin(), parameters[index]->value.values().end());
  }
  const auto optimizer_state = state.update->state();
  state.good_optimizer.resize(optimizer_state.size());
  for (std::size_t index = 0; index < optimizer_state.size(); ++index) {
    state.good_optimizer[index].assign(optimizer_state[index]->values().begin(), optimizer_state[index]->values().end());
  }
}

/// Checks the weights: finite, they become the last good state; not, the last good state
/// comes back. Returns whether they were finite.
bool check_weights(trainer_pointer self) {
  auto& state = self->state;
  host_access on_host(state);
  const auto bad = state.model->non_finite_weight();
  if (!bad) {
    keep_good_state(state);
    return true;
  }
  auto parameters = state.model->parameters();
  RML_ASSERT(parameters.size() == state.good_parameters.size(), "a good state is kept from the start");
  for (std::size_t index = 0; index < parameters.size(); ++index) {
    std::copy(state.good_parameters[index].begin(), state.good_parameters[index].end(), parameters[index]->value.data());
  }
  auto optimizer_state = state.update->state();
  for (std::size_t index = 0; index < optimizer_state.size(); ++index) {
    std::copy(state.good_optimizer[index].begin(), state.good_optimizer[index].end(), optimizer_state[index]->data());
  }
  ++state.restores;
  state.exported.restores->add();
  trace(self, "weights_restored", "step=" + std::to_string(state.steps) + " offset=" + std::to_string(state.next_offset) +
                                      ": " + *bad + " was not finite; back to the last good state");
  return false;
}

status save_checkpoint(trainer_state& state) {
  host_access on_host(state);
  messaging::trainer_checkpoint checkpoint;
  const auto file = encode_model(*state.model, {});
  checkpoint.model_file.assign(reinterpret_cast<const char*>(file.data()), reinterpret_cast<const char*>(file.data()) + file.size());
  for (tensor* saved : state.update->state()) checkpoint.optimizer_state.push_back({{saved->values().begin(), saved->values().end()}});
  checkpoint.feature_pipeline = state.feature_pipeline;
  checkpoint.feature_state.values = state.feature_state;
  checkpoint.next_offset = state.next_offset;
  checkpoint.events_trained = state.events_trained;
  checkpoint.steps = state.steps;
  checkpoint.published_version = state.published_version;
  const std::vector<char> bytes = encode(checkpoint);
  if (auto saved = state.store->save(state.options.name, bytes); !saved) return saved;
  state.events_at_checkpoint = state.events_trained;
  return {};
}

status restore_checkpoint(trainer_state& state, const std::vector<char>& bytes) {
  const std::string source = "checkpoint of " + state.options.name;
  messaging::trainer_checkpoint checkpoint;
  caf::binary_deserializer reader{nullptr, bytes};
  if (auto failed = reader(checkpoint)) return error(errc::corrupted, source + ": unreadable");
  auto bundle = decode_model(std::as_bytes(std::span(checkpoint.model_file)), source);
  if (!bundle) return bundle.error();
  if (bundle->model.spec() != state.model->spec()) {
    return error(errc::corrupted, source + ": holds model '" + bundle->model.spec() + "', this trainer runs '" +
                                      state.model->spec() + "'");
  }
  host_access on_host(state);
  auto saved_parameters = bundle->model.parameters();
  auto parameters = state.model->parameters();
  for (std::size_t index = 0; index < parameters.size(); ++index) parameters[index]->value.copy_from(saved_parameters[index]->value);
  auto optimizer_state = state.update->state();
  if (optimizer_state.size() != checkpoint.optimizer_state.size()) {
    return error(errc::corrupted, source + ": optimizer state has " + std::to_string(checkpoint.optimizer_state.size()) +
                                      " tensors, expected " + std::to_string(optimizer_state.size()));
  }
  for (std::size_t index = 0; index < optimizer_state.size(); ++index) {
    const auto& values = checkpoint.optimizer_state[index].values;
    if (std::int64_t(values.size()) != optimizer_state[index]->numel()) {
      return error(errc::corrupted, source + ": optimizer tensor " + std::to_string(index) + " has the wrong size");
    }
    std::copy(values.begin(), values.end(), optimizer_state[index]->data());
  }
  state.feature_pipeline = checkpoint.feature_pipeline;
  state.feature_state = checkpoint.feature_state.values;
  state.next_offset = checkpoint.next_offset;
  state.events_trained = state.events_at_checkpoint = checkpoint.events_trained;
  state.steps = checkpoint.steps;
  state.published_version = checkpoint.published_version;
  return {};
}

messaging::model_snapshot make_snapshot(trainer_state& state, std::uint64_t version) {
  host_access on_host(state);
  messaging::model_snapshot snapshot;
  snapshot.version = version;
  snapshot.parent_version = state.published_version;
  const auto file = encode_model(*state.model, {{"trainer", state.options.name}});
  snapshot.model_file.assign(reinterpret_cast<const char*>(file.data()), reinterpret_cast<const char*>(file.data()) + file.size());
  snapshot.feature_pipeline = state.feature_pipeline;
  snapshot.feature_state.values = state.feature_state;
  snapshot.log_offset = state.next_offset;
  snapshot.metrics = {{"rolling_accuracy", state.recent_correct.empty() ? 0.0 : double(state.recent_correct_count) / double(state.recent_correct.size())},
                      {"rolling_loss", state.rolling_loss},
                      {"events_trained", double(state.events_trained)},
                      {"classes", double(state.model->output_shape()[0])},
                      {"features", double(state.model->sample_size())}};
  if (state.reference_columns > 0 && !state.reference_rows.empty()) {
    // Built again only once the rows seen have doubled since the last build (a few times
    // a run, not every publish: a build costs about 6 ms of the trainer's thread for 784
    // features, and the sample changes by a smaller share the longer it runs).
    if (state.reference_built.empty() || state.reference_seen >= 2 * state.reference_built_at) {
      state.reference_built = drift::to_message(drift::build_reference(state.reference_rows, state.reference_columns, state.options.reference_bins));
      state.reference_built_at = state.reference_seen;
    }
    snapshot.reference = state.reference_built;
  }
  return snapshot;
}

/// Algorithm R over the rows trained on: each of the n seen so far is in the sample with
/// probability reference_rows_max / n.
void sample_reference(trainer_state& state, const messaging::feature_batch& batch) {
  const std::size_t kept_max = state.options.reference_rows_max;
  if (kept_max == 0 || batch.columns == 0) return;
  if (batch.columns != state.reference_columns) {
    state.reference_rows.clear();
    state.reference_columns = batch.columns;
    state.reference_seen = 0;
    state.reference_built = {};
  }
  if (!state.reference_random) state.reference_random = std::make_unique<random_source>(state.options.seed ^ 0x5eed'd71f7ull);
  const std::size_t columns = batch.columns;
  for (std::size_t row = 0; row < batch.rows; ++row) {
    const float* values = batch.values.values.data() + row * columns;
    ++state.reference_seen;
    if (state.reference_rows.size() < kept_max * columns) {
      state.reference_rows.insert(state.reference_rows.end(), values, values + columns);
      continue;
    }
    const std::uint64_t slot = state.reference_random->below(state.reference_seen);
    if (slot < kept_max) std::copy(values, values + columns, state.reference_rows.begin() + std::ptrdiff_t(slot * columns));
  }
}

/// The trainer's predict-then-train outcomes, as error bits, to monitoring's concept-drift
/// detectors (one message a batch; none when no monitor runs).
void report_outcomes(trainer_pointer self, std::span<const std::int32_t> predicted, std::span<const std::int32_t> labels) {
  auto monitor = self->system().registry().template get<caf::actor>(messaging::names::monitor);
  if (!monitor) return;
  messaging::outcomes_observed observed;
  observed.stream = "training";
  observed.model_version = self->state.published_version;
  observed.errors.resize(labels.size());
  for (std::size_t row = 0; row < labels.size(); ++row) observed.errors[row] = predicted[row] == labels[row] ? 0 : 1;
  caf::anon_send(monitor, std::move(observed));
}

void record_predictions(trainer_state& state, std::span<const std::int32_t> predicted, std::span<const std::int32_t> labels) {
  for (std::size_t row = 0; row < labels.size(); ++row) {
    const bool correct = predicted[row] == labels[row];
    state.recent_correct.push_back(correct);
    state.recent_correct_count += correct;
    if (state.recent_correct.size() > state.options.rolling_window_rows) {
      state.recent_correct_count -= state.recent_correct.front();
      state.recent_correct.pop_front();
    }
  }
}

/// One guarded optimisation step on the batch's rows; an error when they do not fit the model.
std::optional<caf::error> train_rows(trainer_pointer self, messaging::feature_batch& batch) {
  auto& state = self->state;
  const std::string where = "feature batch at offset " + std::to_string(batch.first_offset);
  tensor features = tensor::borrow(batch.values.values.data(), {std::int64_t(batch.rows), std::int64_t(batch.columns)});
  if (auto fits = state.model->check_batch(features.shape()); !fits) return messaging::to_caf_error(fits.error());
  const std::int64_t classes = state.model->output_shape()[0];
  for (std::int32_t label : batch.labels) {
    if (label < 0 || label >= classes) {
      return messaging::make_error(errc::invalid_argument, where + ": label " + std::to_string(label) + " outside [0, " +
                                                               std::to_string(classes) + ")");
    }
  }
  std::vector<std::int32_t> predicted(batch.rows);
  const auto step = state.session->guarded_step(features, batch.labels, predicted, state.options.gradient_norm_max);
  record_predictions(state, predicted, batch.labels);
  report_outcomes(self, predicted, batch.labels);
  sample_reference(state, batch);
  ++state.steps;
  if (!step.applied) {
    ++state.steps_skipped;
    state.exported.steps_skipped->add();
    trace(self, "step_skipped", where + ": " + (std::isfinite(step.loss) ? "gradients" : "loss") + " not finite");
    return std::nullopt;
  }
  if (step.clipped) {
    ++state.steps_clipped;
    state.exported.steps_clipped->add();
  }
  state.rolling_loss = state.steps == 1 ? step.loss : 0.98 * state.rolling_loss + 0.02 * step.loss;
  if (state.options.weight_check_steps > 0 && state.steps % state.options.weight_check_steps == 0) check_weights(self);
  return std::nullopt;
}

/// Sends the current model to the registry, which numbers it; `promise`, when given, gets
/// the version or the refusal.
void publish(trainer_pointer self, std::optional<caf::typed_response_promise<std::uint64_t>> promise) {
  auto& state = self->state;
  // The registry given at spawn, else the current instance registered by name.
  caf::actor registry = state.registry ? state.registry : self->system().registry().template get<caf::actor>(messaging::names::registry);
  if (!registry) {
    if (promise) promise->deliver(messaging::make_error(errc::not_ready, "trainer: no registry running"));
    return;
  }
  check_weights(self);
  auto refused = [self, promise](caf::error& failure) mutable {
    auto& state = self->state;
    ++state.publishes_refused;
    state.exported.publishes_refused->add();
    trace(self, "publish_refused", messaging::describe(failure));
    if (promise) promise->deliver(std::move(failure));
  };
  self->request(registry, std::chrono::seconds(30), make_snapshot(state, 0))
      .then(
          [self, promise](std::uint64_t version) mutable {
            self->state.published_version = std::max(self->state.published_version, version);
            if (promise) promise->deliver(version);
          },
          refused);
}

caf::result<std::uint64_t> train_on(trainer_pointer self, messaging::feature_batch& batch) {
  auto& state = self->state;
  const std::uint64_t first_offset = batch.first_offset;
  if (batch.last_offset < first_offset || batch.rows > batch.last_offset - first_offset + 1) {
    return messaging::make_error(errc::invalid_argument, "feature batch of offsets [" + std::to_string(first_offset) + ", " +
                                                             std::to_string(batch.last_offset) + "] holds " +
                                                             std::to_string(batch.rows) + " rows");
  }
  if (batch.last_offset < state.next_offset) return state.next_offset;  // replayed: trained on already
  if (first_offset != state.next_offset) {
    return messaging::make_error(errc::invalid_argument, "feature batch starts at offset " + std::to_string(first_offset) +
                                                             ", trainer expects " + std::to_string(state.next_offset));
  }
  if (batch.values.values.size() != std::size_t(batch.rows) * batch.columns || batch.labels.size() != batch.rows) {
    return messaging::make_error(errc::invalid_argument, "feature batch at offset " + std::to_string(first_offset) +
                                                             ": values or labels do not match rows × columns");
  }
  if (batch.rows > 0) {
    const std::int64_t started_us = messaging::clock_us(self);
    if (auto trained = train_rows(self, batch); trained) return *trained;
    state.step_latency.record(double(messaging::clock_us(self) - started_us));
    if (state.steps % trainer_metrics_every_steps == 0) {
      std::map<std::string, double> values{{"events_trained", double(state.events_trained + batch.rows)},
                                           {"steps", double(state.steps)},
                                           {"next_offset", double(batch.last_offset + 1)},
                                           {"rolling_accuracy", state.recent_correct.empty() ? 0.0 : double(state.recent_correct_count) / double(state.recent_correct.size())},
                                           {"rolling_loss", state.rolling_loss},
                                           {"model_version", double(state.published_version)},
                                           {"steps_skipped", double(state.steps_skipped)},
                                           {"restores", double(state.restores)}};
      messaging::add_latency(values, "step", state.step_latency);
      messaging::report_metrics(self->system(), state.options.name, messaging::clock_us(self), std::move(values));
    }
  }
  state.feature_pipeline = std::move(batch.feature_pipeline);
  state.feature_state = std::move(batch.feature_state.values);
  state.next_offset = batch.last_offset + 1;
  state.events_trained += batch.rows;
  if (batch.rows > 0 && state.options.publish_steps > 0 && state.steps % state.options.publish_steps == 0) publish(self, std::nullopt);
  if (state.options.checkpoint_events > 0 &&
      state.events_trained - state.events_at_checkpoint >= state.options.checkpoint_events) {
    check_weights(self);
    if (auto saved = save_checkpoint(state); !saved) {
      // Losing checkpoints silently would break recovery: stop and let the supervisor decide.
      self->quit(messaging::to_caf_error(saved.error()));
    }
  }
  return state.next_offset;
}

/// A new model with initial weights from `seed`, its optimizer and session.
void fresh_model(trainer_state& state, std::uint64_t seed) {
  state.session.reset();
  state.update.reset();
  state.model.reset();
  auto model = build_model(state.options);
  RML_ASSERT(model.ok(), "trainer options validated before spawning");
  state.model.emplace(std::move(model.value()));
  state.model->initialize(seed);
  state.model->place_on(*state.compute);
  state.update = std::make_unique<nn::sgd>(*state.compute, state.model->parameters(), state.options.sgd);
  state.session = std::make_unique<nn::classifier_session>(*state.model, *state.update, *state.compute);
}

/// Drift's response: a fresh model trained on the log's last `events_back` events. The
/// offset moves back; the feature reader's next batch is refused (it starts elsewhere), and
/// it asks where the trainer stands and replays from there.
std::uint64_t retrain(trainer_pointer self, std::uint64_t events_back) {
  auto& state = self->state;
  ++state.retrains;
  const std::uint64_t seed = state.options.seed + 0x9e37'79b9ull * state.retrains;
  fresh_model(state, seed);
  keep_good_state(state);
  const std::uint64_t from = events_back >= state.next_offset ? 0 : state.next_offset - events_back;
  trace(self, "retrain_started",
        "offset " + std::to_string(state.next_offset) + " back to " + std::to_string(from) + " (" + std::to_string(state.next_offset - from) +
            " events), fresh weights from seed " + std::to_string(seed) + ", last published version " + std::to_string(state.published_version));
  state.next_offset = from;
  state.recent_correct.clear();
  state.recent_correct_count = 0;
  state.rolling_loss = 0;
  // What the retrained model learns from is the window: its reference starts over.
  state.reference_rows.clear();
  state.reference_seen = 0;
  state.reference_built = {};
  return state.published_version;
}

trainer_actor::behavior_type trainer(trainer_pointer self, std::shared_ptr<supervision::checkpoint_store> store,
                                     trainer_options options, caf::actor registry) {
  auto& state = self->state;
  state.options = options;
  state.store = std::move(store);
  state.registry = std::move(registry);
  auto chosen = make_backend({options.device, options.compute_threads});
  state.compute = std::move(chosen.compute);
  if (!chosen.notice.empty()) {
    std::fprintf(stderr, "rml: trainer %s: %s\n", options.name.c_str(), chosen.notice.c_str());
    trace(self, "compute_fallback", chosen.notice);
  }
  fresh_model(state, options.seed);
  if (auto saved = state.store->load(options.name)) {
    // A checkpoint that cannot be restored ends this instance; it handles no message.
    if (auto restored = restore_checkpoint(state, *saved); !restored) self->quit(messaging::to_caf_error(restored.error()));
  }
  keep_good_state(state);
  auto& metrics = *options.telemetry.metrics;
  const messaging::metrics::label_set trainer_label{{"trainer", options.name}};
  state.exported = {
      &metrics.get_counter("rml_trainer_steps_skipped_total", "Training steps skipped: loss or gradients not finite", trainer_label),
      &metrics.get_counter("rml_trainer_steps_clipped_total", "Training steps whose gradients were clipped to the norm bound", trainer_label),
      &metrics.get_counter("rml_trainer_weight_restores_total", "Weights found not finite and restored from the last good state", trainer_label),
      &metrics.get_counter("rml_trainer_publishes_refused_total", "Snapshots the registry refused", trainer_label)};
  return {
      [self](messaging::feature_batch& batch) { return train_on(self, batch); },
      [self](messaging::status_atom) {
        const auto& state = self->state;
        return messaging::trainer_status{state.next_offset, state.events_trained, state.steps, state.published_version,
                                         state.recent_correct.empty() ? 0.0 : double(state.recent_correct_count) / double(state.recent_correct.size()),
                                         state.rolling_loss, state.steps_skipped, state.steps_clipped, state.restores,
                                         state.publishes_refused};
      },
      [self](messaging::snapshot_atom) { return make_snapshot(self->state, self->state.published_version); },
      [self](messaging::position_atom) {
        return messaging::training_position{self->state.next_offset, {self->state.feature_state}};
      },
      [self](messaging::retrain_atom, std::uint64_t events_back) { return retrain(self, events_back); },
      [self](messaging::publish_atom) -> caf::result<std::uint64_t> {
        auto promise = self->make_response_promise<std::uint64_t>();
        publish(self, promise);
        return promise;
      },
  };
}
}  // namespace

status validate(const trainer_options& options) {
  const std::string prefix = "trainer '" + options.name + "': ";
  if (options.name.empty()) return error(errc::invalid_argument, "trainer: name must not be empty");
  if (auto model = build_model(options); !model) return error(model.error().code(), prefix + model.error().message());
  if (auto sgd = nn::validate(options.sgd); !sgd) return error(errc::invalid_argument, prefix + sgd.error().message());
  if (options.compute_threads < 0) return error(errc::invalid_argument, prefix + "compute_threads must be >= 0");
  if (options.rolling_window_rows < 1) return error(errc::invalid_argument, prefix + "rolling_window_rows must be >= 1");
  if (options.reference_bins < 1 || options.reference_bins > 64) {
    return error(errc::invalid_argument, prefix + "reference_bins must be in [1, 64], got " + std::to_string(options.reference_bins));
  }
  if (options.reference_rows_max > 1'000'000) {
    return error(errc::invalid_argument, prefix + "reference_rows_max must be at most 1000000, got " + std::to_string(options.reference_rows_max));
  }
  if (!(options.gradient_norm_max >= 0) || !std::isfinite(options.gradient_norm_max)) {
    return error(errc::invalid_argument, prefix + "gradient_norm_max must be a finite number >= 0 (0: no clipping), got " +
                                             std::to_string(options.gradient_norm_max));
  }
  return {};
}

trainer_actor spawn_trainer(caf::actor_system& system, std::shared_ptr<supervision::checkpoint_store> store,
                            const trainer_options& options, caf::actor registry) {
  auto valid = validate(options);
  if (!valid) detail::assertion_failed("validate(options)", __FILE__, __LINE__, valid.error().message().c_str());
  RML_ASSERT(store != nullptr);
  return system.spawn(trainer, std::move(store), options, std::move(registry));
}

}  // namespace rml::actors
