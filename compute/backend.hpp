#pragma once
// The backend interface: every op rml computes, forward and backward, on one device.
// The CPU backend (cpu/, oneDNN) is the reference; the CUDA backend (cuda/) slots in beside
// it with the same contracts, and tests run every op on every backend present.
//
// Contracts for every op:
// - Inputs and outputs live on this backend's device; output tensors are allocated by the
//   caller with the documented shape (shape errors here are bugs and assert).
// - Backward outputs are overwritten, not accumulated; a null output pointer skips it.
// - A backend is used from one thread at a time (compute actors own theirs); it caches
//   primitives by shape, so a steady training loop creates none after its first step.
// - A device backend queues its work: an op returns before its result exists. Whatever
//   hands a result to the host (copy() to a host tensor, read_scalar, argmax_to_host)
//   waits for the work queued before it, so host code never sees stale data.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "compute/tensor.hpp"

namespace rml {

struct conv2d_params {
  int stride = 1;
  int padding = 0;
};

struct pool2d_params {
  int kernel = 2;
  int stride = 2;
};

enum class activation_kind : std::uint8_t { relu, tanh, sigmoid };
const char* to_string(activation_kind kind);

/// Output size of a convolution or pooling window along one axis; 0 when the window does
/// not fit in the padded input.
inline std::int64_t window_output_size(std::int64_t input, std::int64_t kernel, int stride,
                                       int padding) {
  const std::int64_t span = input + 2 * padding - kernel;
  return span < 0 ? 0 : span / stride + 1;
}

/// Ops recorded once and replayed as a unit (a CUDA graph): the same kernels on the same
/// memory, so whatever they read is refreshed in place between replays.
class recorded_work {
 public:
  virtual ~recorded_work() = default;
  virtual void replay() = 0;
};

class backend {
 public:
  virtual ~backend() = default;
  virtual device_kind device() const = 0;
  /// "cpu (oneDNN 2.6, 2 threads)".
  virtual std::string description() const = 0;

  // Memory. Tensors that ops take live on this backend's device: allocate() makes them
  // (uninitialised; a device backend takes them from its pool, so a steady loop does not
  // allocate from the driver), fill() sets every element, copy() moves between any two
  // tensors of one shape, on this device or the host, either way.
  virtual tensor allocate(const tensor_shape& shape) = 0;
  virtual void fill(tensor& destination, float value) = 0;
  virtual void copy(const tensor& source, tensor& destination) = 0;
  /// Waits until every op queued so far has finished (nothing to wait for on the CPU).
  virtual void synchronize() {}
  /// Host memory that copies to and from this device fastest (page-locked on a GPU, so a
  /// copy from it is a DMA the host does not wait for); plain host memory on the CPU.
  virtual tensor allocate_host(const tensor_shape& shape) { return tensor::empty(shape); }
  /// Records the ops `work` queues, without running them, for replay. nullptr where the
  /// backend records nothing (the CPU, where a launch costs nothing to save). The tensors
  /// the ops touch must outlive the recording. Host memory they copy from or to must be
  /// allocate_host()'s; a copy to it is recorded without waiting, so the caller waits
  /// (synchronize()) after a replay before reading it.
  virtual std::unique_ptr<recorded_work> record(const std::function<void()>& work) {
    (void)work;
    return nullptr;
  }

  // y[M,N] = x[M,K] · w[N,K]ᵀ + b[N]; b may be undefined.
  virtual void linear_forward(const tensor& x, const tensor& w, const tensor& b, tensor& y) = 0;
  // dx[M,K] = dy·w; dw[N,K] = dyᵀ·x; db[N] = Σ_rows dy.
  virtual void linear_backward(const tensor& x, const tensor& w, const tensor& dy, tensor* dx,
                               tensor* dw, tensor* db) = 0;

  // x[N,C,H,W] ∗ w[O,C,KH,KW] + b[O] → y[N,O,OH,OW]; b may be undefined.
  virtual void conv2d_forward(const tensor& x, const tensor& w, const tensor& b,
                              const conv2d_params& params, tensor& y) = 0;
  virtual void conv2d_backward(const tensor& x, const tensor& w, const tensor& dy,
                               const conv2d_params& params, tensor* dx, tensor* dw,
                               tensor* db) = 0;

  // Max pooling without padding. When `workspace` is not null the forward pass is for
  // training: the backend fills it with what its backward pass needs (its size and layout
  // are the backend's own) and the caller hands it back unchanged.
  virtual void max_pool2d_forward(const tensor& x, const pool2d_params& params, tensor& y,
                                  tensor* workspace) = 0;
  virtual void max_pool2d_backward(const tensor& x, const tensor& dy, const tensor& workspace,
                                   const pool2d_params& params, tensor& dx) = 0;

