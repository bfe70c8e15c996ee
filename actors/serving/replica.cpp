#include "actors/serving/replica.hpp"

#include <caf/all.hpp>

#include <bit>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "messaging/reporting.hpp"
#include "compute/data/feature_pipeline.hpp"
#include "compute/device_choice.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/inference.hpp"
#include "compute/nn/sequential.hpp"
#include "messaging/errors.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"

namespace rml::actors {
namespace {

struct loaded_model {
  std::uint64_t version = 0;
  /// What it was loaded from, for a compute actor to load too (shared_device).
  messaging::model_snapshot snapshot;
  nn::sequential model{tensor_shape{1}};
  std::optional<data::feature_pipeline> pipeline;
  /// Forward passes of `model` (recorded per batch size on a GPU).
  std::unique_ptr<nn::inference_runner> forward;
};

/// Requests between two metrics samples.
constexpr std::uint64_t serving_metrics_every_requests = 200;

struct serving_state {
  serving_options options;
  std::unique_ptr<backend> compute;
  std::unique_ptr<loaded_model> current;
  /// The compute actor, and the version, this replica last loaded there (shared_device).
  caf::actor_addr loaded_on;
  std::uint64_t loaded_version = 0;
  bool warmed_up = false;
  std::uint64_t requests = 0, rows = 0, errors = 0, swaps = 0;
  messaging::latency_histogram latency;
  static inline const char* name = "rml.serving";
};

using serving_pointer = serving_actor::stateful_pointer<serving_state>;

/// Builds the model and pipeline of a snapshot; the error names the version.
result<std::unique_ptr<loaded_model>> load(const messaging::model_snapshot& snapshot) {
  const std::string which = "model version " + std::to_string(snapshot.version);
  auto bundle = decode_model(std::as_bytes(std::span(snapshot.model_file)), which);
  if (!bundle) return bundle.error();
  if (auto bad = bundle->model.non_finite_weight()) return error(errc::non_finite, which + ": " + *bad + " is not finite");
  auto loaded = std::make_unique<loaded_model>();
  loaded->version = snapshot.version;
  loaded->snapshot = snapshot;
  loaded->model = std::move(bundle->model);
  if (!snapshot.feature_pipeline.empty()) {
    auto pipeline = data::feature_pipeline::from_spec(snapshot.feature_pipeline, loaded->model.sample_size());
    if (!pipeline) return error(pipeline.error().code(), which + ": " + pipeline.error().message());
    if (auto restored = pipeline->restore(snapshot.feature_state.values); !restored) return restored.error();
    loaded->pipeline.emplace(std::move(pipeline.value()));
  }
  return loaded;
}

/// The replica's own backend, made the first time it is needed.
backend& own_backend(serving_pointer self) {
  auto& state = self->state;
  if (state.compute) return *state.compute;
  auto chosen = make_backend({state.options.device, state.options.compute_threads});
  state.compute = std::move(chosen.compute);
  if (!chosen.notice.empty()) {
    const std::string component = "serving/" + state.options.model + "/" + state.options.lane;
    std::fprintf(stderr, "rml: %s: %s\n", component.c_str(), chosen.notice.c_str());
    state.options.telemetry.trace->record({messaging::clock_us(self), component, "compute_fallback", chosen.notice});
  }
  return *state.compute;
}

/// The current model placed on the replica's own backend, when it was kept for a compute
/// actor that is gone now.
void ensure_placed(serving_pointer self) {
  auto& current = *self->state.current;
  if (current.forward) return;
  backend& compute = own_backend(self);
  current.model.place_on(compute);
  current.forward = std::make_unique<nn::inference_runner>(current.model, compute);
}

/// Counts one answered request (and reports the replica's metrics every so often).
void count_answer(serving_pointer self, bool failed, std::uint32_t rows, std::int64_t started_us) {
  auto& state = self->state;
  ++state.requests;
  if (failed) ++state.errors;
  else state.rows += rows;
  state.latency.record(double(messaging::clock_us(self) - started_us));
  if (state.requests % serving_metrics_every_requests == 0) {
    std::map<std::string, double> values{{"requests", double(state.requests)}, {"rows", double(state.rows)},
                                         {"errors", double(state.errors)}, {"model_swaps", double(state.swaps)},
                                         {"model_version", state.current ? double(state.current->version) : 0.0}};
    messaging::add_latency(values, "compute", state.latency);
    messaging::report_metrics(self->system(), "serving", messaging::clock_us(self), std::move(values));
  }
}

/// A reply whose probabilities are in: checked finite, and each row's top_k classes added.
result<messaging::predict_reply> finish_reply(messaging::predict_reply reply, const std::string& which, std::uint32_t top_k) {
  const std::uint32_t classes = reply.classes;
  // Serving never answers NaN or infinity (the encoders assert it): inputs are bounded at
  // decode and weights at the registry's gate, so this is a model gone bad, said as an error.
  const auto& probabilities = reply.probabilities.values;
  for (std::size_t index = 0; index < probabilities.size(); ++index) {
    if (!std::isfinite(probabilities[index])) {
      return error(errc::non_finite, which + ": model version " + std::to_string(reply.model_version) +
                                         " answered a non-finite probability for row " + std::to_string(index / classes));
    }
  }
  std::vector<std::int32_t> order(classes);
  for (std::uint32_t row = 0; row < reply.rows; ++row) {
    const float* scores = probabilities.data() + std::size_t(row) * classes;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [scores](std::int32_t a, std::int32_t b) { return scores[a] > scores[b]; });
    reply.top_classes.insert(reply.top_classes.end(), order.begin(), order.begin() + top_k);
  }
  return reply;
}

/// The compute actor this replica computes on (options.shared_device), with its current
/// version loaded there — loaded first when the actor is one it has not loaded on (a
/// restarted compute actor holds nothing): messages from one sender arrive in order, so the
/// load is in place before the request that follows it. None without a registered one.
std::optional<compute_actor> shared_compute(serving_pointer self) {
  auto& state = self->state;
  if (!state.options.shared_device || !state.current) return std::nullopt;
  auto registered = self->system().registry().get(messaging::names::compute);
  if (!registered) return std::nullopt;
  auto device = caf::actor_cast<compute_actor>(registered);
  const auto address = device.address();
  if (state.loaded_on == address && state.loaded_version == state.current->version) return device;
  messaging::compute_load load{state.options.model, state.current->snapshot};
  self->request(device, caf::infinite, std::move(load))
      .then([](std::uint64_t) {},
            [self](caf::error& failure) {
              const std::string component = "serving/" + self->state.options.model + "/" + self->state.options.lane;
              self->state.options.telemetry.trace->record({messaging::clock_us(self), component, "compute_load_failed", messaging::describe(failure)});
            });
  // The version it held there before goes after the new one is in (its requests, sent
  // earlier, run first).
  if (state.loaded_on == address && state.loaded_version != 0) {
    self->send(device, messaging::compute_release{state.options.model, state.loaded_version});
  }
  state.loaded_on = address;
  state.loaded_version = state.current->version;
  return device;
}

caf::result<messaging::predict_reply> predict(serving_pointer self, messaging::predict_request& request, std::int64_t started_us) {
  auto& state = self->state;
  const std::string which = "request " + std::to_string(request.request_id);
  if (request.deadline_us > 0 && self->clock().now().time_since_epoch() > std::chrono::microseconds(request.deadline_us)) {
    return messaging::make_error(errc::deadline_exceeded, which + ": deadline passed before it was served");
  }
  if (!state.current) return messaging::make_error(errc::not_ready, which + ": no model published yet");
  nn::sequential& model = state.current->model;
  const std::int64_t width = model.sample_size();
  if (request.rows == 0 || request.rows > state.options.request_rows_max) {
    return messaging::make_error(errc::invalid_argument, which + ": rows must be in [1, " +
                                                             std::to_string(state.options.request_rows_max) + "], got " +
                                                             std::to_string(request.rows));
  }
  if (request.features.size() != std::size_t(request.rows) * std::size_t(width)) {
    return messaging::make_error(errc::shape_mismatch, which + ": " + std::to_string(request.features.size()) +
                                                           " values for " + std::to_string(request.rows) + " rows of " +
                                                           std::to_string(width) + " features");
  }
  // A lane's batch owns its floats (its gather); an in-process asker's view is copied here.
  auto& values = request.features.values();
  for (std::size_t index = 0; index < values.size(); ++index) {
    if (!std::isfinite(values[index])) {
      return messaging::make_error(errc::invalid_argument, which + ": row " + std::to_string(index / std::size_t(width)) +
                                                               " feature " + std::to_string(index % std::size_t(width)) +
                                                               " is not finite");
    }
  }
  const std::uint32_t classes = std::uint32_t(model.output_shape()[0]);
  const std::uint32_t top_k = std::min({std::max(request.top_k, 1u), classes, state.options.top_k_max});
  // Padded to a power of two (padded_rows) in place: a lane reserves the room when it merges
  // a batch, so the zero rows cost no copy of the features.
  const std::int64_t rows = std::int64_t(request.rows);
  const std::int64_t padded = padded_rows(rows);
  values.resize(std::size_t(padded * width), 0.0f);
  tensor features = tensor::borrow(values.data(), {padded, width});
  if (state.current->pipeline) state.current->pipeline->apply(features);
  messaging::predict_reply reply;
  reply.request_id = request.request_id;
  reply.model_version = state.current->version;
  reply.rows = request.rows;
  reply.classes = classes;
  if (auto device = shared_compute(self)) {
    // On the process's compute actor, batched there with other replicas' rows; answered
    // when it answers (or by the deadline).
    messaging::compute_request job{state.options.model, state.current->version, request.rows, {}};
    job.features.values.assign(values.begin(), values.begin() + std::ptrdiff_t(rows * width));
    auto promise = self->make_response_promise<messaging::predict_reply>();
    const auto timeout = request.deadline_us > 0
                             ? caf::duration{std::max(std::chrono::microseconds(request.deadline_us) -
                                                          std::chrono::duration_cast<std::chrono::microseconds>(self->clock().now().time_since_epoch()),
                                                      std::chrono::microseconds(1))}
                             : caf::duration{caf::infinite};
    self->request(*device, timeout, std::move(job))
        .then(
            [self, promise, reply, which, top_k, started_us](messaging::compute_reply& computed) mutable {
              const std::uint32_t rows = reply.rows;
              reply.probabilities = std::move(computed.probabilities);
              auto finished = finish_reply(std::move(reply), which, top_k);
              count_answer(self, !finished, rows, started_us);
              if (finished) promise.deliver(std::move(finished.value()));
              else promise.deliver(messaging::to_caf_error(finished.error()));
            },
            [self, promise, which, started_us](caf::error& failure) mutable {
              count_answer(self, true, 0, started_us);
              promise.deliver(failure == caf::sec::request_timeout
                                  ? messaging::make_error(errc::deadline_exceeded, which + ": deadline passed on the compute actor")
                                  : failure);
            });
    return promise;
  }
  ensure_placed(self);
  reply.probabilities.values.resize(std::size_t(padded) * classes);
  tensor probabilities = tensor::borrow(reply.probabilities.values.data(), {padded, std::int64_t(classes)});
  state.current->forward->to_host(features, nn::inference_head::probabilities, probabilities);
  reply.probabilities.values.resize(std::size_t(rows) * classes);  // the padding rows go
  auto finished = finish_reply(std::move(reply), which, top_k);
  if (!finished) return messaging::to_caf_error(finished.error());
  return std::move(finished.value());
}

serving_actor::behavior_type replica(serving_pointer self, serving_options options) {
  self->state.options = options;
  // A replica that computes on the process's compute actor makes a backend of its own only
  // when there is none to compute on.
  if (!options.shared_device) own_backend(self);
  return {
      [self](messaging::predict_request& request) -> caf::result<messaging::predict_reply> {
        const std::int64_t started_us = messaging::clock_us(self);
        auto answer = predict(self, request, started_us);
        // A request handed to the compute actor is counted when it comes back.
        if (answer.flag != caf::rt_delegated) count_answer(self, answer.flag == caf::rt_error, request.rows, started_us);
        return answer;
      },
      [self](messaging::model_snapshot& snapshot) {
        // Older than what this replica serves: a late message, ignored (rollbacks come
        // from the registry as the version it made current, which may be lower — so only
        // an identical version is skipped).
        if (self->state.current && self->state.current->version == snapshot.version) return;
        auto loaded = load(snapshot);
        if (!loaded) {
          // Keep serving the version it has: a broken snapshot must not take serving down.
          const std::string component = "serving/" + self->state.options.model + "/" + self->state.options.lane;
          self->state.options.telemetry.trace->record({messaging::clock_us(self), component, "model_refused", loaded.error().message()});
          if (auto registry = self->system().registry().get<caf::actor>(messaging::names::registry)) {
            caf::anon_send(registry, messaging::model_refused{snapshot.version, component, loaded.error().message()});
          }
          return;
        }
        auto& state = self->state;
        ++state.swaps;
        if (state.options.shared_device && self->system().registry().get(messaging::names::compute)) {
          // The compute actor holds it on the device; here it stays in host memory.
          state.current = std::move(loaded.value());
          shared_compute(self);
          return;
        }
        backend& compute = own_backend(self);
        const bool on_device = compute.device() != device_kind::cpu;
        if (on_device && state.current && state.current->forward && state.current->model.spec() == loaded.value()->model.spec()) {
          // The same architecture on a GPU: the new weights go into the tensors the recorded
          // forward passes read, which then need no recording again.
          const auto target = state.current->model.parameters(), source = loaded.value()->model.parameters();
          for (std::size_t index = 0; index < target.size(); ++index) compute.copy(source[index]->value, target[index]->value);
          state.current->version = loaded.value()->version;
          state.current->snapshot = std::move(loaded.value()->snapshot);
          state.current->pipeline = std::move(loaded.value()->pipeline);
          return;
        }
        loaded.value()->model.place_on(compute);
        loaded.value()->forward = std::make_unique<nn::inference_runner>(loaded.value()->model, compute);
        state.current = std::move(loaded.value());
        if (!state.warmed_up || on_device) {
          // Builds the primitives of every padded batch size before the first request needs
          // them (later versions of the same architecture reuse them); on a GPU it also
          // records each size's forward pass.
          state.warmed_up = true;
          const std::int64_t width = state.current->model.sample_size();
          const std::int64_t classes = state.current->model.output_shape()[0];
          for (std::int64_t rows = 1; rows <= std::int64_t(state.options.warm_up_rows_max); rows *= 2) {
            std::vector<float> zeros(std::size_t(rows * width), 0.0f), scores(std::size_t(rows * classes));
            tensor probabilities = tensor::borrow(scores.data(), {rows, classes});
            state.current->forward->to_host(tensor::borrow(zeros.data(), {rows, width}), nn::inference_head::probabilities,
                                            probabilities);
          }
        }
      },
      [self](messaging::status_atom) {
        const auto& state = self->state;
        return messaging::replica_status{state.requests, state.rows, state.errors, state.swaps,
                                         state.current ? state.current->version : 0};
      },
  };
}
}  // namespace

serving_actor spawn_serving_replica(caf::actor_system& system, const serving_options& options) {
  return system.spawn(replica, options);
}

std::int64_t actor_clock_us(caf::actor_system& system) {
  return std::chrono::duration_cast<std::chrono::microseconds>(system.clock().now().time_since_epoch()).count();
}

}  // namespace rml::actors
