#include "compute/backend.hpp"

#include <cmath>

namespace rml {

adam_factors fold_adam_corrections(std::int64_t step, float learning_rate, float beta1, float beta2) {
  RML_ASSERT(step >= 1);
  const float correction1 = 1.0f - std::pow(beta1, float(step));
  const float correction2 = 1.0f - std::pow(beta2, float(step));
  return {learning_rate / correction1, 1.0f / std::sqrt(correction2)};
}

tensor on_device(backend& compute, const tensor& value) {
  if (value.device() == compute.device()) return value;
  tensor placed = compute.allocate(value.shape());
  compute.copy(value, placed);
  return placed;
}

tensor on_host(backend& compute, const tensor& value) {
  if (value.device() == device_kind::cpu) return value;
  tensor host = tensor::empty(value.shape());
  compute.copy(value, host);
  return host;
}

void argmax_to_host(backend& compute, const tensor& scores, std::span<std::int32_t> classes) {
  RML_ASSERT(scores.rank() == 2 && std::int64_t(classes.size()) == scores.dim(0), "one class per row");
  tensor found = compute.allocate({scores.dim(0)});
  compute.argmax_rows(scores, found);
  const tensor host = on_host(compute, found);
  for (std::size_t row = 0; row < classes.size(); ++row) classes[row] = std::int32_t(host.data()[row]);
}

float read_scalar(backend& compute, const tensor& value) {
  RML_ASSERT(value.numel() == 1, "read_scalar of a one-element tensor");
  if (value.device() == device_kind::cpu) return value.data()[0];
  float result = 0;
  tensor host = tensor::borrow(&result, {1});
  compute.copy(value.reshaped({1}), host);
  return result;
}

tensor label_tensor(std::span<const std::int32_t> labels) {
  tensor result = tensor::empty({std::int64_t(labels.size())});
  float* values = result.data();
  for (std::size_t index = 0; index < labels.size(); ++index) {
    RML_ASSERT(labels[index] >= 0 && labels[index] < (1 << 24), "a class label in [0, 2^24)");
    values[index] = float(labels[index]);
  }
  return result;
}

}  // namespace rml
