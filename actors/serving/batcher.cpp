#include "actors/serving/batcher.hpp"

#include <caf/all.hpp>

#include <cmath>
#include <deque>
#include <set>

#include <xxhash.h>

#include "messaging/reporting.hpp"
#include "actors/serving/prediction_cache.hpp"
#include "messaging/answer_outbox.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"
#include "supervision/dynamic_supervisor.hpp"

namespace rml::actors {
namespace {
// The load series the cluster's autoscaler reads (read_lane_load): name and help, one place.
struct series {
  const char* name;
  const char* help;
};
constexpr series load_looks_metric{"rml_serving_load_looks_total", "Looks the lane took at its load"};
constexpr series backlog_looks_metric{"rml_serving_backlog_looks_total", "Looks that found a backlog"};
constexpr series busy_seconds_metric{"rml_serving_busy_seconds_total", "Replica time spent computing batches"};
constexpr series replicas_metric{"rml_replicas", "Serving replicas running"};
using close_atom = caf::atom_constant<caf::atom("close")>;
using scale_atom = caf::atom_constant<caf::atom("scale")>;
using watchdog_atom = caf::atom_constant<caf::atom("watchdog")>;

/// How often a lane looks for batches its replicas hold past their deadline, while it has any.
constexpr auto watchdog_interval = std::chrono::milliseconds(250);

struct waiting_request {
  std::int64_t deadline_us;  // INT64_MAX when none
  std::uint64_t sequence;    // arrival order among equal deadlines
  std::int64_t queued_us;    // when it (first) entered the queue
  std::uint32_t retries;
  std::uint64_t features_hash;  // the cache key's
  messaging::predict_request request;
  /// Who hears the answer (among the answers of the same batch, for a burst's sender).
  messaging::answer_target target;
  bool operator<(const waiting_request& other) const {
    return deadline_us != other.deadline_us ? deadline_us < other.deadline_us : sequence < other.sequence;
  }
};

using batch_requests = std::vector<waiting_request>;

struct replica_slot {
  std::uint64_t id = 0;  // the n-th replica this lane started
  serving_actor replica;
  /// Batches sent and not yet answered, by batch id.
  std::map<std::uint64_t, std::shared_ptr<batch_requests>> in_flight;
  std::uint64_t batches_in_window = 0;
  bool retiring = false;  // scaled down: gets no more batches, stops when empty
  messaging::metrics::histogram* compute_latency = nullptr;
};

/// The lane's Prometheus series, looked up once.
struct lane_metrics {
  messaging::metrics::histogram* queue_latency;
  messaging::metrics::histogram* batch_rows;
  messaging::metrics::gauge* queue_depth;
  messaging::metrics::gauge* replicas;
  messaging::metrics::gauge* batch_rows_current;
  messaging::metrics::counter* closed[4];
  messaging::metrics::counter* refused_overloaded;
  messaging::metrics::counter* refused_deadline;
  messaging::metrics::counter* retried;
  messaging::metrics::counter* restarts;
  messaging::metrics::counter* scaled_up;
  messaging::metrics::counter* scaled_down;
  messaging::metrics::counter* cache_hits;
  messaging::metrics::counter* cache_misses;
  // The load as the cluster's autoscaler reads it (read_lane_load).
  messaging::metrics::counter* load_looks;
  messaging::metrics::counter* backlog_looks;
  messaging::metrics::counter* busy_seconds;
};

struct batcher_state {
  batcher_options options;
  std::uint32_t batch_rows = 1;  // current batch size (adaptive) or the maximum
  std::multiset<waiting_request> queue;
  std::uint32_t queued_rows = 0;
  std::uint64_t sequence = 0;
  std::uint64_t timer_epoch = 0;  // the delay timer that may still close a batch
  bool timer_armed = false;
  bool watchdog_armed = false;
  std::vector<replica_slot> slots;
  std::uint64_t replicas_started = 0;
  /// The replicas' supervisor (supervision/dynamic_supervisor.hpp): it starts, restarts
  /// (within the pool's intensity) and stops them; the lane routes batches and requeues the
  /// batches of a replica that went down.
  caf::actor pool;
  /// Replicas asked of the pool and not yet started.
  std::uint32_t starting = 0;
  std::optional<messaging::model_snapshot> snapshot;
  std::unique_ptr<prediction_cache> cache;
  std::uint64_t cache_hits = 0, cache_misses = 0;
  // Autoscaling: what the current window saw, and the looks in a row with each signal.
  double window_queue_wait_us = 0;
  std::uint64_t window_dispatched = 0;
  std::uint32_t backlog_looks = 0, idle_looks = 0;
  /// Answers for burst senders, sent as one message each when the current message is handled.
  messaging::answer_outbox outbox;
  /// How the requests answered meanwhile ended, for `report_to`, sent with the answers (each
  /// entry's latency_us holds its admission time until then: one clock read per flush).
  messaging::lane_outcomes outcomes;
  /// Counts since the lane started (the other fields are filled in when asked).
  messaging::lane_status counts;
  messaging::latency_histogram batch_latency;
  lane_metrics metrics{};
  std::string trace_name;
  static inline const char* name = "rml.batcher";
};

using batcher_pointer = batcher_actor::stateful_pointer<batcher_state>;

void trace(batcher_pointer self, const char* kind, std::string detail) {
  self->state.options.telemetry.trace->record({messaging::clock_us(self), self->state.trace_name, kind, std::move(detail)});
}

lane_metrics register_metrics(const batcher_options& options) {
  auto& registry = *options.telemetry.metrics;
  const messaging::metrics::label_set lane{{"model", options.model}, {"lane", options.lane}};
  auto with = [&](std::string name, std::string value) {
    auto labels = lane;
    labels.emplace_back(std::move(name), std::move(value));
    return labels;
  };
  lane_metrics metrics;
  metrics.queue_latency = &registry.get_histogram("rml_queue_latency_seconds", "Time requests waited in the batching queue", lane);
  metrics.batch_rows = &registry.get_histogram("rml_batch_rows", "Rows per batch sent to a replica", lane,
                                               messaging::metrics::batch_rows_bounds());
  metrics.queue_depth = &registry.get_gauge("rml_queue_depth", "Requests waiting in the batching queue", lane);
  metrics.replicas = &registry.get_gauge(replicas_metric.name, replicas_metric.help, lane);
  metrics.batch_rows_current = &registry.get_gauge("rml_batch_rows_target", "Current batch size (adaptive batching moves it)", lane);
  for (auto reason : {batch_close_reason::full, batch_close_reason::delay_expired, batch_close_reason::deadline_pressure,
                      batch_close_reason::replica_free}) {
    metrics.closed[int(reason)] = &registry.get_counter("rml_batches_closed_total", "Batches closed, by why they closed",
                                                        with("reason", to_string(reason)));
  }
  metrics.refused_overloaded = &registry.get_counter("rml_requests_refused_total", "Requests refused by the batching queue",
                                                     with("reason", "overloaded"));
  metrics.refused_deadline = &registry.get_counter("rml_requests_refused_total", "Requests refused by the batching queue",
                                                   with("reason", "deadline_exceeded"));
  metrics.retried = &registry.get_counter("rml_requests_retried_total", "Requests queued again because their replica crashed", lane);
  metrics.restarts = &registry.get_counter("rml_replica_restarts_total", "Crashed serving replicas restarted", lane);
  metrics.scaled_up = &registry.get_counter("rml_scaling_decisions_total", "Replicas added or removed by autoscaling", with("direction", "up"));
  metrics.scaled_down = &registry.get_counter("rml_scaling_decisions_total", "Replicas added or removed by autoscaling", with("direction", "down"));
  metrics.cache_hits = &registry.get_counter("rml_cache_hits_total", "Predictions answered from the prediction cache", lane);
  metrics.cache_misses = &registry.get_counter("rml_cache_misses_total", "Predictions not in the prediction cache", lane);
  metrics.load_looks = &registry.get_counter(load_looks_metric.name, load_looks_metric.help, lane);
  metrics.backlog_looks = &registry.get_counter(backlog_looks_metric.name, backlog_looks_metric.help, lane);
  metrics.busy_seconds = &registry.get_counter(busy_seconds_metric.name, busy_seconds_metric.help, lane);
  return metrics;
}

void apply_settings(batcher_state& state, const messaging::batching_settings& settings) {
  state.options.settings = settings;
  state.batch_rows = settings.adaptive ? std::min<std::uint32_t>(std::max<std::uint32_t>(state.batch_rows, 1), settings.batch_rows_max)
                                       : settings.batch_rows_max;
  state.metrics.batch_rows_current->set(state.batch_rows);
}

void dispatch(batcher_pointer self, batch_close_reason reason);
void consider(batcher_pointer self);

/// Answers a request with `reply`, or with `failure` when `reply` is null, and notes how it
/// ended for the router.
void answer(batcher_state& state, waiting_request& waiting, messaging::predict_reply* reply, caf::error failure) {
  if (state.options.report_to) {
    messaging::prediction_outcome outcome;
    outcome.request_id = waiting.request.request_id;
    if (reply) {
      outcome.model_version = reply->model_version;
      if (!reply->top_classes.empty()) outcome.top_class = reply->top_classes.front();
    } else {
      outcome.error_code = std::uint8_t(messaging::client_code(failure));
    }
    outcome.latency_us = waiting.queued_us;
    state.outcomes.outcomes.push_back(outcome);
  }
  if (!waiting.target.promise && !waiting.target.reply_to) return;  // a shadow mirror: nobody asked
  state.outbox.answer(waiting.target, waiting.request.request_id, reply, std::move(failure));
}

void fail(batcher_state& state, waiting_request& waiting, caf::error failure) { answer(state, waiting, nullptr, std::move(failure)); }

/// Sends what the handled message produced: one message of answers per burst sender, and
/// the outcomes to the router.
void flush(batcher_pointer self) {
  auto& state = self->state;
  state.outbox.flush(self);
  if (state.outcomes.outcomes.empty()) return;
  const std::int64_t now = messaging::clock_us(self);
  for (auto& outcome : state.outcomes.outcomes) outcome.latency_us = now - outcome.latency_us;
  // The router identifies the lane by the sender: sent as the lane.
  if (auto router = caf::actor_cast<caf::actor>(state.options.report_to)) caf::unsafe_send_as(self, router, std::move(state.outcomes));
  state.outcomes.outcomes.clear();
}

/// Answers everything the lane holds, queued or at a replica, with `not_ready` (why names
/// the lane's end), before the lane exits.
void answer_everything_held(batcher_pointer self, const std::string& why) {
  auto& state = self->state;
  const auto failure = messaging::make_error(errc::not_ready, "lane " + state.options.lane + " " + why);
  while (!state.queue.empty()) {
    auto waiting = std::move(state.queue.extract(state.queue.begin()).value());
    fail(state, waiting, failure);
  }
  state.queued_rows = 0;
  for (auto& slot : state.slots) {
    for (auto& [batch_id, requests] : slot.in_flight) {
      for (auto& waiting : *requests) fail(state, waiting, failure);
    }
    slot.in_flight.clear();
  }
  flush(self);
}

/// The replica that takes the next batch: fewest outstanding, not retiring, below the bound.
replica_slot* free_slot(batcher_state& state) {
  replica_slot* best = nullptr;
  for (auto& slot : state.slots) {
    if (slot.retiring || slot.in_flight.size() >= state.options.pool.batches_per_replica_max) continue;
    if (!best || slot.in_flight.size() < best->in_flight.size()) best = &slot;
  }
  return best;
}

std::size_t replicas_computing(const batcher_state& state) {
  std::size_t computing = 0;
  for (const auto& slot : state.slots) computing += slot.in_flight.empty() ? 0 : 1;
  return computing;
}

/// A replica the pool started (or restarted) takes batches from now on.
void add_slot(batcher_pointer self, serving_actor replica) {
  auto& state = self->state;
  replica_slot slot;
  slot.id = ++state.replicas_started;
  slot.replica = std::move(replica);
  self->monitor(slot.replica);
  if (state.snapshot) self->send(slot.replica, *state.snapshot);
  slot.compute_latency = &state.options.telemetry.metrics->get_histogram(
      "rml_compute_latency_seconds", "Time a replica took to answer a batch",
      {{"model", state.options.model}, {"lane", state.options.lane}, {"replica", std::to_string(slot.id % 64)}});
  state.slots.push_back(std::move(slot));
  state.metrics.replicas->set(double(state.slots.size()));
}

/// Asks the pool for one more replica; it takes work once started.
void add_replica(batcher_pointer self) {
  ++self->state.starting;
  self->request(self->state.pool, caf::infinite, supervision::start_child_atom::value)
      .then(
          [self](caf::actor& replica) {
            --self->state.starting;
            add_slot(self, caf::actor_cast<serving_actor>(replica));
            consider(self);
            flush(self);
          },
          [self](caf::error& failure) {
            --self->state.starting;
            trace(self, "replica_not_started", messaging::describe(failure));
          });
}

/// Requests of a batch whose replica is gone go back to the queue (deadlines kept) or, after
/// `retries_max`, get the error.
void requeue(batcher_pointer self, batch_requests& requests, const caf::error& failure) {
  auto& state = self->state;
  for (auto& waiting : requests) {
    if (waiting.retries >= state.options.pool.retries_max) {
      fail(state, waiting, failure);
      continue;
    }
    ++waiting.retries;
    ++state.counts.retried;
    state.metrics.retried->add();
    state.queued_rows += waiting.request.rows;
    state.queue.insert(std::move(waiting));
  }
  state.metrics.queue_depth->set(double(state.queue.size()));
}

/// Closes batches while a replica is free and one should close; else arms the delay timer.
void consider(batcher_pointer self) {
  auto& state = self->state;
  while (!state.queue.empty() && free_slot(state)) {
    const std::int64_t now = messaging::clock_us(self);
    if (state.queued_rows >= state.batch_rows) {
      dispatch(self, batch_close_reason::full);
      continue;
    }
    // Deadline pressure: the earliest deadline leaves no time to wait for more requests.
    const std::int64_t expected_us = std::int64_t(state.batch_latency.count() > 0 ? state.batch_latency.quantile(0.5) : 0);
    if (state.queue.begin()->deadline_us != INT64_MAX &&
        state.queue.begin()->deadline_us - now <= state.options.settings.queue_delay_max_us + expected_us) {
      dispatch(self, batch_close_reason::deadline_pressure);
      continue;
    }
    // No queue delay: close now (a timer of zero would still cost a trip through the clock) —
    // unless another replica is computing and less than half a batch waits: that replica
    // takes the queue when it finishes. Otherwise a pool of replicas splits the load into
    // batches of one or two, and on 2 cores two replicas served less than one.
    if (state.options.settings.queue_delay_max_us == 0) {
      if (state.queued_rows * 2 < state.batch_rows && replicas_computing(state) > 0) return;
      dispatch(self, batch_close_reason::delay_expired);
      continue;
    }
    if (!state.timer_armed) {
      state.timer_armed = true;
      caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), std::chrono::microseconds(state.options.settings.queue_delay_max_us),
                             close_atom::value, ++state.timer_epoch);
    }
    return;
  }
}

