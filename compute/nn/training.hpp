#pragma once
// The training and evaluation loop of a classifier, shared by `rml run`, the tests and the
// benchmarks so that each measures the same code.

#include <cstdint>
#include <functional>
#include <span>
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

  /// One optimisation step on a batch; returns the batch's mean loss. Labels must lie in
  /// [0, classes) of the model's output. When `predicted` is not empty it receives each
  /// row's predicted class from this step's forward pass, made before the update: the
  /// progressive-validation prediction, at no extra cost.
  float train_step(const tensor& features, std::span<const std::int32_t> labels,
                   std::span<std::int32_t> predicted = {});
  /// train_step for data that cannot be trusted (online learning): a step whose loss or
  /// gradients are not finite changes nothing, and when `gradient_norm_max` > 0 gradients
  /// whose global L2 norm exceeds it are scaled down to it before the update.
  step_outcome guarded_step(const tensor& features, std::span<const std::int32_t> labels, std::span<std::int32_t> predicted,
                            float gradient_norm_max);
  /// Predicted class of each row, without recording for backward.
  void predict(const tensor& features, std::span<std::int32_t> classes);
  /// Class probabilities [rows, classes] of each row, in host memory.
  tensor probabilities(const tensor& features);

  sequential& model() { return model_; }
  backend& compute() { return compute_; }

 private:
  sequential& model_;
  optimizer& update_;
  backend& compute_;
  tape training_tape_;
  inference_runner inference_;
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
