#pragma once
// Optimizers update parameters from the gradients backward() left in them. Their state
// (momentum buffers, Adam moments) is exposed so that checkpoints can save and restore it.

#include <cstdint>
#include <vector>

#include "compute/autodiff.hpp"
#include "compute/status.hpp"

namespace rml::nn {

class optimizer {
 public:
  virtual ~optimizer() = default;
  /// Applies one update to every parameter from its current gradient.
  virtual void step() = 0;
  /// The state tensors, in a fixed order, for checkpoints.
  virtual std::vector<tensor*> state() = 0;
  virtual float learning_rate() const = 0;
  virtual void set_learning_rate(float learning_rate) = 0;
  /// Whether step() queues the same ops with the same arguments every time, so that a
  /// recording of it (a CUDA graph) replays it exactly while the learning rate stays.
  virtual bool replayable() const = 0;
};

struct sgd_options {
  float learning_rate = 0.01f;
  float momentum = 0.0f;
  float weight_decay = 0.0f;
};
/// Checks the options a user gave; the error names the field and the value.
status validate(const sgd_options& options);

/// Stochastic gradient descent with momentum and weight decay (PyTorch's convention).
class sgd final : public optimizer {
 public:
  sgd(backend& compute, std::vector<parameter*> parameters, const sgd_options& options);
  void step() override;
  std::vector<tensor*> state() override;
  float learning_rate() const override { return options_.learning_rate; }
  void set_learning_rate(float learning_rate) override { options_.learning_rate = learning_rate; }
  bool replayable() const override { return true; }

 private:
  backend& compute_;
  std::vector<parameter*> parameters_;
  std::vector<tensor> velocities_;
  sgd_options options_;
};

struct adam_options {
  float learning_rate = 0.001f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float weight_decay = 0.0f;
};
status validate(const adam_options& options);

class adam final : public optimizer {
 public:
  adam(backend& compute, std::vector<parameter*> parameters, const adam_options& options);
  void step() override;
  std::vector<tensor*> state() override;
  float learning_rate() const override { return options_.learning_rate; }
  void set_learning_rate(float learning_rate) override { options_.learning_rate = learning_rate; }
  /// No: the bias corrections change with every step.
  bool replayable() const override { return false; }
  std::int64_t steps() const { return steps_; }

 private:
  backend& compute_;
  std::vector<parameter*> parameters_;
  std::vector<tensor> first_moments_, second_moments_;
  adam_options options_;
  std::int64_t steps_ = 0;
};

}  // namespace rml::nn