void deliver(batcher_state& state, waiting_request& waiting, const messaging::predict_reply& batch_reply, std::uint32_t first_row) {
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
  // Only answers of the version the lane serves now are remembered.
  if (state.snapshot && reply.model_version == state.snapshot->version) {
    state.cache->insert({reply.model_version, waiting.features_hash, reply.rows, waiting.request.top_k},
                        {reply.probabilities.values, reply.top_classes});
  }
  answer(state, waiting, &reply, {});
}

replica_slot* slot_by_id(batcher_state& state, std::uint64_t id) {
  for (auto& slot : state.slots) {
    if (slot.id == id) return &slot;
  }
  return nullptr;
}

/// A retiring replica with nothing outstanding stops.
void retire_if_done(batcher_pointer self, std::uint64_t slot_id) {
  auto& state = self->state;
  auto* slot = slot_by_id(state, slot_id);
  if (!slot || !slot->retiring || !slot->in_flight.empty()) return;
  self->demonitor(caf::actor_cast<caf::actor>(slot->replica));
  caf::anon_send(state.pool, supervision::terminate_child_atom::value, caf::actor_cast<caf::actor>(slot->replica));
  state.slots.erase(std::remove_if(state.slots.begin(), state.slots.end(), [slot_id](const replica_slot& s) { return s.id == slot_id; }),
                    state.slots.end());
  state.metrics.replicas->set(double(state.slots.size()));
}

