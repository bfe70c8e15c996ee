#pragma once
// Which backend a component computes on: the CPU, or a GPU where this rml was built with
// the CUDA backend and the machine has one. Components (trainers, serving replicas) make
// their own backend through this, so one flag or topology field moves them.

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "compute/backend.hpp"
#include "compute/status.hpp"

namespace rml {

struct backend_choice {
  device_kind device = device_kind::cpu;
  /// The CPU backend's threads (0: every core).
  int cpu_threads = 0;
  /// Which GPU, for device cuda.
  int cuda_device = 0;
};

/// "cpu" or "cuda"; the error names the text and the choices.
result<device_kind> parse_device(std::string_view text);

struct chosen_backend {
  std::unique_ptr<backend> compute;
  /// Empty when the backend asked for was made; else why the CPU stands in for the GPU
  /// ("no CUDA device: ..., computing on the CPU"), for the component to log.
  std::string notice;
};

/// The backend `choice` asks for. A GPU that cannot be had (no device, no driver, an rml
/// built without CUDA) is not an error: the CPU backend stands in, with a notice saying so.
chosen_backend make_backend(const backend_choice& choice);

/// Whether this rml was built with the CUDA backend.
bool built_with_cuda();

/// GPUs this process can compute on (0 without CUDA, a driver or a device).
int cuda_devices();

}  // namespace rml
