#pragma once
// The CUDA backend: every op of compute/backend.hpp on one GPU, through cuBLAS (GEMM),
// cuDNN 9 (convolution, pooling) and own fused kernels (kernels.cu: activations, softmax
// and its cross-entropy, losses, optimizer updates, reductions). Free of CUDA's headers so
// that any file may make one; built only when RML_HAVE_CUDA (cmake/RmlCuda.cmake).
//
// Errors: making a backend without a usable device returns an error value. A CUDA, cuBLAS
// or cuDNN call that fails afterwards throws device_error naming the statement, file and
// line: an operating error that the compute actor's supervisor can act on (restart it or
// fall back to the CPU), never an abort of the process.

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "compute/backend.hpp"
#include "compute/status.hpp"

namespace rml::cuda {

class device_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct cuda_backend_options {
  /// Which GPU (CUDA's numbering).
  int device = 0;
  /// Let cuBLAS and cuDNN use TF32 for float32 work: faster matrix units at about 1e-3
  /// relative error. Off by default, so results match the CPU backend's to float32.
  bool allow_tf32 = false;
  /// Only cuDNN algorithms that give the same bits every run (no atomics in their sums):
  /// the same seed then trains the same model. On by default; off lets cuDNN's
  /// non-deterministic ones be picked where they measure faster.
  bool deterministic = true;
};

/// Counters a test or a benchmark reads off a CUDA backend.
struct cuda_backend_counters {
  /// Blocks taken from the driver (cudaMalloc) so far; a steady loop takes none.
  std::int64_t driver_allocations = 0;
  /// Bytes held from the driver, in use or cached for reuse.
  std::int64_t reserved_bytes = 0;
};

/// A backend on device `options.device`, or an error naming why none can be made (no
/// driver, no such device, a library that does not load).
result<std::unique_ptr<backend>> make_cuda_backend(const cuda_backend_options& options = {});

/// The counters of a backend made by make_cuda_backend (asserts that it is one).
cuda_backend_counters counters_of(const backend& compute);

}  // namespace rml::cuda