void dispatch(batcher_pointer self, batch_close_reason reason) {
  auto& state = self->state;
  state.timer_armed = false;
  replica_slot* slot = free_slot(state);
  RML_ASSERT(slot != nullptr);
  const std::int64_t now = messaging::clock_us(self);
  batch_requests batch;
  batch.reserve(std::min<std::size_t>(state.queue.size(), state.batch_rows));
  std::uint32_t rows = 0;
  while (!state.queue.empty()) {
    auto first = state.queue.begin();
    if (first->deadline_us < now) {
      auto expired = std::move(state.queue.extract(first).value());
      state.queued_rows -= expired.request.rows;
      ++state.counts.deadline_exceeded;
      state.metrics.refused_deadline->add();
      fail(state, expired, messaging::make_error(errc::deadline_exceeded, "request " + std::to_string(expired.request.request_id) +
                                                                                ": deadline passed while queued"));
      continue;
    }
    if (!batch.empty() && rows + first->request.rows > state.batch_rows) break;
    auto taken = std::move(state.queue.extract(first).value());
    state.queued_rows -= taken.request.rows;
    rows += taken.request.rows;
    batch.push_back(std::move(taken));
  }
  state.metrics.queue_depth->set(double(state.queue.size()));
  if (batch.empty()) return;
  messaging::predict_request merged;
  merged.request_id = ++state.sequence;
  merged.rows = rows;
  // The features' one copy: from where they were received (a view of the ZeroMQ frame or the
  // HTTP body) into the batch. Room for the replica's padding rows too: it pads in place.
  auto& gathered = merged.features.values();
  gathered.reserve(std::size_t(padded_rows(rows)) * state.options.features);
  gathered.resize(std::size_t(rows) * state.options.features);
  float* into = gathered.data();
  for (const auto& waiting : batch) {
    merged.top_k = std::max(merged.top_k, waiting.request.top_k);
    waiting.request.features.copy_to(into);
    into += waiting.request.features.size();
    const double waited_us = double(now - waiting.queued_us);
    state.window_queue_wait_us += waited_us;
    state.metrics.queue_latency->observe(waited_us * 1e-6);
  }
  state.window_dispatched += batch.size();
  switch (reason) {
    case batch_close_reason::full: ++state.counts.closed_full; break;
    case batch_close_reason::delay_expired: ++state.counts.closed_delay_expired; break;
    case batch_close_reason::deadline_pressure: ++state.counts.closed_deadline_pressure; break;
    case batch_close_reason::replica_free: ++state.counts.closed_replica_free; break;
  }
  ++state.counts.batches;
  state.counts.rows += rows;
  state.metrics.closed[int(reason)]->add();
  state.metrics.batch_rows->observe(rows);
  trace(self, "batch_closed", std::string("reason=") + to_string(reason) + " rows=" + std::to_string(rows) +
                                  " requests=" + std::to_string(batch.size()) + " replica=" + std::to_string(slot->id));
  const std::uint64_t batch_id = merged.request_id;
  const std::uint64_t slot_id = slot->id;
  auto shared = std::make_shared<batch_requests>(std::move(batch));
  slot->in_flight.emplace(batch_id, shared);
  ++slot->batches_in_window;
  // A replica that hangs is found by the watchdog (a timer per lane while batches are out,
  // not a request timeout per batch: each of those is a wake-up of CAF's clock thread).
  if (!state.watchdog_armed) {
    state.watchdog_armed = true;
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), watchdog_interval, watchdog_atom::value);
  }
  // The batch's requests are owned by the slot's in_flight map until an answer, an error or
  // the replica's crash takes them out: whichever comes first answers, the others find
  // nothing (exactly one answer each).
  auto take = [self, slot_id, batch_id]() -> std::shared_ptr<batch_requests> {
    auto* owner = slot_by_id(self->state, slot_id);
    if (!owner) return nullptr;
    auto found = owner->in_flight.find(batch_id);
    if (found == owner->in_flight.end()) return nullptr;
    auto requests = found->second;
    owner->in_flight.erase(found);
    return requests;
  };
  self->request(slot->replica, caf::infinite, std::move(merged))
      .then(
          [self, take, slot_id, started = now](messaging::predict_reply& reply) {
            auto requests = take();
            if (!requests) return;
            auto& state = self->state;
            const double latency = double(messaging::clock_us(self) - started);
            state.batch_latency.record(latency);
            if (auto* owner = slot_by_id(state, slot_id)) owner->compute_latency->observe(latency * 1e-6);
            state.metrics.busy_seconds->add(latency * 1e-6);
            std::uint32_t first_row = 0;
            for (auto& waiting : *requests) {
              deliver(state, waiting, reply, first_row);
              first_row += waiting.request.rows;
            }
            if (state.options.settings.adaptive) {
              // AIMD: additive increase within the objective, multiplicative decrease beyond it.
              if (latency <= double(state.options.settings.latency_objective_us)) {
                state.batch_rows = std::min(state.batch_rows + std::max(1u, state.batch_rows / 8), state.options.settings.batch_rows_max);
              } else {
                state.batch_rows = std::max(1u, state.batch_rows / 2);
              }
              state.metrics.batch_rows_current->set(state.batch_rows);
            }
            retire_if_done(self, slot_id);
            if (!state.queue.empty() && free_slot(state)) dispatch(self, batch_close_reason::replica_free);
            consider(self);
            flush(self);
          },
          [self, take, slot_id](caf::error& failure) {
            auto requests = take();
            if (!requests) return;
            if (failure == caf::sec::request_receiver_down) {
              requeue(self, *requests, failure);
            } else {
              for (auto& waiting : *requests) fail(self->state, waiting, failure);
            }
            retire_if_done(self, slot_id);
            consider(self);
            flush(self);
          });
}

