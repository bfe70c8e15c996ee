// The CUDA backend's own kernels (kernels.hpp says which and why). Element-wise kernels
// use grid-stride loops over a grid sized to the device, row-wise ones a warp per row
// (rows here are class scores: a few to a few thousand columns), reductions one double
// accumulator per block, added atomically.
#include "compute/cuda/kernels.hpp"

#include <cmath>
#include <cstdint>

namespace rml::cuda::kernels {
namespace {

constexpr int block_threads = 256;
constexpr int warp = 32;

unsigned blocks_for(std::int64_t count) {
  // Enough blocks to fill every multiprocessor several times over; the loops stride.
  const std::int64_t wanted = (count + block_threads - 1) / block_threads;
  return unsigned(wanted < 1 ? 1 : (wanted > 4096 ? 4096 : wanted));
}

__device__ inline std::int64_t first_index() {
  return std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t stride() { return std::int64_t(gridDim.x) * blockDim.x; }

__device__ inline float warp_max(float value) {
  for (int offset = warp / 2; offset > 0; offset /= 2)
    value = fmaxf(value, __shfl_xor_sync(0xffffffffu, value, offset));
  return value;
}
__device__ inline float warp_sum(float value) {
  for (int offset = warp / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}
__device__ inline double warp_sum(double value) {
  for (int offset = warp / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

__global__ void fill_kernel(float* out, float value, std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) out[i] = value;
}

__global__ void add_bias_rows_kernel(float* y, const float* bias, std::int64_t rows,
                                     std::int64_t columns) {
  const std::int64_t count = rows * columns;
  for (std::int64_t i = first_index(); i < count; i += stride()) y[i] += bias[i % columns];
}

__global__ void add_kernel(const float* a, const float* b, float* out, std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) out[i] = a[i] + b[i];
}

__global__ void scale_kernel(float* x, float factor, std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) x[i] *= factor;
}

template <activation Kind>
__global__ void activation_forward_kernel(const float* x, float* y, std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) {
    const float v = x[i];
    if constexpr (Kind == activation::relu) y[i] = v > 0.0f ? v : 0.0f;
    if constexpr (Kind == activation::tanh) y[i] = tanhf(v);
    if constexpr (Kind == activation::sigmoid) y[i] = 1.0f / (1.0f + expf(-v));
  }
}

template <activation Kind>
__global__ void activation_backward_kernel(const float* y, const float* dy, float* dx,
                                           std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) {
    const float out = y[i];
    if constexpr (Kind == activation::relu) dx[i] = out > 0.0f ? dy[i] : 0.0f;
    if constexpr (Kind == activation::tanh) dx[i] = dy[i] * (1.0f - out * out);
    if constexpr (Kind == activation::sigmoid) dx[i] = dy[i] * out * (1.0f - out);
  }
}

// One warp per row: the row's maximum, then Σ exp(x − max), then the normalised values.
// Returns log Σ exp(x − max) and the maximum, for the loss.
__device__ inline void softmax_row(const float* in, float* out, std::int64_t columns, int lane,
                                   float& maximum, float& sum) {
  maximum = -INFINITY;
  for (std::int64_t c = lane; c < columns; c += warp) maximum = fmaxf(maximum, in[c]);
  maximum = warp_max(maximum);
  sum = 0.0f;
  for (std::int64_t c = lane; c < columns; c += warp) {
    const float e = expf(in[c] - maximum);
    out[c] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  const float inverse = 1.0f / sum;
  for (std::int64_t c = lane; c < columns; c += warp) out[c] *= inverse;
}

constexpr int rows_per_block = block_threads / warp;

__global__ void softmax_rows_kernel(const float* logits, float* probabilities, std::int64_t rows,
                                    std::int64_t columns) {
  const std::int64_t row = std::int64_t(blockIdx.x) * rows_per_block + threadIdx.x / warp;
  if (row >= rows) return;
  float maximum, sum;
  softmax_row(logits + row * columns, probabilities + row * columns, columns, threadIdx.x % warp,
              maximum, sum);
}

/// A row's class from its float label; -1 (never a column) when it is not one.
__device__ inline std::int64_t class_of(float label, std::int64_t columns) {
  return (label >= 0.0f && label < float(columns)) ? std::int64_t(label) : -1;
}

__global__ void softmax_cross_entropy_rows_kernel(const float* logits, const float* labels,
                                                  float* probabilities, float* row_loss,
                                                  std::int64_t rows, std::int64_t columns) {
  const std::int64_t row = std::int64_t(blockIdx.x) * rows_per_block + threadIdx.x / warp;
  if (row >= rows) return;
  const int lane = threadIdx.x % warp;
  const float* in = logits + row * columns;
  float maximum, sum;
  softmax_row(in, probabilities + row * columns, columns, lane, maximum, sum);
  if (lane == 0) {
    const std::int64_t label = class_of(labels[row], columns);
    row_loss[row] = label < 0 ? NAN : logf(sum) - (in[label] - maximum);
  }
}

__global__ void softmax_cross_entropy_backward_kernel(const float* probabilities,
                                                      const float* labels, float factor,
                                                      float* dlogits, std::int64_t rows,
                                                      std::int64_t columns) {
  const std::int64_t count = rows * columns;
  for (std::int64_t i = first_index(); i < count; i += stride()) {
    const std::int64_t row = i / columns;
    const float hot = class_of(labels[row], columns) == i - row * columns ? 1.0f : 0.0f;
    dlogits[i] = (probabilities[i] - hot) * factor;
  }
}

__global__ void argmax_rows_kernel(const float* scores, float* classes, std::int64_t rows,
                                   std::int64_t columns) {
  const std::int64_t row = std::int64_t(blockIdx.x) * rows_per_block + threadIdx.x / warp;
  if (row >= rows) return;
  const int lane = threadIdx.x % warp;
  const float* in = scores + row * columns;
  float best = -INFINITY;
  std::int64_t best_index = columns;  // past the end: a lane that saw nothing never wins
  for (std::int64_t c = lane; c < columns; c += warp) {
    if (best_index == columns || in[c] > best) {
      best = in[c];
      best_index = c;
    }
  }
  for (int offset = warp / 2; offset > 0; offset /= 2) {
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const std::int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, offset);
    if (other > best || (other == best && other_index < best_index)) {
      best = other;
      best_index = other_index;
    }
  }
  if (lane == 0) classes[row] = float(best_index == columns ? 0 : best_index);
}

// One double per block, added atomically into *result: element access stays coalesced and
// only a few hundred atomics land on one address.
template <class Term>
__global__ void reduce_kernel(std::int64_t count, double* result, Term term) {
  double local = 0.0;
  for (std::int64_t i = first_index(); i < count; i += stride()) local += term(i);
  local = warp_sum(local);
  __shared__ double partial[block_threads / warp];
  const int lane = threadIdx.x % warp, which = threadIdx.x / warp;
  if (lane == 0) partial[which] = local;
  __syncthreads();
  if (which == 0) {
    local = lane < block_threads / warp ? partial[lane] : 0.0;
    local = warp_sum(local);
    if (lane == 0) atomicAdd(result, local);
  }
}

template <class Term>
void reduce(std::int64_t count, double* result, Term term, cudaStream_t stream) {
  cudaMemsetAsync(result, 0, sizeof(double), stream);
  const std::int64_t wanted = (count + block_threads - 1) / block_threads;
  const unsigned blocks = unsigned(wanted < 1 ? 1 : (wanted > 264 ? 264 : wanted));
  reduce_kernel<<<blocks, block_threads, 0, stream>>>(count, result, term);
}

__global__ void store_sum_kernel(const double* sum, float factor, float* out, bool accumulate) {
  const float value = float(*sum * double(factor));
  *out = accumulate ? *out + value : value;
}

// Channel sums of dy[N,C,HW]: block (slice, channel) sums its slice of the images' planes
// of one channel into partial[channel][slice]; a second pass adds each channel's partials
// in order. Deterministic, and with enough blocks to fill the device where cuDNN's
// cudnnConvolutionBackwardBias ran one slow pass (a third of a LeNet step at batch 512).
constexpr int channel_slices_max = 32;

__global__ void channel_partial_sums_kernel(const float* dy, std::int64_t images, std::int64_t channels,
                                            std::int64_t plane, std::int64_t images_per_slice,
                                            double* partial) {
  const std::int64_t channel = blockIdx.y, slice = blockIdx.x;
  const std::int64_t first = slice * images_per_slice;
  const std::int64_t last = first + images_per_slice < images ? first + images_per_slice : images;
  const std::int64_t count = (last > first ? last - first : 0) * plane;
  float local = 0.0f;
  for (std::int64_t k = threadIdx.x; k < count; k += blockDim.x) {
    const std::int64_t image = first + k / plane;
    local += dy[(image * channels + channel) * plane + k % plane];
  }
  double sum = warp_sum(double(local));
  __shared__ double partials[block_threads / warp];
  const int lane = threadIdx.x % warp, which = threadIdx.x / warp;
  if (lane == 0) partials[which] = sum;
  __syncthreads();
  if (which == 0) {
    sum = warp_sum(lane < block_threads / warp ? partials[lane] : 0.0);
    if (lane == 0) partial[channel * gridDim.x + slice] = sum;
  }
}

__global__ void channel_total_kernel(const double* partial, std::int64_t channels, int slices, float* db) {
  const std::int64_t channel = first_index();
  if (channel >= channels) return;
  double sum = 0.0;
  for (int slice = 0; slice < slices; ++slice) sum += partial[channel * slices + slice];
  db[channel] = float(sum);
}

struct value_term {
  const float* values;
  __device__ double operator()(std::int64_t i) const { return double(values[i]); }
};
struct square_term {
  const float* values;
  __device__ double operator()(std::int64_t i) const {
    const double v = values[i];
    return v * v;
  }
};
struct squared_difference_term {
  const float* a;
  const float* b;
  __device__ double operator()(std::int64_t i) const {
    const double d = double(a[i]) - double(b[i]);
    return d * d;
  }
};

__global__ void scaled_difference_kernel(const float* p, const float* t, float factor, float* d,
                                         std::int64_t count) {
  for (std::int64_t i = first_index(); i < count; i += stride()) d[i] = factor * (p[i] - t[i]);
}

__global__ void sgd_kernel(float* __restrict__ p, const float* __restrict__ g,
                           float* __restrict__ v, std::int64_t count, float learning_rate,
                           float momentum, float weight_decay) {
  for (std::int64_t i = first_index(); i < count; i += stride()) {
    const float step = g[i] + weight_decay * p[i];
    const float velocity = momentum * v[i] + step;
    v[i] = velocity;
    p[i] -= learning_rate * velocity;
  }
}

__global__ void adam_kernel(float* __restrict__ p, const float* __restrict__ g,
                            float* __restrict__ m, float* __restrict__ v, std::int64_t count,
                            float step_size, float inverse_sqrt_correction2, float beta1,
                            float beta2, float epsilon, float weight_decay) {
  for (std::int64_t i = first_index(); i < count; i += stride()) {
    const float grad = g[i] + weight_decay * p[i];
    const float first = beta1 * m[i] + (1.0f - beta1) * grad;
    const float second = beta2 * v[i] + (1.0f - beta2) * grad * grad;
    m[i] = first;
    v[i] = second;
    p[i] -= step_size * first / (sqrtf(second) * inverse_sqrt_correction2 + epsilon);
  }
}

unsigned row_blocks(std::int64_t rows) { return unsigned((rows + rows_per_block - 1) / rows_per_block); }

}  // namespace

