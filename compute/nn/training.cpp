#include "compute/nn/training.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

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

struct classifier_session::recorded_step {
  tensor_shape shape;
  /// The recorded ops read the batch from `input` and `labels` and leave their values on
  /// `recorder`, which the recording keeps (the memory it was made on stays its own).
  tensor input, labels;
  std::unique_ptr<tape> recorder;
  var logits, loss;
  /// [2 + rows]: the loss, the squared gradient norm and each row's predicted class, filled
  /// by `readout_work`.
  tensor readout;
  std::unique_ptr<recorded_work> gradients, readout_work;
  /// places_of() when this was recorded.
  std::vector<const float*> places;
};

namespace {
/// Where the memory the recorded ops read and write lives: each parameter's value and
/// gradient and the optimizer's state. A recording is valid while these stay put.
std::vector<const float*> places_of(sequential& model, optimizer& update) {
  std::vector<const float*> places;
  for (const parameter* each : model.parameters()) {
    places.push_back(each->value.data());
    places.push_back(each->gradient.data());
  }
  for (const tensor* held : update.state()) places.push_back(held->data());
  return places;
}
}  // namespace

classifier_session::classifier_session(sequential& model, optimizer& update, backend& compute)
    : model_(model), update_(update), compute_(compute),
      training_tape_(compute, tape::mode::training),
      inference_(model, compute) {
  RML_ASSERT(model.output_shape().rank() == 1, "a classifier ends in one score per class");
  for (const parameter* each : model.parameters()) {
    RML_ASSERT(each->value.device() == compute.device(), "model placed on the session's device");
  }
}

classifier_session::~classifier_session() = default;

classifier_session::recorded_step* classifier_session::recorded_for(const tensor& features) {
  if (recorded_steps_.empty() || !step_recording_failure_.empty()) return nullptr;
  auto found = std::find_if(recorded_steps_.begin(), recorded_steps_.end(),
                            [&](const auto& entry) { return entry->shape == features.shape(); });
  if (found == recorded_steps_.end()) return nullptr;
  if ((*found)->places != places_of(model_, update_)) {  // the model moved: record it again
    recorded_steps_.erase(found);
    update_recording_.reset();
    return nullptr;
  }
  return found->get();
}

void classifier_session::record_step(const tensor_shape& shape) {
  if (compute_.device() == device_kind::cpu || !step_recording_failure_.empty()) return;
  auto entry = std::make_unique<recorded_step>();
  recorded_step& step = *entry;
  step.shape = shape;
  step.input = compute_.allocate(shape);
  step.labels = compute_.allocate({shape[0]});
  step.readout = compute_.allocate({2 + shape[0]});
  step.recorder = std::make_unique<tape>(compute_, tape::mode::training);
  tape& recorder = *step.recorder;
  try {
    step.gradients = compute_.record([&] {
      step.logits = model_.forward(recorder, recorder.input(step.input));
      step.loss = recorder.softmax_cross_entropy(step.logits, step.labels);
      recorder.backward(step.loss);
    });
    if (!step.gradients) return;
    step.readout_work = compute_.record(
        [&] { queue_readout(recorder.value(step.loss), recorder.value(step.logits), step.readout); });
  } catch (const std::exception& failure) {
    // A backend that cannot record these ops still runs them: plain steps from now on.
    step_recording_failure_ = failure.what();
    recorded_steps_.clear();
    update_recording_.reset();
    return;
  }
  step.places = places_of(model_, update_);
  if (recorded_steps_.size() == recorded_steps_max) recorded_steps_.erase(recorded_steps_.begin());
  recorded_steps_.push_back(std::move(entry));
}

void classifier_session::replay_gradients(recorded_step& step, const tensor& features,
                                          std::span<const std::int32_t> labels) {
  RML_ASSERT(std::int64_t(labels.size()) == step.shape[0], "one label per row");
  compute_.copy(features, step.input);
  compute_.copy(label_tensor(labels), step.labels);
  step.gradients->replay();
}

void classifier_session::apply_update(bool recorded) {
  if (!recorded || !update_.replayable()) {
    update_.step();
    return;
  }
  if (!update_recording_ || update_recorded_rate_ != update_.learning_rate() ||
      update_recorded_places_ != places_of(model_, update_)) {
    update_recording_.reset();
    try {
      update_recording_ = compute_.record([&] { update_.step(); });
    } catch (const std::exception& failure) {
      step_recording_failure_ = failure.what();
      recorded_steps_.clear();
    }
    update_recorded_rate_ = update_.learning_rate();
    update_recorded_places_ = places_of(model_, update_);
    if (!update_recording_) {
      update_.step();
      return;
    }
  }
  update_recording_->replay();
}