/// When a batch is overdue at its replica: a second past the latest deadline among its
/// requests (30 s past queueing for requests without one).
std::int64_t overdue_at_us(const batch_requests& requests) {
  std::int64_t latest = 0;
  for (const auto& waiting : requests) {
    latest = std::max(latest, waiting.deadline_us == INT64_MAX ? waiting.queued_us + 30'000'000 : waiting.deadline_us + 1'000'000);
  }
  return latest;
}

/// A replica holding a batch past its deadline hangs: its requests get the deadline error and
/// it is killed (and restarted by the down handler, within the restart intensity).
void look_for_hung_replicas(batcher_pointer self) {
  auto& state = self->state;
  state.watchdog_armed = false;
  const std::int64_t now = messaging::clock_us(self);
  bool batches_out = false;
  for (auto& slot : state.slots) {
    bool hung = false;
    for (auto batch = slot.in_flight.begin(); batch != slot.in_flight.end();) {
      if (overdue_at_us(*batch->second) > now) {
        ++batch;
        continue;
      }
      hung = true;
      for (auto& waiting : *batch->second) {
        fail(state, waiting, messaging::make_error(errc::deadline_exceeded, "request " + std::to_string(waiting.request.request_id) +
                                                                                ": serving replica " + std::to_string(slot.id) +
                                                                                " did not answer by the deadline"));
      }
      batch = slot.in_flight.erase(batch);
    }
    if (hung) {
      trace(self, "replica_hung", "replica=" + std::to_string(slot.id));
      ++state.counts.replicas_hung;
      self->send_exit(slot.replica, caf::exit_reason::kill);
    }
    batches_out = batches_out || !slot.in_flight.empty();
  }
  if (batches_out) {
    state.watchdog_armed = true;
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), watchdog_interval, watchdog_atom::value);
  }
}

