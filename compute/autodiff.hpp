#pragma once
// Reverse-mode automatic differentiation. A tape records each op of a forward pass with
// what its backward pass needs; backward() walks the tape in reverse and fills the gradient
// of every recorded value that depends on a parameter. Any composition of the ops below
// differentiates.
//
// Ownership: the tape owns the values and gradients of its nodes; parameters are owned by
// their layers and outlive the tape's use of them. backward() overwrites (does not add to)
// the gradient of every parameter recorded on the tape. A tape is used by one thread.
// clear() forgets every node and keeps the tape's capacity for the next step.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "compute/backend.hpp"

namespace rml {

/// A trainable tensor with its gradient, owned by a layer.
struct parameter {
  std::string name;
  tensor value;
  tensor gradient;
};

/// A handle to a value recorded on a tape.
struct var {
  std::uint32_t index = UINT32_MAX;
  bool valid() const { return index != UINT32_MAX; }
};

class tape {
 public:
  enum class mode : std::uint8_t {
    /// Records what backward() needs.
    training,
    /// Forward only: keeps nothing for a backward pass (which then asserts).
    inference,
  };

  explicit tape(backend& compute, mode recording = mode::training);
  tape(const tape&) = delete;
  tape& operator=(const tape&) = delete;

  backend& compute() { return compute_; }
  mode recording() const { return mode_; }

  /// A value that needs no gradient (a batch of inputs). The tensor is shared, not copied,
  /// when it is on the tape's device already; a host tensor on a device tape is copied.
  var input(const tensor& value);
  /// A parameter: its gradient lands in parameter.gradient after backward().
  var param(parameter& trainable);

  /// x[M,K] → x·wᵀ + b; b may be an invalid var (no bias).
  var linear(var x, var w, var b);
  /// x[N,C,H,W] → conv2d(x, w) + b; b may be an invalid var.
  var conv2d(var x, var w, var b, const conv2d_params& params);
  var max_pool2d(var x, const pool2d_params& params);
  var activation(activation_kind kind, var x);
  var relu(var x) { return activation(activation_kind::relu, x); }
  var tanh(var x) { return activation(activation_kind::tanh, x); }
  var sigmoid(var x) { return activation(activation_kind::sigmoid, x); }
  /// The same values with another shape of equal element count.
  var reshape(var x, const tensor_shape& shape);
  var add(var a, var b);
  /// Scalar: mean cross-entropy of softmax(logits[M,N]) against labels (copied) in [0, N).
  var softmax_cross_entropy(var logits, std::span<const std::int32_t> labels);
  /// The same with the labels already on the tape's device, as label_tensor() makes them
  /// (shared, not copied: a recorded step reads new labels from the same place).
  var softmax_cross_entropy(var logits, const tensor& labels);
  /// Scalar: mean squared difference against a target of the prediction's shape (copied to
  /// the tape's device when it is not there).
  var mse(var prediction, const tensor& target);

  const tensor& value(var handle) const;
  /// The gradient of the last backward() loss with respect to this value; undefined if the
  /// value does not depend on a parameter or backward() did not reach it.
  const tensor& gradient(var handle) const;
  /// The softmax probabilities a softmax_cross_entropy node computed on its way.
  const tensor& probabilities(var loss) const;

  /// Fills gradients with respect to `loss`, a scalar recorded on this tape.
  void backward(var loss);
  void clear();
  std::size_t size() const { return nodes_.size(); }

 private:
  enum class op : std::uint8_t {
    input, parameter, linear, conv2d, max_pool2d, activation, reshape, add, cross_entropy, mse,
  };
  struct node {
    op kind = op::input;
    bool requires_gradient = false;
    bool gradient_written = false;
    std::uint32_t inputs[3] = {UINT32_MAX, UINT32_MAX, UINT32_MAX};
    tensor value;
    tensor gradient;
    /// Pool workspace, softmax probabilities or mse target.
    tensor saved;
    parameter* trainable = nullptr;
    conv2d_params conv{};
    pool2d_params pool{};
    activation_kind activation = activation_kind::relu;
    /// A cross-entropy node's labels, on the device.
    tensor labels;
  };
  /// Where one backward contribution goes: straight into the target's gradient when it is
  /// the first, else into a temporary that commit() adds on.
  struct gradient_slot {
    std::uint32_t target = UINT32_MAX;
    tensor* destination = nullptr;
    tensor temporary;
  };

  var record(node&& entry);
  node& at(var handle);
  const node& at(var handle) const;
  bool needs_gradient(std::uint32_t index) const;
  gradient_slot acquire(std::uint32_t target);
  void commit(gradient_slot& slot);
  void backward_node(node& entry);
  /// A tensor on this tape's device with every element `value`.
  tensor filled(const tensor_shape& shape, float value);
  /// The gradient flowing into a scalar loss node.
  float seed_of(const node& loss);

  backend& compute_;
  mode mode_;
  std::vector<node> nodes_;
  const node* backward_root_ = nullptr;
};

}  // namespace rml