void fill(float* out, float value, std::int64_t count, cudaStream_t stream) {
  fill_kernel<<<blocks_for(count), block_threads, 0, stream>>>(out, value, count);
}

void add_bias_rows(float* y, const float* bias, std::int64_t rows, std::int64_t columns,
                   cudaStream_t stream) {
  add_bias_rows_kernel<<<blocks_for(rows * columns), block_threads, 0, stream>>>(y, bias, rows, columns);
}

void add(const float* a, const float* b, float* out, std::int64_t count, cudaStream_t stream) {
  add_kernel<<<blocks_for(count), block_threads, 0, stream>>>(a, b, out, count);
}

void scale(float* x, float factor, std::int64_t count, cudaStream_t stream) {
  scale_kernel<<<blocks_for(count), block_threads, 0, stream>>>(x, factor, count);
}

void activation_forward(activation kind, const float* x, float* y, std::int64_t count,
                        cudaStream_t stream) {
  const unsigned blocks = blocks_for(count);
  switch (kind) {
    case activation::relu:
      activation_forward_kernel<activation::relu><<<blocks, block_threads, 0, stream>>>(x, y, count);
      return;
    case activation::tanh:
      activation_forward_kernel<activation::tanh><<<blocks, block_threads, 0, stream>>>(x, y, count);
      return;
    case activation::sigmoid:
      activation_forward_kernel<activation::sigmoid><<<blocks, block_threads, 0, stream>>>(x, y, count);
      return;
  }
}