/// A replica went down: the batches it held go back to the queue (the pool starts its
/// replacement, announced by a child_replaced). The pool itself going down means its
/// replicas crashed beyond the restart intensity: the lane answers everything and exits.
void on_down(batcher_pointer self, const caf::down_msg& down) {
  auto& state = self->state;
  if (down.source == state.pool.address()) {
    trace(self, "restart_intensity_exceeded", "replicas crash too often: " + caf::to_string(down.reason));
    answer_everything_held(self, ": serving replicas crash too often");
    self->quit(messaging::make_error(errc::restart_intensity_exceeded, "lane " + state.options.lane + ": replicas crash too often"));
    return;
  }
  auto found = std::find_if(state.slots.begin(), state.slots.end(),
                            [&](const replica_slot& slot) { return slot.replica.address() == down.source; });
  if (found == state.slots.end()) return;
  const std::uint64_t lost_id = found->id;
  auto in_flight = std::move(found->in_flight);
  state.slots.erase(found);
  state.metrics.replicas->set(double(state.slots.size()));
  const auto failure = messaging::make_error(errc::not_ready, "serving replica " + std::to_string(lost_id) + " of lane " +
                                                                  state.options.lane + " crashed: " + caf::to_string(down.reason));
  for (auto& [batch_id, requests] : in_flight) requeue(self, *requests, failure);
  consider(self);
  flush(self);
}

