// Optimizer updates: one fused pass over each parameter (oneDNN has no optimizer
// primitives). Conventions follow PyTorch's torch.optim so hyper-parameters carry over.
//
// At batch 1 the update of every weight is most of a training step, so the loops run on
// the backend's threads and are compiled for AVX-512 and AVX2 beside the baseline, picked
// at load time (GCC target_clones): the build stays portable.
#include <omp.h>

#include <cmath>

#include "compute/cpu/cpu_backend.hpp"

namespace rml::cpu {
namespace {
/// Below this many elements the update runs on one thread.
constexpr std::int64_t parallel_elements_min = 1 << 15;

[[gnu::target_clones("avx512f", "avx2", "default")]]
void sgd_kernel(float* __restrict p, const float* __restrict g, float* __restrict v,
                std::int64_t count, float learning_rate, float momentum, float weight_decay) {
#pragma omp simd
  for (std::int64_t index = 0; index < count; ++index) {
    const float step = g[index] + weight_decay * p[index];
    v[index] = momentum * v[index] + step;
    p[index] -= learning_rate * v[index];
  }
}

[[gnu::target_clones("avx512f", "avx2", "default")]]
void adam_kernel(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, std::int64_t count, float step_size,
                 float inverse_sqrt_correction2, float beta1, float beta2, float epsilon,
                 float weight_decay) {
#pragma omp simd
  for (std::int64_t index = 0; index < count; ++index) {
    const float grad = g[index] + weight_decay * p[index];
    m[index] = beta1 * m[index] + (1.0f - beta1) * grad;
    v[index] = beta2 * v[index] + (1.0f - beta2) * grad * grad;
    p[index] -= step_size * m[index] / (std::sqrt(v[index]) * inverse_sqrt_correction2 + epsilon);
  }
}

/// Runs kernel(begin, count) over [0, total) in one contiguous chunk per thread.
template <class Kernel>
void split_across(int threads, std::int64_t total, Kernel&& kernel) {
  const int used = total >= parallel_elements_min ? threads : 1;
  if (used == 1) {
    kernel(std::int64_t(0), total);
    return;
  }
#pragma omp parallel num_threads(used)
  {
    const std::int64_t chunk = (total + used - 1) / used;
    const std::int64_t begin = std::min(total, chunk * omp_get_thread_num());
    kernel(begin, std::min(total, begin + chunk) - begin);
  }
}
}  // namespace

int cpu_backend::update_threads() const {
  // An update follows the backward pass that wrote its gradients; running it on the same
  // number of cores keeps those cache lines where they are. Measured on 2 cores: at batch 1
  // (one-thread kernels) a two-thread update made the mlp step 40% slower, at batch 64
  // (two-thread kernels) a one-thread update made it 30% slower.
  return last_primitive_threads_;
}

void cpu_backend::sgd_update(tensor& parameter, const tensor& gradient, tensor& velocity,
                             float learning_rate, float momentum, float weight_decay) {
  assert_same_shape(gradient.shape(), parameter.shape(), "sgd gradient");
  assert_same_shape(velocity.shape(), parameter.shape(), "sgd velocity");
  float* p = parameter.data();
  const float* g = gradient.data();
  float* v = velocity.data();
  split_across(update_threads(), parameter.numel(), [&](std::int64_t begin, std::int64_t count) {
    sgd_kernel(p + begin, g + begin, v + begin, count, learning_rate, momentum, weight_decay);
  });
}

void cpu_backend::adam_update(tensor& parameter, const tensor& gradient, tensor& first_moment,
                              tensor& second_moment, std::int64_t step, float learning_rate,
                              float beta1, float beta2, float epsilon, float weight_decay) {
  assert_same_shape(gradient.shape(), parameter.shape(), "adam gradient");
  assert_same_shape(first_moment.shape(), parameter.shape(), "adam first moment");
  assert_same_shape(second_moment.shape(), parameter.shape(), "adam second moment");
  const auto [step_size, inverse_sqrt_correction2] = fold_adam_corrections(step, learning_rate, beta1, beta2);
  float* p = parameter.data();
  const float* g = gradient.data();
  float* m = first_moment.data();
  float* v = second_moment.data();
  split_across(update_threads(), parameter.numel(), [&](std::int64_t begin, std::int64_t count) {
    adam_kernel(p + begin, g + begin, m + begin, v + begin, count, step_size,
                inverse_sqrt_correction2, beta1, beta2, epsilon, weight_decay);
  });
}

}  // namespace rml::cpu
