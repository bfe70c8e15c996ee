#include "actors/serving/batcher.hpp"

#include <caf/all.hpp>

#include <cmath>
#include <set>

#include "actors/monitoring/metrics.hpp"
#include "actors/serving/replica.hpp"
#include "messaging/errors.hpp"

namespace rml::actors {
namespace {
using close_atom = caf::atom_constant<caf::atom("close")>;

struct waiting_request {
  std::int64_t deadline_us;  // INT64_MAX when none
  std::uint64_t sequence;    // arrival order among equal deadlines
  messaging::predict_request request;
  caf::typed_response_promise<messaging::predict_reply> promise;
  bool operator<(const waiting_request& other) const {
    return deadline_us != other.deadline_us ? deadline_us < other.deadline_us : sequence < other.sequence;
  }
};

struct batcher_state {
  batcher_options options;
  std::uint32_t batch_rows = 1;  // current batch size (adaptive) or the maximum
  std::multiset<waiting_request> queue;
  std::uint32_t queued_rows = 0;
  std::uint64_t sequence = 0;
  bool busy = false;               // a batch is at the replica
  std::uint64_t timer_epoch = 0;   // the delay timer that may still close a batch
  bool timer_armed = false;
  std::map<std::string, double> counters;
  messaging::latency_histogram batch_latency;
  static inline const char* name = "rml.batcher";
};

using batcher_pointer = batcher_actor::stateful_pointer<batcher_state>;

void apply_settings(batcher_state& state, const messaging::batching_settings& settings) {
  state.options.settings = settings;
  state.batch_rows = settings.adaptive ? std::min<std::uint32_t>(std::max<std::uint32_t>(state.batch_rows, 1), settings.batch_rows_max)
                                       : settings.batch_rows_max;
}

void dispatch(batcher_pointer self, batch_close_reason reason);

/// Closes a batch now if one should close; else arms the delay timer for the oldest request.
void consider(batcher_pointer self) {
  auto& state = self->state;
  if (state.busy || state.queue.empty()) return;
  const std::int64_t now = clock_us(self);
  if (state.queued_rows >= state.batch_rows) return dispatch(self, batch_close_reason::full);
  // Deadline pressure: the earliest deadline leaves no time to wait for more requests.
  const std::int64_t expected_us = std::int64_t(state.batch_latency.count() > 0 ? state.batch_latency.quantile(0.5) : 0);
  if (state.queue.begin()->deadline_us != INT64_MAX &&
      state.queue.begin()->deadline_us - now <= state.options.settings.queue_delay_max_us + expected_us) {
    return dispatch(self, batch_close_reason::deadline_pressure);
  }
  if (!state.timer_armed) {
    state.timer_armed = true;
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), std::chrono::microseconds(state.options.settings.queue_delay_max_us),
                           close_atom::value, ++state.timer_epoch);
  }
}

void deliver(waiting_request& waiting, const messaging::predict_reply& batch_reply, std::uint32_t first_row) {
  messaging::predict_reply reply;
  reply.request_id = waiting.request.request_id;
  reply.model_version = batch_reply.model_version;
  reply.rows = waiting.request.rows;
  reply.classes = batch_reply.classes;
  const std::size_t classes = batch_reply.classes;
  const auto* probabilities = batch_reply.probabilities.values.data() + std::size_t(first_row) * classes;
  reply.probabilities.values.assign(probabilities, probabilities + std::size_t(reply.rows) * classes);
  const std::size_t batch_top_k = batch_reply.rows == 0 ? 0 : batch_reply.top_classes.size() / batch_reply.rows;
  const std::size_t top_k = std::min<std::size_t>(std::max(waiting.request.top_k, 1u), batch_top_k);
  for (std::uint32_t row = 0; row < reply.rows; ++row) {
    const auto* top = batch_reply.top_classes.data() + (std::size_t(first_row) + row) * batch_top_k;
    reply.top_classes.insert(reply.top_classes.end(), top, top + top_k);
  }
  waiting.promise.deliver(std::move(reply));
}

