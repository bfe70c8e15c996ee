#pragma once
// A compute actor owns one device — a GPU's context, stream, memory pool and cuBLAS and
// cuDNN handles, or a CPU backend where no GPU can be had — and runs the forward passes of
// every serving replica of the process that computes there. Replicas load their model
// version onto it (compute_load) and send their rows (compute_request); the actor gathers
// the rows of one model version that arrived while it worked and runs them as one batch
// (padded to a power of two, so a GPU replays a handful of recorded passes), then answers
// each sender its own rows. Several replicas' requests thus share one pass on the device
// instead of each replica holding its own context and taking turns on the GPU.
//
// A device error fails the requests of the batch it hit with an error that names it, then
// stops the actor abnormally: its supervisor starts a fresh one (a fresh context), under the
// same registered name, and replicas load their model onto that before their next request.

#include <caf/typed_actor.hpp>

#include <cstdint>

#include "compute/tensor.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

using compute_actor = caf::typed_actor<
    caf::replies_to<messaging::compute_load>::with<std::uint64_t>,
    caf::reacts_to<messaging::compute_release>,
    caf::replies_to<messaging::compute_request>::with<messaging::compute_reply>,
    caf::reacts_to<messaging::poll_atom>,
    caf::replies_to<messaging::status_atom>::with<messaging::compute_status>>;

struct compute_options {
  /// The device it owns: a GPU (without one: the CPU, with a notice), or the CPU.
  device_kind device = device_kind::cuda;
  /// Which GPU, for device cuda.
  int cuda_device = 0;
  /// The CPU backend's threads, where it computes on the CPU.
  int cpu_threads = 1;
  /// Most rows in one forward pass; more waiting rows of a version run as several passes.
  std::uint32_t batch_rows_max = 1024;
  /// Where its restart notices and metrics go.
  messaging::telemetry telemetry;
};

/// Spawns a compute actor; it makes its backend before it handles its first message.
compute_actor spawn_compute_actor(caf::actor_system& system, const compute_options& options);

}  // namespace rml::actors
