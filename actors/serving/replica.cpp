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
  loaded->model = std::move(bundle->model);
  if (!snapshot.feature_pipeline.empty()) {
    auto pipeline = data::feature_pipeline::from_spec(snapshot.feature_pipeline, loaded->model.sample_size());
    if (!pipeline) return error(pipeline.error().code(), which + ": " + pipeline.error().message());
    if (auto restored = pipeline->restore(snapshot.feature_state.values); !restored) return restored.error();
    loaded->pipeline.emplace(std::move(pipeline.value()));
  }
  return loaded;
}

caf::result<messaging::predict_reply> predict(serving_pointer self, messaging::predict_request& request) {
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
  reply.probabilities.values.resize(std::size_t(padded) * classes);
  tensor probabilities = tensor::borrow(reply.probabilities.values.data(), {padded, std::int64_t(classes)});
  state.current->forward->to_host(features, nn::inference_head::probabilities, probabilities);
  reply.probabilities.values.resize(std::size_t(rows) * classes);  // the padding rows go
  // Serving never answers NaN or infinity (the encoders assert it): inputs are bounded at
  // decode and weights at the registry's gate, so this is a model gone bad, said as an error.
  for (std::size_t index = 0; index < reply.probabilities.values.size(); ++index) {
    if (!std::isfinite(reply.probabilities.values[index])) {
      return messaging::make_error(errc::non_finite, which + ": model version " + std::to_string(state.current->version) +
                                                         " answered a non-finite probability for row " + std::to_string(index / classes));
    }
  }
  std::vector<std::int32_t> order(classes);
  for (std::uint32_t row = 0; row < request.rows; ++row) {
    const float* scores = probabilities.data() + std::size_t(row) * classes;
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + top_k, order.end(),
                      [scores](std::int32_t a, std::int32_t b) { return scores[a] > scores[b]; });
    reply.top_classes.insert(reply.top_classes.end(), order.begin(), order.begin() + top_k);
  }
  return reply;
}

serving_actor::behavior_type replica(serving_pointer self, serving_options options) {
  self->state.options = options;
  auto chosen = make_backend({options.device, options.compute_threads});
  self->state.compute = std::move(chosen.compute);
  if (!chosen.notice.empty()) {
    const std::string component = "serving/" + options.model + "/" + options.lane;
    std::fprintf(stderr, "rml: %s: %s\n", component.c_str(), chosen.notice.c_str());
    options.telemetry.trace->record({messaging::clock_us(self), component, "compute_fallback", chosen.notice});
  }
  return {
      [self](messaging::predict_request& request) -> caf::result<messaging::predict_reply> {
        auto& state = self->state;
        const std::int64_t started_us = messaging::clock_us(self);
        auto answer = predict(self, request);
        ++state.requests;
        if (answer.flag == caf::rt_error) ++state.errors;
        else state.rows += request.rows;
        state.latency.record(double(messaging::clock_us(self) - started_us));
        if (state.requests % serving_metrics_every_requests == 0) {
          std::map<std::string, double> values{{"requests", double(state.requests)}, {"rows", double(state.rows)},
                                               {"errors", double(state.errors)}, {"model_swaps", double(state.swaps)},
                                               {"model_version", state.current ? double(state.current->version) : 0.0}};
          messaging::add_latency(values, "compute", state.latency);
          messaging::report_metrics(self->system(), "serving", messaging::clock_us(self), std::move(values));
        }
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
        const bool on_device = state.compute->device() != device_kind::cpu;
        if (on_device && state.current && state.current->model.spec() == loaded.value()->model.spec()) {
          // The same architecture on a GPU: the new weights go into the tensors the recorded
          // forward passes read, which then need no recording again.
          const auto target = state.current->model.parameters(), source = loaded.value()->model.parameters();
          for (std::size_t index = 0; index < target.size(); ++index) state.compute->copy(source[index]->value, target[index]->value);
          state.current->version = loaded.value()->version;
          state.current->pipeline = std::move(loaded.value()->pipeline);
          return;
        }
        loaded.value()->model.place_on(*state.compute);
        loaded.value()->forward = std::make_unique<nn::inference_runner>(loaded.value()->model, *state.compute);
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