void activation_backward(activation kind, const float* y, const float* dy, float* dx,
                         std::int64_t count, cudaStream_t stream) {
  const unsigned blocks = blocks_for(count);
  switch (kind) {
    case activation::relu:
      activation_backward_kernel<activation::relu><<<blocks, block_threads, 0, stream>>>(y, dy, dx, count);
      return;
    case activation::tanh:
      activation_backward_kernel<activation::tanh><<<blocks, block_threads, 0, stream>>>(y, dy, dx, count);
      return;
    case activation::sigmoid:
      activation_backward_kernel<activation::sigmoid><<<blocks, block_threads, 0, stream>>>(y, dy, dx, count);
      return;
  }
}

void softmax_rows(const float* logits, float* probabilities, std::int64_t rows,
                  std::int64_t columns, cudaStream_t stream) {
  softmax_rows_kernel<<<row_blocks(rows), block_threads, 0, stream>>>(logits, probabilities, rows, columns);
}

void softmax_cross_entropy_rows(const float* logits, const float* labels,
                                float* probabilities, float* row_loss, std::int64_t rows,
                                std::int64_t columns, cudaStream_t stream) {
  softmax_cross_entropy_rows_kernel<<<row_blocks(rows), block_threads, 0, stream>>>(
      logits, labels, probabilities, row_loss, rows, columns);
}

