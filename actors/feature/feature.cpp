#include "actors/feature/feature.hpp"

#include <caf/all.hpp>

#include <algorithm>

#include "messaging/reporting.hpp"
#include "compute/data/feature_pipeline.hpp"
#include "messaging/errors.hpp"
#include "messaging/training_input.hpp"

namespace rml::actors {
namespace {

/// Batches between two metrics samples.
constexpr std::uint64_t feature_metrics_every_batches = 20;

struct feature_state {
  std::shared_ptr<messaging::event_log> log;
  feature_options options;
  std::optional<data::feature_pipeline> pipeline;
  /// Next log offset to read; empty until the trainer said where it stands.
  std::optional<std::uint64_t> cursor;
  std::uint32_t in_flight = 0;   // batches sent, not yet answered
  bool resync_needed = false;    // the trainer refused or restarted: ask where it stands
  bool resyncing = false;
  std::uint64_t batches_sent = 0;
  /// The wait before the next look while the log has nothing new (doubles per empty look).
  std::chrono::milliseconds idle_wait{0};
  /// When a partial batch was first seen at the current cursor (actor clock).
  std::optional<caf::actor_clock::time_point> partial_since;
  static inline const char* name = "rml.feature";
};

using feature_pointer = feature_actor::stateful_pointer<feature_state>;

void poll_later(feature_pointer self, std::chrono::milliseconds delay) {
  self->delayed_send(self, delay, messaging::poll_atom::value);
}

messaging::training_input_actor find_trainer(feature_pointer self) {
  return self->system().registry().template get<messaging::training_input_actor>(messaging::names::trainer);
}

/// Asks the trainer where it stands and resumes from there.
void resynchronise(feature_pointer self, const messaging::training_input_actor& trainer) {
  self->state.resyncing = true;
  self->request(trainer, std::chrono::seconds(30), messaging::position_atom::value)
      .then(
          [self](messaging::training_position& position) {
            auto& state = self->state;
            state.resyncing = false;
            state.resync_needed = false;
            state.cursor = position.next_offset;
            if (!position.feature_state.values.empty()) {
              if (auto restored = state.pipeline->restore(position.feature_state.values); !restored) {
                self->quit(messaging::to_caf_error(restored.error()));
                return;
              }
            }
            self->send(self, messaging::poll_atom::value);
          },
          [self](caf::error&) {
            self->state.resyncing = false;
            poll_later(self, self->state.options.idle_poll);
          });
}

void poll(feature_pointer self) {
  auto& state = self->state;
  if (state.resyncing || state.in_flight >= state.options.batches_in_flight_max) return;
  if (state.resync_needed) {
    if (state.in_flight > 0) return;  // let the outstanding answers arrive first
    state.cursor.reset();
  }
  auto trainer = find_trainer(self);
  if (!trainer) return poll_later(self, state.options.idle_poll);
  if (!state.cursor) return resynchronise(self, trainer);
  auto events = state.log->read(*state.cursor, state.options.rows_per_batch);
  if (!events) {
    self->quit(messaging::to_caf_error(events.error()));
    return;
  }
  if (events->empty()) {
    state.idle_wait = std::clamp(state.idle_wait * 2, state.options.idle_poll, std::max(state.options.idle_poll_max, state.options.idle_poll));
    return poll_later(self, state.idle_wait);
  }
  state.idle_wait = std::chrono::milliseconds{0};
  if (events->size() < state.options.rows_per_batch) {
    // Wait a little for a full batch; send what there is once the log stops growing.
    const auto now = self->clock().now();
    if (!state.partial_since) state.partial_since = now;
    if (now - *state.partial_since < state.options.partial_batch_wait) return poll_later(self, state.options.idle_poll);
  }
  state.partial_since.reset();

  messaging::feature_batch batch;
  batch.columns = state.options.feature_count;
  batch.first_offset = events->front().offset;
  batch.last_offset = events->back().offset;
  std::vector<float> raw;
  for (const auto& entry : *events) {
    if (!entry.fact.has_label()) continue;
    const auto& values = entry.fact.features.values;
    if (values.size() != state.options.feature_count) continue;  // ingest validated; a foreign log
    raw.insert(raw.end(), values.begin(), values.end());
    batch.labels.push_back(entry.fact.label);
    batch.event_ids.push_back(entry.fact.id);
  }
  batch.rows = std::uint32_t(batch.labels.size());
  if (batch.rows > 0) {
    tensor rows = tensor::borrow(raw.data(), {std::int64_t(batch.rows), std::int64_t(batch.columns)});
    state.pipeline->observe(rows);
    state.pipeline->apply(rows);
  }
  batch.values.values = std::move(raw);
  batch.feature_pipeline = state.pipeline->spec();
  batch.feature_state.values = state.pipeline->state();
  ++state.in_flight;
  state.cursor = batch.last_offset + 1;
  if (++state.batches_sent % feature_metrics_every_batches == 0) {
    // Queue depths: events in the log the trainer has not been sent, batches awaiting it.
    messaging::report_metrics(self->system(), "feature", messaging::clock_us(self),
                   {{"batches_sent", double(state.batches_sent)},
                    {"lag_events", double(state.log->end_offset() - *state.cursor)},
                    {"in_flight_batches", double(state.in_flight)},
                    {"cursor", double(*state.cursor)}});
  }
  self->request(trainer, std::chrono::seconds(60), std::move(batch))
      .then(
          [self](std::uint64_t) {
            --self->state.in_flight;
            self->send(self, messaging::poll_atom::value);
          },
          [self](caf::error&) {
            // The trainer restarted or refused: ask it where it stands before going on.
            --self->state.in_flight;
            self->state.resync_needed = true;
            poll_later(self, self->state.options.idle_poll);
          });
  // Read and featurise the next batch while the trainer works on this one.
  if (state.in_flight < state.options.batches_in_flight_max) self->send(self, messaging::poll_atom::value);
}

feature_actor::behavior_type feature(feature_pointer self, std::shared_ptr<messaging::event_log> log,
                                     feature_options options) {
  self->state.log = std::move(log);
  self->state.options = options;
  auto pipeline = data::feature_pipeline::from_spec(options.pipeline, options.feature_count);
  RML_ASSERT(pipeline.ok(), "feature options validated before spawning");
  self->state.pipeline.emplace(std::move(pipeline.value()));
  self->send(self, messaging::poll_atom::value);
  return {
      [self](messaging::poll_atom) { poll(self); },
      [self](messaging::status_atom) { return self->state.cursor.value_or(0); },
  };
}
}  // namespace

status validate(const feature_options& options) {
  if (options.rows_per_batch < 1) return error(errc::invalid_argument, "feature: rows_per_batch must be >= 1");
  auto pipeline = data::feature_pipeline::from_spec(options.pipeline, options.feature_count);
  if (!pipeline) return pipeline.error();
  return {};
}

feature_actor spawn_feature(caf::actor_system& system, std::shared_ptr<messaging::event_log> log,
                            const feature_options& options) {
  auto valid = validate(options);
  if (!valid) detail::assertion_failed("validate(options)", __FILE__, __LINE__, valid.error().message().c_str());
  return system.spawn(feature, std::move(log), options);
}

}  // namespace rml::actors
