#include "compute/autodiff.hpp"

#include <algorithm>

namespace rml {

tape::tape(backend& compute, mode recording) : compute_(compute), mode_(recording) {
  nodes_.reserve(64);
}

tape::node& tape::at(var handle) {
  RML_ASSERT(handle.index < nodes_.size(), "var recorded on this tape");
  return nodes_[handle.index];
}

const tape::node& tape::at(var handle) const {
  RML_ASSERT(handle.index < nodes_.size(), "var recorded on this tape");
  return nodes_[handle.index];
}

bool tape::needs_gradient(std::uint32_t index) const {
  return index != UINT32_MAX && nodes_[index].requires_gradient;
}

var tape::record(node&& entry) {
  if (mode_ == mode::training) {
    for (std::uint32_t input : entry.inputs) {
      if (needs_gradient(input)) entry.requires_gradient = true;
    }
  }
  nodes_.push_back(std::move(entry));
  return var{std::uint32_t(nodes_.size() - 1)};
}

var tape::input(const tensor& value) {
  RML_ASSERT(value.defined());
  node entry;
  // A host batch given to a device tape is copied over once, here.
  entry.value = on_device(compute_, value);
  return record(std::move(entry));
}

var tape::param(parameter& trainable) {
  RML_ASSERT(trainable.value.defined(), "parameter initialised");
  // One node per parameter, so that every use of it adds to the same gradient.
  for (std::uint32_t index = 0; index < nodes_.size(); ++index) {
    if (nodes_[index].trainable == &trainable) return var{index};
  }
  node entry;
  entry.kind = op::parameter;
  entry.value = trainable.value;
  entry.trainable = &trainable;
  entry.requires_gradient = mode_ == mode::training;
  return record(std::move(entry));
}

var tape::linear(var x, var w, var b) {
  const tensor& input = at(x).value;
  const tensor& weights = at(w).value;
  tensor bias = b.valid() ? at(b).value : tensor();
  node entry;
  entry.kind = op::linear;
  entry.inputs[0] = x.index;
  entry.inputs[1] = w.index;
  entry.inputs[2] = b.index;
  RML_ASSERT(input.rank() == 2 && weights.rank() == 2);
  entry.value = compute_.allocate({input.dim(0), weights.dim(0)});
  compute_.linear_forward(input, weights, bias, entry.value);
  return record(std::move(entry));
}

var tape::conv2d(var x, var w, var b, const conv2d_params& params) {
  const tensor& input = at(x).value;
  const tensor& weights = at(w).value;
  tensor bias = b.valid() ? at(b).value : tensor();
  RML_ASSERT(input.rank() == 4 && weights.rank() == 4);
  node entry;
  entry.kind = op::conv2d;
  entry.inputs[0] = x.index;
  entry.inputs[1] = w.index;
  entry.inputs[2] = b.index;
  entry.conv = params;
  entry.value = compute_.allocate(
      {input.dim(0), weights.dim(0),
       window_output_size(input.dim(2), weights.dim(2), params.stride, params.padding),
       window_output_size(input.dim(3), weights.dim(3), params.stride, params.padding)});
  compute_.conv2d_forward(input, weights, bias, params, entry.value);
  return record(std::move(entry));
}

var tape::max_pool2d(var x, const pool2d_params& params) {
  const tensor& input = at(x).value;
  RML_ASSERT(input.rank() == 4);
  node entry;
  entry.kind = op::max_pool2d;
  entry.inputs[0] = x.index;
  entry.pool = params;
  entry.value = compute_.allocate({input.dim(0), input.dim(1),
                               window_output_size(input.dim(2), params.kernel, params.stride, 0),
                               window_output_size(input.dim(3), params.kernel, params.stride, 0)});
  const bool for_training = mode_ == mode::training && needs_gradient(x.index);
  compute_.max_pool2d_forward(input, params, entry.value, for_training ? &entry.saved : nullptr);
  return record(std::move(entry));
}

var tape::activation(activation_kind kind, var x) {
  const tensor& input = at(x).value;
  node entry;
  entry.kind = op::activation;
  entry.inputs[0] = x.index;
  entry.activation = kind;
  entry.value = compute_.allocate(input.shape());
  compute_.activation_forward(kind, input, entry.value);
  return record(std::move(entry));
}

var tape::reshape(var x, const tensor_shape& shape) {
  node entry;
  entry.kind = op::reshape;
  entry.inputs[0] = x.index;
  entry.value = at(x).value.reshaped(shape);
  return record(std::move(entry));
}

var tape::add(var a, var b) {
  const tensor& left = at(a).value;
  const tensor& right = at(b).value;
  node entry;
  entry.kind = op::add;
  entry.inputs[0] = a.index;
  entry.inputs[1] = b.index;
  entry.value = compute_.allocate(left.shape());
  compute_.add(left, right, entry.value);
  return record(std::move(entry));
}

var tape::softmax_cross_entropy(var logits, std::span<const std::int32_t> labels) {
  return softmax_cross_entropy(logits, on_device(compute_, label_tensor(labels)));
}

var tape::softmax_cross_entropy(var logits, const tensor& labels) {
  const tensor& input = at(logits).value;
  RML_ASSERT(labels.device() == compute_.device(), "labels on the tape's device");
  node entry;
  entry.kind = op::cross_entropy;
  entry.inputs[0] = logits.index;
  entry.labels = labels;
  entry.saved = compute_.allocate(input.shape());
  entry.value = compute_.allocate({1});
  compute_.softmax_cross_entropy_forward(input, entry.labels, entry.saved, entry.value);
  return record(std::move(entry));
}

var tape::mse(var prediction, const tensor& target) {
  const tensor& input = at(prediction).value;
  node entry;
  entry.kind = op::mse;
  entry.inputs[0] = prediction.index;
  entry.saved = on_device(compute_, target);
  entry.value = compute_.allocate({1});
  compute_.mse_forward(input, entry.saved, entry.value);
  return record(std::move(entry));
}

const tensor& tape::value(var handle) const { return at(handle).value; }

const tensor& tape::gradient(var handle) const {
  const node& entry = at(handle);
  if (entry.kind == op::parameter) return entry.trainable->gradient;
  return entry.gradient;
}

const tensor& tape::probabilities(var loss) const {
  const node& entry = at(loss);
  RML_ASSERT(entry.kind == op::cross_entropy, "probabilities of a softmax_cross_entropy node");
  return entry.saved;
}

tape::gradient_slot tape::acquire(std::uint32_t target) {
  gradient_slot slot;
  if (!needs_gradient(target)) return slot;
  node& entry = nodes_[target];
  slot.target = target;
  tensor& gradient = entry.kind == op::parameter ? entry.trainable->gradient : entry.gradient;
  if (entry.gradient_written) {
    slot.temporary = compute_.allocate(entry.value.shape());
    slot.destination = &slot.temporary;
    return slot;
  }
  if (!gradient.defined() || !(gradient.shape() == entry.value.shape())) {
    gradient = compute_.allocate(entry.value.shape());
  }
  slot.destination = &gradient;
  return slot;
}

void tape::commit(gradient_slot& slot) {
  if (slot.destination == nullptr) return;
  node& entry = nodes_[slot.target];
  if (slot.temporary.defined()) {
    tensor& gradient = entry.kind == op::parameter ? entry.trainable->gradient : entry.gradient;
    compute_.add(gradient, slot.temporary, gradient);
  }
  entry.gradient_written = true;
}

tensor tape::filled(const tensor_shape& shape, float value) {
  tensor result = compute_.allocate(shape);
  compute_.fill(result, value);
  return result;
}

float tape::seed_of(const node& loss) {
  // The loss backward() starts from has gradient 1: known here, so a device tape need not
  // read it back (a wait for the device) on every step.
  if (&loss == backward_root_) return 1.0f;
  return read_scalar(compute_, loss.gradient);
}

void tape::backward(var loss) {
  RML_ASSERT(mode_ == mode::training, "backward() on a tape recorded for inference");
  node& root = at(loss);
  RML_ASSERT(root.value.numel() == 1, "backward() starts from a scalar loss");
  for (node& entry : nodes_) entry.gradient_written = false;
  if (!root.requires_gradient) return;
  root.gradient = filled(root.value.shape(), 1.0f);
  root.gradient_written = true;
  backward_root_ = &root;
  for (std::uint32_t index = loss.index + 1; index-- > 0;) {
    node& entry = nodes_[index];
    if (entry.requires_gradient && entry.gradient_written) backward_node(entry);
  }
  // A parameter the loss does not reach has a zero gradient, not last step's.
  for (node& entry : nodes_) {
    if (entry.kind == op::parameter && !entry.gradient_written) {
      if (!entry.trainable->gradient.defined()) {
        entry.trainable->gradient = compute_.allocate(entry.value.shape());
      }
      compute_.fill(entry.trainable->gradient, 0.0f);
    }
  }
}

void tape::backward_node(node& entry) {
  const tensor& dy = entry.gradient;
  switch (entry.kind) {
    case op::input:
    case op::parameter:
      return;
    case op::linear: {
      gradient_slot dx = acquire(entry.inputs[0]);
      gradient_slot dw = acquire(entry.inputs[1]);
      gradient_slot db = acquire(entry.inputs[2]);
      compute_.linear_backward(nodes_[entry.inputs[0]].value, nodes_[entry.inputs[1]].value, dy,
                               dx.destination, dw.destination, db.destination);
      commit(dx);
      commit(dw);
      commit(db);
      return;
    }
    case op::conv2d: {
      gradient_slot dx = acquire(entry.inputs[0]);
      gradient_slot dw = acquire(entry.inputs[1]);
      gradient_slot db = acquire(entry.inputs[2]);
      compute_.conv2d_backward(nodes_[entry.inputs[0]].value, nodes_[entry.inputs[1]].value, dy,
                               entry.conv, dx.destination, dw.destination, db.destination);
      commit(dx);
      commit(dw);
      commit(db);
      return;
    }
    case op::max_pool2d: {
      gradient_slot dx = acquire(entry.inputs[0]);
      compute_.max_pool2d_backward(nodes_[entry.inputs[0]].value, dy, entry.saved, entry.pool,
                                   *dx.destination);
      commit(dx);
      return;
    }
    case op::activation: {
      gradient_slot dx = acquire(entry.inputs[0]);
      compute_.activation_backward(entry.activation, entry.value, dy, *dx.destination);
      commit(dx);
      return;
    }
    case op::reshape: {
      gradient_slot dx = acquire(entry.inputs[0]);
      compute_.copy(dy.reshaped(dx.destination->shape()), *dx.destination);
      commit(dx);
      return;
    }
    case op::add: {
      for (std::uint32_t input : {entry.inputs[0], entry.inputs[1]}) {
        gradient_slot slot = acquire(input);
        if (slot.destination != nullptr) compute_.copy(dy, *slot.destination);
        commit(slot);
      }
      return;
    }
    case op::cross_entropy: {
      gradient_slot dx = acquire(entry.inputs[0]);
      compute_.softmax_cross_entropy_backward(entry.saved, entry.labels, seed_of(entry),
                                              *dx.destination);
      commit(dx);
      return;
    }
    case op::mse: {
      gradient_slot dx = acquire(entry.inputs[0]);
      compute_.mse_backward(nodes_[entry.inputs[0]].value, entry.saved, seed_of(entry),
                            *dx.destination);
      commit(dx);
      return;
    }
  }
}

void tape::clear() {
  nodes_.clear();
  backward_root_ = nullptr;
}

}  // namespace rml
