#include "compute/nn/optimizer.hpp"

#include <cmath>

namespace rml::nn {
namespace {
status check(bool valid, const char* field, float value, const char* requirement) {
  if (valid && std::isfinite(value)) return {};
  return error(errc::invalid_argument, std::string(field) + " must be " + requirement +
                                           ", got " + std::to_string(value));
}

tensor zeros_on(backend& compute, const tensor_shape& shape) {
  tensor result = compute.allocate(shape);
  compute.fill(result, 0.0f);
  return result;
}

template <class... Checks>
status first_failure(Checks... checks) {
  status result;
  ((result.ok() && !checks.ok() ? (void)(result = checks) : (void)0), ...);
  return result;
}
}  // namespace

status validate(const sgd_options& options) {
  return first_failure(
      check(options.learning_rate > 0, "learning rate", options.learning_rate, "> 0"),
      check(options.momentum >= 0 && options.momentum < 1, "momentum", options.momentum, "in [0, 1)"),
      check(options.weight_decay >= 0, "weight decay", options.weight_decay, ">= 0"));
}

status validate(const adam_options& options) {
  return first_failure(
      check(options.learning_rate > 0, "learning rate", options.learning_rate, "> 0"),
      check(options.beta1 >= 0 && options.beta1 < 1, "beta1", options.beta1, "in [0, 1)"),
      check(options.beta2 >= 0 && options.beta2 < 1, "beta2", options.beta2, "in [0, 1)"),
      check(options.epsilon > 0, "epsilon", options.epsilon, "> 0"),
      check(options.weight_decay >= 0, "weight decay", options.weight_decay, ">= 0"));
}

sgd::sgd(backend& compute, std::vector<parameter*> parameters, const sgd_options& options)
    : compute_(compute), parameters_(std::move(parameters)), options_(options) {
  RML_ASSERT(validate(options).ok(), "sgd options validated by the caller");
  for (parameter* trainable : parameters_) velocities_.push_back(zeros_on(compute_, trainable->value.shape()));
}

void sgd::step() {
  for (std::size_t index = 0; index < parameters_.size(); ++index) {
    parameter& trainable = *parameters_[index];
    RML_ASSERT(trainable.gradient.defined(), "backward() ran before step()");
    compute_.sgd_update(trainable.value, trainable.gradient, velocities_[index],
                        options_.learning_rate, options_.momentum, options_.weight_decay);
  }
}

std::vector<tensor*> sgd::state() {
  std::vector<tensor*> all;
  for (tensor& velocity : velocities_) all.push_back(&velocity);
  return all;
}

adam::adam(backend& compute, std::vector<parameter*> parameters, const adam_options& options)
    : compute_(compute), parameters_(std::move(parameters)), options_(options) {
  RML_ASSERT(validate(options).ok(), "adam options validated by the caller");
  for (parameter* trainable : parameters_) {
    first_moments_.push_back(zeros_on(compute_, trainable->value.shape()));
    second_moments_.push_back(zeros_on(compute_, trainable->value.shape()));
  }
}

void adam::step() {
  ++steps_;
  for (std::size_t index = 0; index < parameters_.size(); ++index) {
    parameter& trainable = *parameters_[index];
    RML_ASSERT(trainable.gradient.defined(), "backward() ran before step()");
    compute_.adam_update(trainable.value, trainable.gradient, first_moments_[index],
                         second_moments_[index], steps_, options_.learning_rate, options_.beta1,
                         options_.beta2, options_.epsilon, options_.weight_decay);
  }
}

std::vector<tensor*> adam::state() {
  std::vector<tensor*> all;
  for (tensor& moment : first_moments_) all.push_back(&moment);
  for (tensor& moment : second_moments_) all.push_back(&moment);
  return all;
}

}  // namespace rml::nn
