#pragma once
// Forward passes for serving and evaluation. On a device backend each batch size is run
// once plainly (which builds its convolution plans), then recorded (backend::record, a
// CUDA graph) and replayed from then on: one launch instead of one per op, which is most
// of a small batch's latency. to_host() records the whole way from host features to host
// results for small batches — the copy in, the pass, the softmax or argmax, the copy out —
// so a prediction is one launch and one wait. A recording keeps its tape, so the memory it was made on
// stays its own; weights updated in place (training on) are read afresh by every replay,
// and weights moved elsewhere (sequential::place_on) make it record again.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compute/nn/sequential.hpp"

namespace rml::nn {

/// What to_host() hands back for each row.
enum class inference_head : std::uint8_t {
  /// softmax(logits): [N, classes].
  probabilities,
  /// The index of the largest logit, as a float: [N].
  classes,
};

class inference_runner {
 public:
  inference_runner(sequential& model, backend& compute);
  ~inference_runner();
  inference_runner(const inference_runner&) = delete;
  inference_runner& operator=(const inference_runner&) = delete;

  /// The logits of `features` ([N, features] or [N, sample shape...], in host memory or on
  /// the backend's device), on the backend's device; valid until the next call.
  const tensor& logits(const tensor& features);
  /// The `head` of `features` into `result`, in host memory (shaped as inference_head says).
  void to_host(const tensor& features, inference_head head, tensor& result);
  /// Recordings held (one per batch size and kind met; at most recordings_max).
  std::size_t recordings() const { return recorded_.size(); }
  /// Why recording failed, after which every pass runs plainly; empty while it works.
  const std::string& recording_failure() const { return recording_failure_; }

  static constexpr std::size_t recordings_max = 24;
  /// Largest batch (in bytes of features) to_host() stages through its own page-locked
  /// buffer to record the copy in: for small batches, launches and waits are the cost
  /// that recording saves; a larger one is copied straight from the caller's memory
  /// (a DMA from page-locked memory) rather than twice.
  static constexpr std::size_t staged_bytes_max = std::size_t(64) << 10;

 private:
  struct recording;
  /// Whether the weights still live where `entry` was recorded on.
  bool weights_unmoved(const recording& entry);
  /// The recording for `shape` (of `head`, or of the logits alone when `to_host` is false),
  /// or nullptr; one whose weights moved is dropped.
  recording* find(const tensor_shape& shape, bool to_host, inference_head head);
  /// Queues `head` of `scores` into `out`, on the backend's device.
  void apply_head(const tensor& scores, inference_head head, tensor& out);
  /// Records `work` into `entry` and keeps it; on failure every pass runs plainly after.
  void keep(std::unique_ptr<recording> entry, const std::function<void()>& work);

  sequential& model_;
  backend& compute_;
  tape plain_;
  std::vector<std::unique_ptr<recording>> recorded_;
  std::string recording_failure_;
};

}  // namespace rml::nn
