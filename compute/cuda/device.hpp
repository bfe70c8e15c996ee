#pragma once
// What the CUDA runtime sees: whether a usable device is present, and which. The backend
// itself is cuda_backend.hpp.
// Built only when RML_HAVE_CUDA (cmake/RmlCuda.cmake).

#include <string>

namespace rml::cuda {

/// Number of CUDA devices the runtime can use; 0 without a driver or device.
int device_count();
/// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" for device `index`, or why none is usable.
std::string describe_device(int index);

}  // namespace rml::cuda
