#pragma once
// The training and evaluation loop of a classifier, shared by `rml run`, the tests and the
// benchmarks so that each measures the same code.

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compute/data/dataset.hpp"
#include "compute/nn/inference.hpp"
#include "compute/nn/optimizer.hpp"
#include "compute/nn/sequential.hpp"

namespace rml::nn {

/// Copies the rows `indices` of source [N, F] into destination [indices.size(), F].
void gather_rows(const tensor& source, std::span<const std::uint32_t> indices, tensor& destination);

/// What a guarded training step did (classifier_session::guarded_step).
struct step_outcome {
  /// The batch's mean loss (possibly not finite).
  float loss = 0;
  /// The gradients' global L2 norm before clipping (not finite when they were not).
  double gradient_norm = 0;
  /// Whether the parameters were updated: not when the loss or a gradient was not finite.
  bool applied = false;
  /// Whether the gradients were scaled down to the norm bound.
  bool clipped = false;
};

/// Trains and queries one classifier. Keeps a tape between steps so that a steady loop
/// reuses its capacity. Not thread-safe: one caller at a time. On a device backend the
/// model's parameters must be placed there (sequential::place_on) before the optimizer is
/// built; features may be given in host memory (each batch is copied over) or on the device.
class classifier_session {
 public:
  classifier_session(sequential& model, optimizer& update, backend& compute);
  ~classifier_session();
  classifier_session(const classifier_session&) = delete;
  classifier_session& operator=(const classifier_session&) = delete;

  /// One optimisation step on a batch; returns the batch's mean loss. Labels must lie in
  /// [0, classes) of the model's output. When `predicted` is not empty it receives each
  /// row's predicted class from this step's forward pass, made before the update: the
  /// progressive-validation prediction, at no extra cost.
  float train_step(const tensor& features, std::span<const std::int32_t> labels,
                   std::span<std::int32_t> predicted = {});
  /// train_step for data that cannot be trusted (online learning): a step whose loss or
  /// gradients are not finite changes nothing, and when `gradient_norm_max` > 0 gradients
  /// whose global L2 norm exceeds it are scaled down to it before the update. The loss and
  /// the norm (and the predictions) come back to the host together, in one wait.
  step_outcome guarded_step(const tensor& features, std::span<const std::int32_t> labels, std::span<std::int32_t> predicted,
                            float gradient_norm_max);
  /// Predicted class of each row, without recording for backward.
  void predict(const tensor& features, std::span<std::int32_t> classes);
  /// Class probabilities [rows, classes] of each row, in host memory.
  tensor probabilities(const tensor& features);

  sequential& model() { return model_; }
  backend& compute() { return compute_; }
  /// Training steps held recorded (one per batch shape met; at most recorded_steps_max).
  std::size_t recorded_steps() const { return recorded_steps_.size(); }
  /// Why recording a training step failed, after which every step runs plainly; empty while
  /// it works.
  const std::string& step_recording_failure() const { return step_recording_failure_; }

  static constexpr std::size_t recorded_steps_max = 8;

 private:
  // On a device backend a training step is three recordings (CUDA graphs), made the first
  // time a batch shape is met and replayed from the second on: the gradients (forward,
  // loss, backward), the readout (loss, squared gradient norm and predicted classes side
  // by side, for guarded steps) and the update (while the optimizer is replayable and its learning rate stays).
  // A step then costs a few launches and one wait for its loss, where plain ops cost a
  // launch each.
  struct recorded_step;
  /// The recorded step for `features`' shape, made when it is new; nullptr on the CPU, for
  /// a shape's first step, or once recording has failed.
  recorded_step* recorded_for(const tensor& features);
  /// Records the step for `shape` after its first, plain, step (which built what the
  /// backend makes per shape and every gradient tensor).
  void record_step(const tensor_shape& shape);
  /// Copies the batch into the recording's input and labels and replays its gradients.
  void replay_gradients(recorded_step& step, const tensor& features, std::span<const std::int32_t> labels);
  /// The optimizer's update: replayed after recorded gradients where the optimizer allows.
  void apply_update(bool recorded);
  /// Queues into readout [2 + rows] the loss, the squared norm of every parameter's
  /// gradient and each row's predicted class (from `logits`), for one wait to read.
  void queue_readout(const tensor& loss, const tensor& logits, tensor& readout);

  sequential& model_;
  optimizer& update_;
  backend& compute_;
  tape training_tape_;
  inference_runner inference_;
  tensor readout_;
  std::vector<float> readout_host_;
  std::vector<std::unique_ptr<recorded_step>> recorded_steps_;
  std::unique_ptr<recorded_work> update_recording_;
  float update_recorded_rate_ = 0;
  std::vector<const float*> update_recorded_places_;
  std::string step_recording_failure_;
};

struct epoch_summary {
  double mean_loss = 0.0;
  std::int64_t samples = 0;
  std::int64_t steps = 0;
};

/// Progress callback: step number (from 1), samples seen so far, the step's loss.
using step_observer = std::function<void(std::int64_t step, std::int64_t samples, float loss)>;

/// One pass over `data` in the order drawn from `order_seed` (random.hpp), in batches of
/// `batch_rows`; the last batch holds what is left.
epoch_summary train_epoch(classifier_session& session, const data::dataset& data,
                          std::int64_t batch_rows, std::uint64_t order_seed,
                          const step_observer& observe = {});

/// Fraction of rows whose predicted class equals the label.
double evaluate_accuracy(classifier_session& session, const data::dataset& data,
                         std::int64_t batch_rows = 1000);

}  // namespace rml::nn
