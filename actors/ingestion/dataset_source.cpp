#include "actors/ingestion/dataset_source.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <deque>

#include "actors/ingestion/ingest.hpp"
#include "messaging/reporting.hpp"
#include "compute/random.hpp"

namespace rml::actors {
namespace {
constexpr auto retry_delay = std::chrono::milliseconds(5);

struct source_state {
  std::shared_ptr<const data::dataset> data;
  dataset_source_options options;
  std::vector<std::uint32_t> order;
  std::uint64_t next_event = 0;  // position in the whole stream
  std::uint64_t total = 0;
  std::uint32_t in_flight = 0;
  std::uint64_t acked = 0;
  std::deque<messaging::event_batch> retries;
  std::optional<caf::actor_clock::time_point> started;
  std::optional<float> feature_max;  // for the "invert" drift
  static inline const char* name = "rml.source";
};

using source_pointer = source_actor::stateful_pointer<source_state>;

/// The drift the options ask for, applied to one event past the change point.
void drift(source_state& state, messaging::event& event) {
  if (state.options.drift_kind == "relabel") {
    if (state.data->classes > 0) event.label = (event.label + 1) % state.data->classes;
    return;
  }
  if (!state.feature_max) {
    const float* values = state.data->features.data();
    state.feature_max = *std::max_element(values, values + state.data->features.numel());
  }
  for (float& value : event.features.values) value = *state.feature_max - value;
}

messaging::event_batch next_batch(source_pointer self) {
  auto& state = self->state;
  const std::uint64_t rows = std::uint64_t(state.data->rows());
  messaging::event_batch batch;
  batch.batch_id = state.next_event / state.options.batch_events;
  const std::int64_t now_us =
      std::chrono::duration_cast<std::chrono::microseconds>(self->clock().now().time_since_epoch()).count();
  const std::int64_t width = state.data->feature_count();
  while (batch.events.size() < state.options.batch_events && state.next_event < state.total) {
    const std::uint64_t epoch = state.next_event / rows;
    const std::uint64_t index = state.next_event % rows;
    if (index == 0) state.order = shuffled_indices(std::uint32_t(rows), state.options.seed + epoch + 1);
    const std::uint32_t row = state.order[index];
    const float* features = state.data->features.data() + std::int64_t(row) * width;
    batch.events.push_back({state.next_event, now_us, {{features, features + width}}, state.data->labels[row]});
    if (state.options.drift_at_event > 0 && state.next_event >= state.options.drift_at_event) drift(state, batch.events.back());
    ++state.next_event;
  }
  return batch;
}

void send_batch(source_pointer self, messaging::event_batch batch) {
  auto ingest = self->system().registry().template get<ingest_actor>(messaging::names::ingest);
  if (!ingest) {
    self->state.retries.push_back(std::move(batch));
    self->delayed_send(self, retry_delay, messaging::poll_atom::value);
    return;
  }
  ++self->state.in_flight;
  const std::uint64_t count = batch.events.size();
  self->request(ingest, std::chrono::seconds(60), batch)
      .then(
          [self, count](messaging::event_acked&) {
            auto& state = self->state;
            --state.in_flight;
            state.acked += count;
            if ((state.acked / count) % 20 == 0 || state.acked == state.total) {
              messaging::report_metrics(self->system(), "source", messaging::clock_us(self),
                             {{"events_sent", double(state.next_event)}, {"events_acked", double(state.acked)},
                              {"in_flight_batches", double(state.in_flight)}, {"events_total", double(state.total)}});
            }
            self->send(self, messaging::poll_atom::value);
          },
          [self, batch](caf::error&) mutable {
            // Overloaded, or ingest restarting: send the same batch again a little later.
            --self->state.in_flight;
            self->state.retries.push_back(std::move(batch));
            self->delayed_send(self, retry_delay, messaging::poll_atom::value);
          });
}

void pump(source_pointer self) {
  auto& state = self->state;
  const auto now = self->clock().now();
  if (!state.started) state.started = now;
  while (state.in_flight < state.options.batches_in_flight_max) {
    if (!state.retries.empty()) {
      auto batch = std::move(state.retries.front());
      state.retries.pop_front();
      send_batch(self, std::move(batch));
      continue;
    }
    if (state.next_event >= state.total) return;
    if (state.options.events_per_second > 0) {
      const double elapsed = std::chrono::duration<double>(now - *state.started).count();
      const double allowed = elapsed * state.options.events_per_second;
      if (double(state.next_event + state.options.batch_events) > allowed + state.options.batch_events) {
        const double wait = (double(state.next_event) - allowed) / state.options.events_per_second;
        self->delayed_send(self, std::chrono::microseconds(std::int64_t(wait * 1e6) + 1), messaging::poll_atom::value);
        return;
      }
    }
    send_batch(self, next_batch(self));
  }
}

source_actor::behavior_type source(source_pointer self, std::shared_ptr<const data::dataset> data,
                                   dataset_source_options options) {
  self->state.data = std::move(data);
  self->state.options = options;
  self->state.total = std::uint64_t(self->state.data->rows()) * options.epochs;
  self->send(self, messaging::poll_atom::value);
  return {
      [self](messaging::poll_atom) { pump(self); },
      [self](messaging::status_atom) {
        const auto& state = self->state;
        return messaging::source_status{state.next_event, state.acked, state.total,
                                        state.acked == state.total && state.in_flight == 0};
      },
  };
}
}  // namespace

source_actor spawn_dataset_source(caf::actor_system& system, std::shared_ptr<const data::dataset> data,
                                  const dataset_source_options& options) {
  RML_ASSERT(data != nullptr && data->rows() > 0);
  RML_ASSERT(options.batch_events >= 1 && options.batches_in_flight_max >= 1 && options.epochs >= 1);
  return system.spawn(source, std::move(data), options);
}

status validate(const dataset_source_options& options) {
  if (options.drift_kind != "relabel" && options.drift_kind != "invert") {
    return error(errc::invalid_argument, "source: drift must be relabel or invert, got '" + options.drift_kind + "'");
  }
  return {};
}

}  // namespace rml::actors