void dispatch(batcher_pointer self, batch_close_reason reason) {
  auto& state = self->state;
  state.timer_armed = false;
  const std::int64_t now = clock_us(self);
  std::vector<waiting_request> batch;
  std::uint32_t rows = 0;
  while (!state.queue.empty()) {
    auto first = state.queue.begin();
    if (first->deadline_us < now) {
      auto expired = std::move(state.queue.extract(first).value());
      state.queued_rows -= expired.request.rows;
      state.counters["deadline_exceeded"] += 1;
      expired.promise.deliver(messaging::make_error(errc::deadline_exceeded, "request " + std::to_string(expired.request.request_id) +
                                                                                ": deadline passed while queued"));
      continue;
    }
    if (!batch.empty() && rows + first->request.rows > state.batch_rows) break;
    auto taken = std::move(state.queue.extract(first).value());
    state.queued_rows -= taken.request.rows;
    rows += taken.request.rows;
    batch.push_back(std::move(taken));
  }
  if (batch.empty()) return;
  messaging::predict_request merged;
  merged.request_id = ++state.sequence;
  merged.rows = rows;
  for (const auto& waiting : batch) {
    merged.top_k = std::max(merged.top_k, waiting.request.top_k);
    merged.features.values.insert(merged.features.values.end(), waiting.request.features.values.begin(),
                                  waiting.request.features.values.end());
  }
  state.counters[std::string("batches_closed_") + to_string(reason)] += 1;
  state.counters["batches"] += 1;
  state.counters["rows"] += rows;
  state.busy = true;
  auto replica = self->system().registry().template get<serving_actor>(state.options.replica);
  auto fail_all = [](std::vector<waiting_request>& requests, const caf::error& failure) {
    for (auto& waiting : requests) waiting.promise.deliver(failure);
  };
  if (!replica) {
    fail_all(batch, messaging::make_error(errc::not_ready, "no serving replica running"));
    state.busy = false;
    return consider(self);
  }
  auto shared = std::make_shared<std::vector<waiting_request>>(std::move(batch));
  self->request(replica, std::chrono::seconds(30), std::move(merged))
      .then(
          [self, shared, started = now](messaging::predict_reply& reply) {
            auto& state = self->state;
            const double latency = double(clock_us(self) - started);
            state.batch_latency.record(latency);
            std::uint32_t first_row = 0;
            for (auto& waiting : *shared) {
              deliver(waiting, reply, first_row);
              first_row += waiting.request.rows;
            }
            if (state.options.settings.adaptive) {
              // AIMD: additive increase within the objective, multiplicative decrease beyond it.
              if (latency <= double(state.options.settings.latency_objective_us)) {
                state.batch_rows = std::min(state.batch_rows + std::max(1u, state.batch_rows / 8), state.options.settings.batch_rows_max);
              } else {
                state.batch_rows = std::max(1u, state.batch_rows / 2);
              }
            }
            state.busy = false;
            if (!state.queue.empty()) return dispatch(self, batch_close_reason::replica_free);
          },
          [self, shared, fail_all](caf::error& failure) mutable {
            fail_all(*shared, failure);
            self->state.busy = false;
            consider(self);
          });
}

caf::result<messaging::predict_reply> enqueue(batcher_pointer self, messaging::predict_request& request) {
  auto& state = self->state;
  const std::string which = "request " + std::to_string(request.request_id);
  if (request.rows == 0 || request.features.values.size() != std::size_t(request.rows) * state.options.features) {
    return messaging::make_error(errc::shape_mismatch, which + ": " + std::to_string(request.features.values.size()) + " values for " +
                                                           std::to_string(request.rows) + " rows of " +
                                                           std::to_string(state.options.features) + " features");
  }
  for (float value : request.features.values) {
    if (!std::isfinite(value)) return messaging::make_error(errc::invalid_argument, which + ": a feature is not finite");
  }
  const std::int64_t now = clock_us(self);
  if (request.deadline_us > 0 && request.deadline_us < now) {
    state.counters["deadline_exceeded"] += 1;
    return messaging::make_error(errc::deadline_exceeded, which + ": deadline passed before it was queued");
  }
  if (state.queue.size() >= state.options.settings.queue_requests_max) {
    state.counters["overloaded"] += 1;
    return messaging::make_error(errc::overloaded, which + ": " + std::to_string(state.queue.size()) + " requests queued (the bound)");
  }
  auto promise = self->make_response_promise<messaging::predict_reply>();
  state.queued_rows += request.rows;
  state.queue.insert({request.deadline_us > 0 ? request.deadline_us : INT64_MAX, ++state.sequence, std::move(request), promise});
  consider(self);
  return promise;
}

batcher_actor::behavior_type batcher(batcher_pointer self, batcher_options options) {
  self->state.options = options;
  apply_settings(self->state, options.settings);
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (!view.content().match_elements<close_atom, std::uint64_t>()) return caf::sec::unexpected_message;
    auto& state = self->state;
    if (view.content().get_as<std::uint64_t>(1) == state.timer_epoch && state.timer_armed && !state.busy) {
      dispatch(self, batch_close_reason::delay_expired);
    } else if (state.timer_armed && view.content().get_as<std::uint64_t>(1) == state.timer_epoch) {
      state.timer_armed = false;  // the replica is busy: the batch closes when it is free
    }
    return caf::message{};
  });
  return {
      [self](messaging::predict_request& request) { return enqueue(self, request); },
      [self](messaging::batching_settings& settings) {
        apply_settings(self->state, settings);
        consider(self);
      },
      [self](messaging::status_atom) {
        auto values = self->state.counters;
        values["batch_rows"] = self->state.batch_rows;
        values["queued_requests"] = double(self->state.queue.size());
        add_latency(values, "batch", self->state.batch_latency);
        return values;
      },
  };
}
}  // namespace

const char* to_string(batch_close_reason reason) {
  switch (reason) {
    case batch_close_reason::full:
      return "full";
    case batch_close_reason::delay_expired:
      return "delay_expired";
    case batch_close_reason::deadline_pressure:
      return "deadline_pressure";
    case batch_close_reason::replica_free:
      return "replica_free";
  }
  return "unknown";
}

batcher_actor spawn_batcher(caf::actor_system& system, const batcher_options& options) {
  return system.spawn(batcher, options);
}

}  // namespace rml::actors
