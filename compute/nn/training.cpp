#include "compute/nn/training.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace rml::nn {

void gather_rows(const tensor& source, std::span<const std::uint32_t> indices, tensor& destination) {
  RML_ASSERT(source.rank() == 2 && destination.rank() == 2);
  const std::int64_t width = source.dim(1);
  assert_same_shape(destination.shape(), {std::int64_t(indices.size()), width}, "gathered rows");
  for (std::size_t row = 0; row < indices.size(); ++row) {
    RML_ASSERT(indices[row] < source.dim(0));
    std::memcpy(destination.data() + std::int64_t(row) * width,
                source.data() + std::int64_t(indices[row]) * width, std::size_t(width) * sizeof(float));
  }
}

classifier_session::classifier_session(sequential& model, optimizer& update, backend& compute)
    : model_(model), update_(update), compute_(compute),
      training_tape_(compute, tape::mode::training),
      inference_(model, compute) {
  RML_ASSERT(model.output_shape().rank() == 1, "a classifier ends in one score per class");
  for (const parameter* each : model.parameters()) {
    RML_ASSERT(each->value.device() == compute.device(), "model placed on the session's device");
  }
}

float classifier_session::train_step(const tensor& features, std::span<const std::int32_t> labels,
                                      std::span<std::int32_t> predicted) {
  training_tape_.clear();
  var logits = model_.forward(training_tape_, training_tape_.input(features));
  if (!predicted.empty()) compute_.argmax_rows(training_tape_.value(logits), predicted);
  var loss = training_tape_.softmax_cross_entropy(logits, labels);
  training_tape_.backward(loss);
  update_.step();
  return read_scalar(compute_, training_tape_.value(loss));
}

step_outcome classifier_session::guarded_step(const tensor& features, std::span<const std::int32_t> labels,
                                              std::span<std::int32_t> predicted, float gradient_norm_max) {
  RML_ASSERT(gradient_norm_max >= 0);
  step_outcome outcome;
  training_tape_.clear();
  var logits = model_.forward(training_tape_, training_tape_.input(features));
  if (!predicted.empty()) compute_.argmax_rows(training_tape_.value(logits), predicted);
  var loss = training_tape_.softmax_cross_entropy(logits, labels);
  outcome.loss = read_scalar(compute_, training_tape_.value(loss));
  if (!std::isfinite(outcome.loss)) return outcome;
  training_tape_.backward(loss);
  double squares = 0;
  const auto parameters = model_.parameters();
  for (const parameter* each : parameters) squares += compute_.sum_of_squares(each->gradient);
  outcome.gradient_norm = std::sqrt(squares);
  if (!std::isfinite(outcome.gradient_norm)) return outcome;
  if (gradient_norm_max > 0 && outcome.gradient_norm > gradient_norm_max) {
    const float scale = float(gradient_norm_max / outcome.gradient_norm);
    for (parameter* each : parameters) compute_.scale(each->gradient, scale);
    outcome.clipped = true;
  }
  update_.step();
  outcome.applied = true;
  return outcome;
}

void classifier_session::predict(const tensor& features, std::span<std::int32_t> classes) {
  compute_.argmax_rows(inference_.logits(features), classes);
}

tensor classifier_session::probabilities(const tensor& features) {
  const tensor& scores = inference_.logits(features);
  tensor result = tensor::empty(scores.shape());
  softmax_to_host(compute_, scores, result);
  return result;
}

epoch_summary train_epoch(classifier_session& session, const data::dataset& data,
                          std::int64_t batch_rows, std::uint64_t order_seed,
                          const step_observer& observe) {
  RML_ASSERT(batch_rows >= 1 && data.rows() >= 1);
  const std::vector<std::uint32_t> order = shuffled_indices(std::uint32_t(data.rows()), order_seed);
  const std::int64_t width = data.feature_count();
  tensor batch = tensor::empty({batch_rows, width});
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch_rows));
  epoch_summary summary;
  double loss_sum = 0.0;
  for (std::int64_t begin = 0; begin < data.rows(); begin += batch_rows) {
    const std::int64_t rows = std::min(batch_rows, data.rows() - begin);
    std::span<const std::uint32_t> indices(order.data() + begin, std::size_t(rows));
    tensor features = rows == batch_rows ? batch : batch.rows(0, rows);
    gather_rows(data.features, indices, features);
    for (std::int64_t row = 0; row < rows; ++row) labels[std::size_t(row)] = data.labels[indices[std::size_t(row)]];
    const float loss = session.train_step(features, {labels.data(), std::size_t(rows)});
    loss_sum += double(loss) * double(rows);
    summary.samples += rows;
    ++summary.steps;
    if (observe) observe(summary.steps, summary.samples, loss);
  }
  summary.mean_loss = loss_sum / double(summary.samples);
  return summary;
}

double evaluate_accuracy(classifier_session& session, const data::dataset& data,
                         std::int64_t batch_rows) {
  RML_ASSERT(batch_rows >= 1 && data.rows() >= 1);
  std::vector<std::int32_t> predicted(static_cast<std::size_t>(data.rows()));
  for (std::int64_t begin = 0; begin < data.rows(); begin += batch_rows) {
    const std::int64_t end = std::min(begin + batch_rows, data.rows());
    session.predict(data.features.rows(begin, end),
                    {predicted.data() + begin, std::size_t(end - begin)});
  }
  std::int64_t correct = 0;
  for (std::int64_t row = 0; row < data.rows(); ++row) correct += predicted[std::size_t(row)] == data.labels[std::size_t(row)];
  return double(correct) / double(data.rows());
}

}  // namespace rml::nn
