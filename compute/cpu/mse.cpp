// Mean-squared error; a hand-written loop because oneDNN has no loss primitives.
#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {

void cpu_backend::mse_forward(const tensor& prediction, const tensor& target, tensor& loss) {
  assert_same_shape(target.shape(), prediction.shape(), "mse target vs prediction");
  RML_ASSERT(loss.numel() == 1, "a one-element loss");
  const float* p = prediction.data();
  const float* t = target.data();
  double sum = 0.0;
  for (std::int64_t index = 0; index < prediction.numel(); ++index) {
    const double difference = double(p[index]) - double(t[index]);
    sum += difference * difference;
  }
  loss.data()[0] = float(sum / double(prediction.numel()));
}

void cpu_backend::mse_backward(const tensor& prediction, const tensor& target, float scale,
                               tensor& dprediction) {
  assert_same_shape(target.shape(), prediction.shape(), "mse target vs prediction");
  assert_same_shape(dprediction.shape(), prediction.shape(), "mse gradient");
  const float factor = 2.0f * scale / float(prediction.numel());
  const float* p = prediction.data();
  const float* t = target.data();
  float* d = dprediction.data();
  for (std::int64_t index = 0; index < prediction.numel(); ++index) d[index] = factor * (p[index] - t[index]);
}

}  // namespace rml::cpu
