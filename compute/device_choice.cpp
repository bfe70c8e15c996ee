#include "compute/device_choice.hpp"

#ifdef RML_HAVE_CUDA
#include "compute/cuda/cuda_backend.hpp"
#include "compute/cuda/device.hpp"
#endif

namespace rml {

result<device_kind> parse_device(std::string_view text) {
  if (text == "cpu") return device_kind::cpu;
  if (text == "cuda") return device_kind::cuda;
  return error(errc::invalid_argument, "device '" + std::string(text) + "' is not one of cpu, cuda");
}

bool built_with_cuda() {
#ifdef RML_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_devices() {
#ifdef RML_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

chosen_backend make_backend(const backend_choice& choice) {
  chosen_backend chosen;
  if (choice.device == device_kind::cuda) {
#ifdef RML_HAVE_CUDA
    auto made = cuda::make_cuda_backend({.device = choice.cuda_device});
    if (made) {
      chosen.compute = std::move(made.value());
      return chosen;
    }
    chosen.notice = made.error().message() + "; computing on the CPU instead";
#else
    chosen.notice = "this rml was built without the CUDA backend (RML_CUDA=OFF or no nvcc and cuDNN at build time); computing on the CPU instead";
#endif
  }
  chosen.compute = make_cpu_backend({choice.cpu_threads});
  return chosen;
}

}  // namespace rml
