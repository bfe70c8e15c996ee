// Element-wise arithmetic. Plain loops: the compiler vectorises them, and they cost less
// than dispatching a oneDNN binary primitive at the sizes the tape adds.
#include <algorithm>
#include <cstring>

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

tensor cpu_backend::allocate(const tensor_shape& shape) { return tensor::empty(shape); }

void cpu_backend::fill(tensor& destination, float value) { destination.fill(value); }

void cpu_backend::copy(const tensor& source, tensor& destination) {
  destination.copy_from(source);
}

void cpu_backend::scale(tensor& x, float factor) {
  for (float& value : x.values()) value *= factor;
}

void cpu_backend::add_sum_of_squares(const tensor& x, tensor& total) {
  RML_ASSERT(total.numel() == 1, "a one-element total");
  double sum = 0;
  for (float value : x.values()) sum += double(value) * double(value);
  total.data()[0] += float(sum);
}

void cpu_backend::argmax_rows(const tensor& scores, tensor& classes) {
  RML_ASSERT(scores.rank() == 2);
  assert_same_shape(classes.shape(), {scores.dim(0)}, "argmax classes");
  const std::int64_t columns = scores.dim(1);
  for (std::int64_t row = 0; row < scores.dim(0); ++row) {
    const float* values = scores.data() + row * columns;
    classes.data()[row] = float(std::max_element(values, values + columns) - values);
  }
}

}  // namespace rml::cpu