/// The pool restarted a replica that went down.
void on_replaced(batcher_pointer self, const messaging::child_replaced& replaced) {
  auto& state = self->state;
  add_slot(self, caf::actor_cast<serving_actor>(replaced.current));
  ++state.counts.replica_restarts;
  state.metrics.restarts->add();
  trace(self, "replica_restarted", "replica=" + std::to_string(state.replicas_started) + " restarts=" + std::to_string(replaced.restart_count));
  messaging::report_metrics(self->system(), "serving/" + state.options.lane, messaging::clock_us(self),
                            {{"replica_restarts", double(state.counts.replica_restarts)}});
  consider(self);
  flush(self);
}

/// One look at the load: scale up on a sustained backlog, down on a sustained idle replica.
void look_at_load(batcher_pointer self) {
  auto& state = self->state;
  const auto& pool = state.options.pool;
  const double mean_wait_us = state.window_dispatched > 0 ? state.window_queue_wait_us / double(state.window_dispatched) : 0.0;
  std::size_t active = 0;
  bool some_idle = false;
  for (const auto& slot : state.slots) {
    if (slot.retiring) continue;
    ++active;
    if (slot.batches_in_window == 0 && slot.in_flight.empty()) some_idle = true;
  }
  const bool backlog = state.queued_rows >= std::uint64_t(state.batch_rows) * std::max<std::size_t>(active, 1) ||
                       mean_wait_us > double(state.options.settings.queue_delay_max_us + state.options.settings.latency_objective_us / 2);
  state.metrics.load_looks->add();
  if (backlog) state.metrics.backlog_looks->add();
  state.backlog_looks = backlog ? state.backlog_looks + 1 : 0;
  state.idle_looks = (!backlog && some_idle) ? state.idle_looks + 1 : 0;
  if (state.backlog_looks >= pool.scale_up_after && active + state.starting < pool.replicas_max) {
    add_replica(self);
    ++state.counts.scaled_up;
    state.metrics.scaled_up->add();
    trace(self, "scaled_up", "replicas=" + std::to_string(active + 1) + " queued_rows=" + std::to_string(state.queued_rows) +
                                 " mean_queue_wait_us=" + std::to_string(std::int64_t(mean_wait_us)));
    state.backlog_looks = state.idle_looks = 0;
    consider(self);  // the new replica takes queued work at once
  } else if (state.idle_looks >= pool.scale_down_after && active > pool.replicas_min) {
    // The idle replica with the newest id goes: the oldest keep their warm caches.
    replica_slot* idle = nullptr;
    for (auto& slot : state.slots) {
      if (!slot.retiring && slot.batches_in_window == 0 && slot.in_flight.empty() && (!idle || slot.id > idle->id)) idle = &slot;
    }
    if (idle) {
      idle->retiring = true;
      ++state.counts.scaled_down;
      state.metrics.scaled_down->add();
      trace(self, "scaled_down", "replicas=" + std::to_string(active - 1) + " replica=" + std::to_string(idle->id));
      retire_if_done(self, idle->id);
    }
    state.backlog_looks = state.idle_looks = 0;
  }
  for (auto& slot : state.slots) slot.batches_in_window = 0;
  state.window_queue_wait_us = 0;
  state.window_dispatched = 0;
}