void classifier_session::queue_readout(const tensor& loss, const tensor& logits, tensor& readout) {
  tensor loss_part = readout.rows(0, 1);
  tensor norm_part = readout.rows(1, 2);
  tensor classes_part = readout.rows(2, readout.dim(0));
  compute_.argmax_rows(logits, classes_part);
  compute_.copy(loss.reshaped({1}), loss_part);
  compute_.fill(norm_part, 0.0f);
  for (const parameter* each : model_.parameters()) compute_.add_sum_of_squares(each->gradient, norm_part);
}

float classifier_session::train_step(const tensor& features, std::span<const std::int32_t> labels,
                                      std::span<std::int32_t> predicted) {
  if (recorded_step* step = recorded_for(features)) {
    replay_gradients(*step, features, labels);
    if (!predicted.empty()) argmax_to_host(compute_, step->recorder->value(step->logits), predicted);
    apply_update(true);
    return read_scalar(compute_, step->recorder->value(step->loss));
  }
  training_tape_.clear();
  var logits = model_.forward(training_tape_, training_tape_.input(features));
  if (!predicted.empty()) argmax_to_host(compute_, training_tape_.value(logits), predicted);
  var loss = training_tape_.softmax_cross_entropy(logits, labels);
  training_tape_.backward(loss);
  update_.step();
  const float loss_value = read_scalar(compute_, training_tape_.value(loss));
  record_step(features.shape());
  return loss_value;
}

step_outcome classifier_session::guarded_step(const tensor& features, std::span<const std::int32_t> labels,
                                              std::span<std::int32_t> predicted, float gradient_norm_max) {
  RML_ASSERT(gradient_norm_max >= 0);
  recorded_step* step = recorded_for(features);
  const tensor* readout = nullptr;
  if (step != nullptr) {
    replay_gradients(*step, features, labels);
    step->readout_work->replay();
    readout = &step->readout;
  } else {
    training_tape_.clear();
    var logits = model_.forward(training_tape_, training_tape_.input(features));
    var loss = training_tape_.softmax_cross_entropy(logits, labels);
    training_tape_.backward(loss);
    const tensor_shape readout_shape{2 + features.dim(0)};
    if (!readout_.defined() || !(readout_.shape() == readout_shape)) readout_ = compute_.allocate(readout_shape);
    queue_readout(training_tape_.value(loss), training_tape_.value(logits), readout_);
    readout = &readout_;
  }
  // The loss, the squared norm and the predictions (made before the update) in one wait.
  readout_host_.resize(std::size_t(readout->numel()));
  tensor host = tensor::borrow(readout_host_.data(), readout->shape());
  compute_.copy(*readout, host);
  const float* values = readout_host_.data();
  if (!predicted.empty()) {
    RML_ASSERT(predicted.size() == labels.size(), "one prediction per row");
    for (std::size_t row = 0; row < predicted.size(); ++row) predicted[row] = std::int32_t(values[2 + row]);
  }
  step_outcome outcome;
  outcome.loss = values[0];
  if (std::isfinite(outcome.loss)) {
    outcome.gradient_norm = std::sqrt(double(values[1]));
    if (std::isfinite(outcome.gradient_norm)) {
      if (gradient_norm_max > 0 && outcome.gradient_norm > gradient_norm_max) {
        const float scale = float(gradient_norm_max / outcome.gradient_norm);
        for (parameter* each : model_.parameters()) compute_.scale(each->gradient, scale);
        outcome.clipped = true;
      }
      apply_update(step != nullptr);
      outcome.applied = true;
    }
  }
  if (step == nullptr) record_step(features.shape());
  return outcome;
}

void classifier_session::predict(const tensor& features, std::span<std::int32_t> classes) {
  RML_ASSERT(std::int64_t(classes.size()) == features.dim(0), "one class per row");
  tensor found = tensor::empty({features.dim(0)});
  inference_.to_host(features, inference_head::classes, found);
  for (std::size_t row = 0; row < classes.size(); ++row) classes[row] = std::int32_t(found.data()[row]);
}

tensor classifier_session::probabilities(const tensor& features) {
  tensor result = tensor::empty({features.dim(0), model_.output_shape()[0]});
  inference_.to_host(features, inference_head::probabilities, result);
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
