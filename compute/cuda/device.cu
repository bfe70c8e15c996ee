#include "compute/cuda/device.hpp"

#include <cuda_runtime.h>

namespace rml::cuda {

int device_count() {
  int count = 0;
  // No driver or no device is an ordinary answer here, not an error: the CPU path runs.
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::string describe_device(int index) {
  cudaDeviceProp properties{};
  const cudaError_t status = cudaGetDeviceProperties(&properties, index);
  if (status != cudaSuccess) {
    return std::string("no CUDA device ") + std::to_string(index) + ": " + cudaGetErrorString(status);
  }
  return std::string(properties.name) + " (sm_" + std::to_string(properties.major) +
         std::to_string(properties.minor) + ", " +
         std::to_string(properties.totalGlobalMem >> 30) + " GiB)";
}

}  // namespace rml::cuda