/// Queues a request (answered through `waiting.target`), or answers it at
/// once: refused (bad shape, deadline passed, queue full) or from the cache. The features
/// were checked finite where they were decoded (feature_check); the replica checks again,
/// once per batch, against senders inside the process that skip decoding.
void enqueue(batcher_pointer self, messaging::predict_request& request, waiting_request waiting) {
  auto& state = self->state;
  auto refuse = [&](caf::error failure) {
    waiting.request.request_id = request.request_id;
    fail(state, waiting, std::move(failure));
  };
  // Made only for a refusal: a string per request would cost an allocation on every one.
  const auto which = [&] { return "request " + std::to_string(request.request_id); };
  const std::int64_t now = messaging::clock_us(self);
  waiting.queued_us = now;  // admitted now, also when refused (its outcome's latency)
  if (request.rows == 0 || request.features.size() != std::size_t(request.rows) * state.options.features) {
    return refuse(messaging::make_error(errc::shape_mismatch, which() + ": " + std::to_string(request.features.size()) +
                                                                  " values for " + std::to_string(request.rows) + " rows of " +
                                                                  std::to_string(state.options.features) + " features"));
  }
  if (request.deadline_us > 0 && request.deadline_us < now) {
    ++state.counts.deadline_exceeded;
    state.metrics.refused_deadline->add();
    return refuse(messaging::make_error(errc::deadline_exceeded, which() + ": deadline passed before it was queued"));
  }
  if (state.queue.size() >= state.options.settings.queue_requests_max) {
    ++state.counts.overloaded;
    state.metrics.refused_overloaded->add();
    return refuse(messaging::make_error(errc::overloaded, which() + ": " + std::to_string(state.queue.size()) + " requests queued (the bound)"));
  }
  request.top_k = std::max(request.top_k, 1u);
  std::uint64_t features_hash = 0;
  if (state.options.cache_entries_max > 0) {
    // The cache key hashes the raw features (xxHash: fast, and already a dependency).
    features_hash = XXH3_64bits(request.features.bytes().data(), request.features.bytes().size());
    if (state.snapshot) {
      if (const auto* cached = state.cache->find({state.snapshot->version, features_hash, request.rows, request.top_k})) {
        ++state.cache_hits;
        state.metrics.cache_hits->add();
        const std::uint32_t classes = request.rows ? std::uint32_t(cached->probabilities.size() / request.rows) : 0;
        messaging::predict_reply reply{request.request_id, state.snapshot->version, request.rows, classes, {cached->probabilities},
                                       cached->top_classes};
        waiting.request.request_id = request.request_id;
        return answer(state, waiting, &reply, {});
      }
    }
    ++state.cache_misses;
    state.metrics.cache_misses->add();
  }
  state.queued_rows += request.rows;
  waiting.deadline_us = request.deadline_us > 0 ? request.deadline_us : INT64_MAX;
  waiting.sequence = ++state.sequence;
  waiting.retries = 0;
  waiting.features_hash = features_hash;
  waiting.request = std::move(request);
  state.queue.insert(std::move(waiting));
}

