#pragma once
// A serving replica: answers predict requests with class probabilities and the top-k classes,
// using the model version it was last sent (by the registry), through the feature pipeline
// that trained that version. A new version is swapped in between requests: no request is
// dropped or failed by a swap. Every request gets exactly one answer: a prediction, or an
// explicit error — no model yet (not_ready), bad input naming what was wrong
// (invalid_argument / shape_mismatch), or a deadline that passed (deadline_exceeded).
//
// Deadlines are microseconds since the actor clock's epoch (the serving endpoints turn a
// client's relative timeout into one).

#include <caf/typed_actor.hpp>

#include <bit>
#include <map>

#include "actors/compute/compute_actor.hpp"
#include "compute/tensor.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

using serving_actor = caf::typed_actor<
    caf::replies_to<messaging::predict_request>::with<messaging::predict_reply>,
    caf::reacts_to<messaging::model_snapshot>,
    caf::replies_to<messaging::status_atom>::with<messaging::replica_status>>;

struct serving_options {
  /// CPU threads of the replica's compute backend.
  int compute_threads = 1;
  /// Where it computes: the CPU, or a GPU (without one: the CPU, with a notice).
  device_kind device = device_kind::cpu;
  /// Compute on the process's compute actor (registered as messaging::names::compute,
  /// actors/compute/compute_actor.hpp), which batches every replica's rows on its device,
  /// rather than on a backend of its own; without one registered, on its own backend.
  bool shared_device = false;
  /// Upper bound of rows in one request.
  std::uint32_t request_rows_max = 4096;
  /// Upper bound of top_k.
  std::uint32_t top_k_max = 100;
  /// Batch sizes (powers of two) whose compute is prepared when the first model loads.
  std::uint32_t warm_up_rows_max = 256;
  /// Labels of its Prometheus series (the lane that spawns it sets them).
  std::string model = "model";
  std::string lane = "main";
  /// Where its trace events go (messaging/telemetry.hpp); its lane hands in its own.
  messaging::telemetry telemetry;
};

/// Batches are padded with zero rows to the next power of two. The backend builds (and
/// caches) its primitives per shape, and dynamic batching forms every batch size from 1 to the
/// maximum: unpadded, each new size stalls its batch while a primitive is built (milliseconds
/// for a convolution), which is what p99 sees. Padded, a replica meets a handful of shapes,
/// all built before it serves (warm_up); the cost is at most 2× the rows of compute on the
/// batch, ~1.3× on average, and none for batches of one.
inline std::int64_t padded_rows(std::int64_t rows) { return std::int64_t(std::bit_ceil(std::uint64_t(rows))); }

serving_actor spawn_serving_replica(caf::actor_system& system, const serving_options& options);

/// Microseconds since the epoch of `system`'s actor clock: what deadlines are measured in.
std::int64_t actor_clock_us(caf::actor_system& system);

}  // namespace rml::actors