void softmax_cross_entropy_backward(const float* probabilities, const float* labels,
                                    float factor, float* dlogits, std::int64_t rows,
                                    std::int64_t columns, cudaStream_t stream) {
  softmax_cross_entropy_backward_kernel<<<blocks_for(rows * columns), block_threads, 0, stream>>>(
      probabilities, labels, factor, dlogits, rows, columns);
}

void argmax_rows(const float* scores, float* classes, std::int64_t rows,
                 std::int64_t columns, cudaStream_t stream) {
  argmax_rows_kernel<<<row_blocks(rows), block_threads, 0, stream>>>(scores, classes, rows, columns);
}

void sum(const float* values, std::int64_t count, double* result, cudaStream_t stream) {
  reduce(count, result, value_term{values}, stream);
}

void sum_of_squares(const float* values, std::int64_t count, double* result, cudaStream_t stream) {
  reduce(count, result, square_term{values}, stream);
}

void sum_of_squared_differences(const float* a, const float* b, std::int64_t count,
                                double* result, cudaStream_t stream) {
  reduce(count, result, squared_difference_term{a, b}, stream);
}

int channel_sum_slices(std::int64_t images) {
  return int(images < channel_slices_max ? (images < 1 ? 1 : images) : channel_slices_max);
}

void channel_sums(const float* dy, std::int64_t images, std::int64_t channels, std::int64_t plane,
                  double* partial, float* db, cudaStream_t stream) {
  const int slices = channel_sum_slices(images);
  const std::int64_t per_slice = (images + slices - 1) / slices;
  channel_partial_sums_kernel<<<dim3(unsigned(slices), unsigned(channels)), block_threads, 0, stream>>>(
      dy, images, channels, plane, per_slice, partial);
  channel_total_kernel<<<blocks_for(channels), block_threads, 0, stream>>>(partial, channels, slices, db);
}

void store_sum(const double* sum, float factor, float* out, bool accumulate, cudaStream_t stream) {
  store_sum_kernel<<<1, 1, 0, stream>>>(sum, factor, out, accumulate);
}

void scaled_difference(const float* p, const float* t, float factor, float* d,
                       std::int64_t count, cudaStream_t stream) {
  scaled_difference_kernel<<<blocks_for(count), block_threads, 0, stream>>>(p, t, factor, d, count);
}

void sgd_update(float* parameter, const float* gradient, float* velocity, std::int64_t count,
                float learning_rate, float momentum, float weight_decay, cudaStream_t stream) {
  sgd_kernel<<<blocks_for(count), block_threads, 0, stream>>>(parameter, gradient, velocity, count,
                                                              learning_rate, momentum, weight_decay);
}

void adam_update(float* parameter, const float* gradient, float* first_moment,
                 float* second_moment, std::int64_t count, float step_size,
                 float inverse_sqrt_correction2, float beta1, float beta2, float epsilon,
                 float weight_decay, cudaStream_t stream) {
  adam_kernel<<<blocks_for(count), block_threads, 0, stream>>>(
      parameter, gradient, first_moment, second_moment, count, step_size,
      inverse_sqrt_correction2, beta1, beta2, epsilon, weight_decay);
}

}  // namespace rml::cuda::kernels