batcher_actor::behavior_type batcher(batcher_pointer self, batcher_options options) {
  auto& state = self->state;
  options.replica.model = options.model;
  options.replica.lane = options.lane;
  options.replica.telemetry = options.telemetry;
  if (!options.spawn_replica) {
    options.spawn_replica = [replica = options.replica](caf::actor_system& system) { return spawn_serving_replica(system, replica); };
  }
  state.options = options;
  state.trace_name = "batcher/" + options.model + "/" + options.lane;
  state.metrics = register_metrics(options);
  state.cache = std::make_unique<prediction_cache>(options.cache_entries_max);
  apply_settings(state, options.settings);
  supervision::dynamic_supervisor_spec pool;
  pool.name = "replicas/" + options.model + "/" + options.lane;
  pool.start = [spawn = options.spawn_replica](caf::actor_system& system, const caf::message&) { return caf::actor_cast<caf::actor>(spawn(system)); };
  pool.intensity = int(options.pool.restarts_max);
  pool.period = options.pool.restart_window;
  pool.report_to = caf::actor_cast<caf::actor>(self);
  state.pool = supervision::spawn_dynamic_supervisor(self->system(), std::move(pool));
  self->monitor(state.pool);
  // The replicas live and die with their lane.
  self->attach_functor([pool = state.pool](const caf::error&) { caf::anon_send_exit(pool, caf::exit_reason::user_shutdown); });
  for (std::uint32_t index = 0; index < std::max(1u, options.pool.replicas_min); ++index) add_replica(self);
  self->set_down_handler([self](caf::down_msg& down) { on_down(self, down); });
  // Whatever ends the lane where it can still act answers what it holds first.
  self->set_exit_handler([self](caf::exit_msg& exit) {
    if (!exit.reason) return;  // a linked actor's normal exit, as CAF's default handler
    trace(self, "lane_stopped", caf::to_string(exit.reason));
    answer_everything_held(self, "stopped before answering: " + messaging::describe(exit.reason));
    self->quit(exit.reason);
  });
  self->set_exception_handler([self](std::exception_ptr& failure) -> caf::error {
    std::string what = "unknown exception";
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& thrown) {
      what = thrown.what();
    } catch (...) {
    }
    trace(self, "lane_crashed", what);
    answer_everything_held(self, "crashed before answering: " + what);
    return caf::exit_reason::unhandled_exception;
  });
  if (options.pool.replicas_max > options.pool.replicas_min || options.pool.report_load) {
    caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), options.pool.scale_interval, scale_atom::value);
  }
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    auto& state = self->state;
    if (view.content().match_elements<scale_atom>()) {
      look_at_load(self);
      flush(self);
      caf::delayed_anon_send(caf::actor_cast<caf::actor>(self), state.options.pool.scale_interval, scale_atom::value);
      return caf::message{};
    }
    if (view.content().match_elements<messaging::child_replaced>()) {
      on_replaced(self, view.content().get_as<messaging::child_replaced>(0));
      return caf::message{};
    }
    if (view.content().match_elements<messaging::child_restarted>()) return caf::message{};  // on_replaced traces it
    if (view.content().match_elements<watchdog_atom>()) {
      look_for_hung_replicas(self);
      consider(self);
      flush(self);
      return caf::message{};
    }
    if (!view.content().match_elements<close_atom, std::uint64_t>()) return caf::sec::unexpected_message;
    if (view.content().get_as<std::uint64_t>(1) == state.timer_epoch && state.timer_armed) {
      state.timer_armed = false;
      // Closes now if a replica is free; else the batch closes when one is.
      if (!state.queue.empty() && free_slot(state)) dispatch(self, batch_close_reason::delay_expired);
      consider(self);
      flush(self);
    }
    return caf::message{};
  });
  return {
      [self](messaging::predict_request& request) {
        auto promise = self->make_response_promise<messaging::predict_reply>();
        waiting_request waiting{};
        waiting.target.promise = promise;
        enqueue(self, request, std::move(waiting));
        self->state.metrics.queue_depth->set(double(self->state.queue.size()));
        consider(self);
        flush(self);
        return promise;
      },
      [self](messaging::predict_burst& burst) {
        const auto asker = self->current_sender();
        for (auto& item : burst.requests) {
          waiting_request waiting{};
          waiting.target.reply_to = asker;
          waiting.target.ticket = item.ticket;
          enqueue(self, item.request, std::move(waiting));
        }
        self->state.metrics.queue_depth->set(double(self->state.queue.size()));
        consider(self);
        flush(self);
      },
      [self](messaging::batching_settings& settings) {
        apply_settings(self->state, settings);
        consider(self);
        flush(self);
      },
      [self](messaging::model_snapshot& snapshot) {
        auto& state = self->state;
        state.snapshot = snapshot;
        for (auto& slot : state.slots) self->send(slot.replica, snapshot);
      },
      [self](messaging::status_atom) {
        auto& state = self->state;
        auto status = state.counts;
        status.batch_rows = state.batch_rows;
        status.queued_requests = state.queue.size();
        status.replicas = std::uint32_t(state.slots.size());
        status.model_version = state.snapshot ? state.snapshot->version : 0;
        status.batches_outstanding = 0;
        for (const auto& slot : state.slots) status.batches_outstanding += slot.in_flight.size();
        status.cache_hits = state.cache_hits;
        status.cache_misses = state.cache_misses;
        status.cache_entries = state.cache->size();
        status.batch_p50_us = state.batch_latency.quantile(0.5);
        status.batch_p99_us = state.batch_latency.quantile(0.99);
        return status;
      },
  };
}
}  // namespace

lane_load read_lane_load(messaging::metrics::registry& registry, const std::string& model, const std::string& lane) {
  const messaging::metrics::label_set labels{{"model", model}, {"lane", lane}};
  lane_load load;
  load.looks = registry.get_counter(load_looks_metric.name, load_looks_metric.help, labels).value();
  load.backlog_looks = registry.get_counter(backlog_looks_metric.name, backlog_looks_metric.help, labels).value();
  load.busy_seconds = registry.get_counter(busy_seconds_metric.name, busy_seconds_metric.help, labels).value();
  load.replicas = registry.get_gauge(replicas_metric.name, replicas_metric.help, labels).value();
  return load;
}

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

status validate(const batcher_options& options) {
  const auto& pool = options.pool;
  const std::string lane = "serving lane " + options.lane + ": ";
  if (options.settings.batch_rows_max == 0) return error(errc::invalid_argument, lane + "batch_rows_max must be ≥ 1, got 0");
  if (options.settings.queue_delay_max_us < 0) return error(errc::invalid_argument, lane + "queue_delay_max_us must be ≥ 0");
  if (options.settings.queue_requests_max == 0) return error(errc::invalid_argument, lane + "queue_requests_max must be ≥ 1, got 0");
  if (pool.replicas_min == 0) return error(errc::invalid_argument, lane + "replicas_min must be ≥ 1, got 0");
  if (pool.replicas_max < pool.replicas_min) {
    return error(errc::invalid_argument, lane + "replicas_max (" + std::to_string(pool.replicas_max) + ") is below replicas_min (" +
                                             std::to_string(pool.replicas_min) + ")");
  }
  if (pool.batches_per_replica_max == 0) return error(errc::invalid_argument, lane + "batches_per_replica_max must be ≥ 1, got 0");
  if (pool.scale_interval.count() <= 0) return error(errc::invalid_argument, lane + "scale_interval must be positive");
  return {};
}

batcher_actor spawn_batcher(caf::actor_system& system, const batcher_options& options) {
  return system.spawn(batcher, options);
}

}  // namespace rml::actors
