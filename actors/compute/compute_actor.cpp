#include "actors/compute/compute_actor.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <vector>

#include "compute/device_choice.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/inference.hpp"
#include "compute/nn/sequential.hpp"
#include "messaging/errors.hpp"
#include "messaging/reporting.hpp"
#include "messaging/trace.hpp"

namespace rml::actors {
namespace {

/// A model version on the device, with who holds it (one entry per load).
struct device_model {
  std::uint64_t version = 0;
  nn::sequential model{tensor_shape{1}};
  std::unique_ptr<nn::inference_runner> forward;
  std::int64_t width = 0, classes = 0;
  std::multiset<caf::actor_addr> holders;
};

struct pending_request {
  std::string key;
  std::uint32_t rows = 0;
  std::vector<float> features;
  caf::typed_response_promise<messaging::compute_reply> promise;
};

/// Requests between two metrics samples.
constexpr std::uint64_t compute_metrics_every_requests = 500;

struct compute_state {
  compute_options options;
  std::unique_ptr<backend> compute;
  std::map<std::string, device_model> models;
  std::set<caf::actor_addr> monitored;
  std::vector<pending_request> pending;
  bool flush_queued = false;
  std::uint64_t requests = 0, batches = 0, rows = 0, errors = 0;
  static inline const char* name = "rml.compute";
};

using compute_pointer = compute_actor::stateful_pointer<compute_state>;

std::string key_of(const std::string& model, std::uint64_t version) { return model + "@" + std::to_string(version); }

std::string describe_version(const std::string& model, std::uint64_t version) {
  return "model '" + model + "' version " + std::to_string(version);
}

/// Decodes a snapshot's model and places it on the device (its forward passes are made
/// where it stays: an inference runner holds on to the model it runs).
result<device_model> place(compute_state& state, const messaging::compute_load& load) {
  const std::string which = describe_version(load.model, load.snapshot.version);
  auto bundle = decode_model(std::as_bytes(std::span(load.snapshot.model_file)), which);
  if (!bundle) return bundle.error();
  if (auto bad = bundle->model.non_finite_weight()) return error(errc::non_finite, which + ": " + *bad + " is not finite");
  device_model placed;
  placed.version = load.snapshot.version;
  placed.model = std::move(bundle->model);
  placed.width = placed.model.sample_size();
  placed.classes = placed.model.output_shape()[0];
  placed.model.place_on(*state.compute);
  return placed;
}

/// Runs `batch` (requests of one model version, rows together at most batch_rows_max or one
/// request alone) as one forward pass and answers each its rows. A device error fails them
/// all and is rethrown.
void run_batch(compute_pointer self, device_model& model, std::vector<pending_request*>& batch) {
  auto& state = self->state;
  std::int64_t total = 0;
  for (const pending_request* each : batch) total += each->rows;
  const std::int64_t padded = std::int64_t(std::bit_ceil(std::uint64_t(total)));
  std::vector<float> features(std::size_t(padded * model.width), 0.0f);
  std::size_t at = 0;
  for (const pending_request* each : batch) {
    std::copy(each->features.begin(), each->features.end(), features.begin() + std::ptrdiff_t(at));
    at += each->features.size();
  }
  std::vector<float> probabilities(std::size_t(padded * model.classes));
  tensor result = tensor::borrow(probabilities.data(), {padded, model.classes});
  model.forward->to_host(tensor::borrow(features.data(), {padded, model.width}), nn::inference_head::probabilities, result);
  ++state.batches;
  state.rows += std::uint64_t(total);
  std::size_t from = 0;
  for (pending_request* each : batch) {
    messaging::compute_reply reply;
    reply.rows = each->rows;
    reply.classes = std::uint32_t(model.classes);
    const std::size_t count = std::size_t(each->rows) * std::size_t(model.classes);
    reply.probabilities.values.assign(probabilities.begin() + std::ptrdiff_t(from), probabilities.begin() + std::ptrdiff_t(from + count));
    from += count;
    each->promise.deliver(std::move(reply));
  }
}

/// Runs every gathered request: grouped by model version in arrival order, in passes of at
/// most batch_rows_max rows.
void flush(compute_pointer self) {
  auto& state = self->state;
  std::vector<pending_request> pending = std::move(state.pending);
  state.pending.clear();
  std::map<std::string, std::vector<pending_request*>> groups;
  std::vector<std::string> order;
  for (auto& each : pending) {
    auto [group, fresh] = groups.try_emplace(each.key);
    if (fresh) order.push_back(each.key);
    group->second.push_back(&each);
  }
  for (const auto& key : order) {
    auto& group = groups[key];
    auto found = state.models.find(key);
    if (found == state.models.end()) {  // released while its requests waited: cannot happen (release flushes first)
      for (auto* each : group) each->promise.deliver(messaging::make_error(errc::not_ready, key + " left the device"));
      continue;
    }
    std::vector<pending_request*> batch;
    std::uint32_t rows = 0;
    auto run = [&] {
      if (batch.empty()) return;
      run_batch(self, found->second, batch);
      batch.clear();
      rows = 0;
    };
    try {
      for (auto* each : group) {
        if (rows > 0 && rows + each->rows > state.options.batch_rows_max) run();
        batch.push_back(each);
        rows += each->rows;
      }
      run();
    } catch (const std::exception& failure) {
      // A device error: every request not yet answered gets it, then the actor stops so its
      // supervisor starts a fresh one (a fresh device context).
      const std::string message = std::string("compute on ") + state.compute->description() + ": " + failure.what();
      for (auto& each : pending) {
        if (each.promise.pending()) {
          ++state.errors;
          each.promise.deliver(messaging::make_error(errc::device_error, message));
        }
      }
      state.options.telemetry.trace->record({messaging::clock_us(self), "compute", "device_error", message});
      self->quit(messaging::make_error(errc::device_error, message));
      return;
    }
  }
}

/// Drops one (or, for a sender gone down, every) hold of `holder` on versions; a version no
/// one holds leaves the device. Gathered requests run first.
void release(compute_pointer self, const caf::actor_addr& holder, const std::string* only_key) {
  auto& state = self->state;
  if (!state.pending.empty()) flush(self);
  for (auto entry = state.models.begin(); entry != state.models.end();) {
    auto& holders = entry->second.holders;
    if (only_key == nullptr || entry->first == *only_key) {
      if (only_key == nullptr) {
        holders.erase(holder);
      } else if (auto one = holders.find(holder); one != holders.end()) {
        holders.erase(one);
      }
    }
    entry = holders.empty() ? state.models.erase(entry) : std::next(entry);
  }
}

compute_actor::behavior_type compute_behavior(compute_pointer self, compute_options options) {
  self->state.options = options;
  auto chosen = make_backend({options.device, options.cpu_threads, options.cuda_device});
  self->state.compute = std::move(chosen.compute);
  if (!chosen.notice.empty()) {
    std::fprintf(stderr, "rml: compute: %s\n", chosen.notice.c_str());
    options.telemetry.trace->record({messaging::clock_us(self), "compute", "compute_fallback", chosen.notice});
  }
  self->set_down_handler([self](caf::down_msg& down) {
    self->state.monitored.erase(down.source);
    release(self, down.source, nullptr);
  });
  return {
      [self](messaging::compute_load& load) -> caf::result<std::uint64_t> {
        auto& state = self->state;
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        if (!sender) {
          return messaging::make_error(errc::invalid_argument, "compute_load of " + describe_version(load.model, load.snapshot.version) +
                                                                   " has no sender to hold it (send it as a request)");
        }
        const std::string key = key_of(load.model, load.snapshot.version);
        auto found = state.models.find(key);
        if (found == state.models.end()) {
          auto placed = place(state, load);
          if (!placed) return messaging::to_caf_error(placed.error());
          found = state.models.emplace(key, std::move(placed.value())).first;
          found->second.forward = std::make_unique<nn::inference_runner>(found->second.model, *state.compute);
        }
        found->second.holders.insert(sender);
        if (state.monitored.insert(sender).second) self->monitor(caf::actor_cast<caf::actor>(sender));
        return load.snapshot.version;
      },
      [self](messaging::compute_release& released) {
        const auto sender = caf::actor_cast<caf::actor_addr>(self->current_sender());
        const std::string key = key_of(released.model, released.version);
        release(self, sender, &key);
      },
      [self](messaging::compute_request& request) -> caf::result<messaging::compute_reply> {
        auto& state = self->state;
        ++state.requests;
        const std::string key = key_of(request.model, request.version);
        auto found = state.models.find(key);
        if (found == state.models.end()) {
          ++state.errors;
          return messaging::make_error(errc::not_ready, describe_version(request.model, request.version) +
                                                            " is not on this compute actor's device (send compute_load first)");
        }
        const auto& model = found->second;
        if (request.rows == 0 || request.features.values.size() != std::size_t(request.rows) * std::size_t(model.width)) {
          ++state.errors;
          return messaging::make_error(errc::shape_mismatch, describe_version(request.model, request.version) + ": " +
                                                                 std::to_string(request.features.values.size()) + " values for " +
                                                                 std::to_string(request.rows) + " rows of " + std::to_string(model.width) +
                                                                 " features");
        }
        auto promise = self->make_response_promise<messaging::compute_reply>();
        state.pending.push_back({key, request.rows, std::move(request.features.values), promise});
        if (!state.flush_queued) {
          // Behind every message already in the mailbox: the requests among them join this batch.
          state.flush_queued = true;
          self->send(self, messaging::poll_atom::value);
        }
        if (state.requests % compute_metrics_every_requests == 0) {
          messaging::report_metrics(self->system(), "compute", messaging::clock_us(self),
                                    {{"requests", double(state.requests)}, {"batches", double(state.batches)},
                                     {"rows", double(state.rows)}, {"errors", double(state.errors)},
                                     {"models", double(state.models.size())}});
        }
        return promise;
      },
      [self](messaging::poll_atom) {
        self->state.flush_queued = false;
        flush(self);
      },
      [self](messaging::status_atom) {
        const auto& state = self->state;
        return messaging::compute_status{state.compute->description(), state.requests, state.batches,
                                         state.rows, state.errors, state.models.size()};
      },
  };
}

}  // namespace

compute_actor spawn_compute_actor(caf::actor_system& system, const compute_options& options) {
  return system.spawn(compute_behavior, options);
}

}  // namespace rml::actors