  // Element-wise activations; backward uses the forward output y, which all three allow.
  virtual void activation_forward(activation_kind kind, const tensor& x, tensor& y) = 0;
  virtual void activation_backward(activation_kind kind, const tensor& y, const tensor& dy,
                                   tensor& dx) = 0;

  // Row-wise softmax of logits[M,N].
  virtual void softmax_forward(const tensor& logits, tensor& probabilities) = 0;
  // Losses leave their value in a one-element tensor on the device, so a training step
  // queues forward, backward and update without waiting for the device (and can be
  // recorded whole). Labels are a [M] tensor of class indices held as floats (exact far
  // beyond any class count; see label_tensor()), on the backend's device, in [0, N) (the
  // caller validates user data before it gets here).
  // loss = mean over rows of −log softmax(logits)[label]; fills probabilities[M,N] for backward.
  virtual void softmax_cross_entropy_forward(const tensor& logits, const tensor& labels,
                                             tensor& probabilities, tensor& loss) = 0;
  // dlogits = (probabilities − onehot(labels)) · scale / M.
  virtual void softmax_cross_entropy_backward(const tensor& probabilities, const tensor& labels,
                                              float scale, tensor& dlogits) = 0;

  // loss = mean of (prediction − target)² over all elements; backward: 2·(p − t)·scale / count.
  virtual void mse_forward(const tensor& prediction, const tensor& target, tensor& loss) = 0;
  virtual void mse_backward(const tensor& prediction, const tensor& target, float scale,
                            tensor& dprediction) = 0;

  // out = a + b (same shapes); out may alias a or b.
  virtual void add(const tensor& a, const tensor& b, tensor& out) = 0;
  // x *= factor, in place.
  virtual void scale(tensor& x, float factor) = 0;
  // total[0] += Σ x² (each tensor's sum taken in double): a global gradient norm over many
  // tensors, read once.
  virtual void add_sum_of_squares(const tensor& x, tensor& total) = 0;
  // classes[M] = index of the largest value of each row of scores[M,N] (the first, on
  // ties), as a float (like labels), on the device: recordable with the pass before it.
  virtual void argmax_rows(const tensor& scores, tensor& classes) = 0;

  // Optimizer updates, in place, on parameters and their state.
  // SGD: g' = g + weight_decay·p; v = momentum·v + g'; p -= lr·v (PyTorch's convention).
  virtual void sgd_update(tensor& parameter, const tensor& gradient, tensor& velocity,
                          float learning_rate, float momentum, float weight_decay) = 0;
  // Adam with bias correction for step `step` (≥ 1); weight decay added to the gradient.
  virtual void adam_update(tensor& parameter, const tensor& gradient, tensor& first_moment,
                           tensor& second_moment, std::int64_t step, float learning_rate,
                           float beta1, float beta2, float epsilon, float weight_decay) = 0;
};

/// Adam's bias corrections for step `step` (≥ 1), folded so that every backend rounds the
/// update alike: p -= step_size · m / (√v · inverse_sqrt_correction2 + ε).
struct adam_factors {
  float step_size;
  float inverse_sqrt_correction2;
};
adam_factors fold_adam_corrections(std::int64_t step, float learning_rate, float beta1, float beta2);

/// `value` on `compute`'s device: the tensor itself when it is there already, else a copy.
tensor on_device(backend& compute, const tensor& value);
/// `value` in host memory: the tensor itself when it is there already, else a copy made
/// through `compute` (which waits for the ops that produced it).
tensor on_host(backend& compute, const tensor& value);
/// The predicted class of each row of scores[M,N] (on `compute`'s device) into host memory.
void argmax_to_host(backend& compute, const tensor& scores, std::span<std::int32_t> classes);
/// The one element of a one-element tensor, read through `compute`.
float read_scalar(backend& compute, const tensor& value);
/// Class labels as the losses take them: a [N] host tensor of the indices as floats.
/// Asserts each lies in [0, 2^24) (exact as a float); callers check the class range.
tensor label_tensor(std::span<const std::int32_t> labels);

/// Options of the CPU backend.
struct cpu_backend_options {
  /// Threads its kernels may use; 0 means every core of the machine.
  int threads = 0;
};

/// The oneDNN backend. Defined in cpu/; this factory keeps oneDNN's headers out of every
/// file that only needs the interface.
std::unique_ptr<backend> make_cpu_backend(const cpu_backend_options& options = {});

/// Number of cores the process may run on.
int available_cores();

}  // namespace rml
