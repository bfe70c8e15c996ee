#pragma once
// The GPU tests' common ground: a CUDA backend when a device is present, else a skip that
// says so (Catch2 2.13 has no SKIP: the test case warns, prints SKIPPED and passes), and
// comparisons of a device result with the CPU backend's.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <memory>

#include "compute/cuda/cuda_backend.hpp"
#include "compute/cuda/device.hpp"

namespace rml::test {

/// A CUDA backend (float32, TF32 off), or nullptr after reporting the skip.
inline std::unique_ptr<backend> gpu_or_skip() {
  if (cuda::device_count() == 0) {
    std::fprintf(stderr, "SKIPPED: no CUDA device on this machine: %s\n",
                 Catch::getResultCapture().getCurrentTestName().c_str());
    WARN("no CUDA device: this GPU check is skipped");
    return nullptr;
  }
  auto made = cuda::make_cuda_backend();
  if (!made) FAIL(made.error().message());
  return std::move(made.value());
}

/// ‖actual − expected‖ / ‖expected‖ over all elements (expected ≠ 0), both read to the host.
inline double relative_error(backend& gpu, const tensor& actual, const tensor& expected) {
  const tensor a = on_host(gpu, actual);
  REQUIRE(a.shape() == expected.shape());
  double difference = 0, norm = 0;
  for (std::int64_t i = 0; i < a.numel(); ++i) {
    const double d = double(a.data()[i]) - double(expected.data()[i]);
    if (std::isnan(a.data()[i])) return INFINITY;  // NaN never passes (an unwritten output)
    difference += d * d;
    norm += double(expected.data()[i]) * double(expected.data()[i]);
  }
  return norm == 0 ? std::sqrt(difference) : std::sqrt(difference / norm);
}

#define RML_REQUIRE_CLOSE(gpu, actual, expected, tolerance, what)                  \
  do {                                                                             \
    const double rml_error_ = ::rml::test::relative_error(gpu, actual, expected);  \
    INFO(what << ": relative error " << rml_error_ << " (allowed " << tolerance << ")"); \
    REQUIRE(rml_error_ <= tolerance);                                              \
  } while (0)

/// A device tensor of `shape` poisoned with NaN, so an element an op leaves unwritten fails.
inline tensor poisoned(backend& gpu, const tensor_shape& shape) {
  tensor result = gpu.allocate(shape);
  gpu.fill(result, NAN);
  return result;
}

}  // namespace rml::test
