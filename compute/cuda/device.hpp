#pragma once
// What the CUDA runtime sees. The CUDA backend's kernels arrive in a later issue; this is
// the part every GPU test and `rml` need first: whether a usable device is present.
// Built only when RML_HAVE_CUDA (cmake/RmlCuda.cmake).

#include <string>

namespace rml::cuda {

/// Number of CUDA devices the runtime can use; 0 without a driver or device.
int device_count();
/// "NVIDIA H100 80GB HBM3 (sm_90, 79 GiB)" for device `index`, or why none is usable.
std::string describe_device(int index);

}  // namespace rml::cuda
