// Element-wise arithmetic. Plain loops: the compiler vectorises them, and they cost less
// than dispatching a oneDNN binary primitive at the sizes the tape adds.
#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {

void cpu_backend::add(const tensor& a, const tensor& b, tensor& out) {
  assert_same_shape(b.shape(), a.shape(), "add operands");
  assert_same_shape(out.shape(), a.shape(), "add output");
  const float* left = a.data();
  const float* right = b.data();
  float* sum = out.data();
  for (std::int64_t index = 0; index < a.numel(); ++index) sum[index] = left[index] + right[index];
}

}  // namespace rml::cpu
