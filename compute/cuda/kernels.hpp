#pragma once
// The CUDA backend's own kernels: the element-wise, row-wise and reduction work that
// cuBLAS and cuDNN do not cover or would take more passes over memory for. Each launcher
// queues one kernel on `stream` and returns; cuda_backend.cpp checks the launch.
// Plain C++ interface (no rml headers) so that only this file's .cu needs nvcc.

#include <cstdint>

#include <cuda_runtime_api.h>

namespace rml::cuda::kernels {

enum class activation : std::uint8_t { relu, tanh, sigmoid };

void fill(float* out, float value, std::int64_t count, cudaStream_t stream);
/// y[M,N] += b[N] on every row.
void add_bias_rows(float* y, const float* bias, std::int64_t rows, std::int64_t columns,
                   cudaStream_t stream);
void add(const float* a, const float* b, float* out, std::int64_t count, cudaStream_t stream);
void scale(float* x, float factor, std::int64_t count, cudaStream_t stream);
void activation_forward(activation kind, const float* x, float* y, std::int64_t count,
                        cudaStream_t stream);
/// dx from the forward output y (every activation here allows it).
void activation_backward(activation kind, const float* y, const float* dy, float* dx,
                         std::int64_t count, cudaStream_t stream);

/// Row-wise softmax of logits[M,N].
void softmax_rows(const float* logits, float* probabilities, std::int64_t rows,
                  std::int64_t columns, cudaStream_t stream);
/// Softmax into probabilities and each row's −log p[label] into row_loss[M]; labels are
/// class indices held as floats, and one outside [0, N) makes its row's loss NaN (never an
/// out-of-bounds read).
void softmax_cross_entropy_rows(const float* logits, const float* labels,
                                float* probabilities, float* row_loss, std::int64_t rows,
                                std::int64_t columns, cudaStream_t stream);
/// dlogits = (probabilities − onehot(labels)) · factor, one fused pass.
void softmax_cross_entropy_backward(const float* probabilities, const float* labels,
                                    float factor, float* dlogits, std::int64_t rows,
                                    std::int64_t columns, cudaStream_t stream);
/// classes[row] = index of the row's largest value (the first, on ties), as a float.
void argmax_rows(const float* scores, float* classes, std::int64_t rows,
                 std::int64_t columns, cudaStream_t stream);

/// *sum = Σ values (in double); *sum is zeroed first.
void sum(const float* values, std::int64_t count, double* sum, cudaStream_t stream);
/// *sum = Σ values² (in double).
void sum_of_squares(const float* values, std::int64_t count, double* sum, cudaStream_t stream);
/// *sum = Σ (a − b)² (in double).
void sum_of_squared_differences(const float* a, const float* b, std::int64_t count, double* sum,
                                cudaStream_t stream);
/// Slices channel_sums() splits `images` into: `partial` holds channels × that doubles.
int channel_sum_slices(std::int64_t images);
/// db[c] = Σ over images and the plane of dy[N,C,plane] (a convolution's bias gradient),
/// in double, deterministically (partials added in order, no atomics).
void channel_sums(const float* dy, std::int64_t images, std::int64_t channels, std::int64_t plane,
                  double* partial, float* db, cudaStream_t stream);
/// *out = float(*sum · factor), or *out += that when `accumulate`: a reduction's result
/// handed on without a trip to the host.
void store_sum(const double* sum, float factor, float* out, bool accumulate, cudaStream_t stream);
/// d = factor · (p − t).
void scaled_difference(const float* p, const float* t, float factor, float* d,
                       std::int64_t count, cudaStream_t stream);

/// PyTorch's SGD with momentum and weight decay, one pass.
void sgd_update(float* parameter, const float* gradient, float* velocity, std::int64_t count,
                float learning_rate, float momentum, float weight_decay, cudaStream_t stream);
/// Adam with bias correction folded into step_size and inverse_sqrt_correction2, one pass.
void adam_update(float* parameter, const float* gradient, float* first_moment,
                 float* second_moment, std::int64_t count, float step_size,
                 float inverse_sqrt_correction2, float beta1, float beta2, float epsilon,
                 float weight_decay, cudaStream_t stream);

}  // namespace rml::cuda::kernels
