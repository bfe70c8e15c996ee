#pragma once
// Forward passes for serving and evaluation. On a device backend each batch size is run
// once plainly (which builds its convolution plans), then recorded (backend::record, a
// CUDA graph) and replayed from then on: one launch instead of one per op, which is most
// of a small batch's latency. The recording keeps its tape, so the memory it was made on
// stays its own; weights updated in place (training on) are read afresh by every replay,
// and weights moved elsewhere (sequential::place_on) make it record again.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compute/nn/sequential.hpp"

namespace rml::nn {

class inference_runner {
 public:
  inference_runner(sequential& model, backend& compute);
  ~inference_runner();
  inference_runner(const inference_runner&) = delete;
  inference_runner& operator=(const inference_runner&) = delete;

  /// The logits of `features` ([N, features] or [N, sample shape...], in host memory or on
  /// the backend's device), on the backend's device; valid until the next call.
  const tensor& logits(const tensor& features);
  /// Recordings held (one per batch size met; at most recordings_max).
  std::size_t recordings() const { return recorded_.size(); }
  /// Why recording failed, after which every pass runs plainly; empty while it works.
  const std::string& recording_failure() const { return recording_failure_; }

  static constexpr std::size_t recordings_max = 16;

 private:
  struct recording;
  /// Whether the weights still live where `entry` was recorded on.
  bool weights_unmoved(const recording& entry);

  sequential& model_;
  backend& compute_;
  tape plain_;
  std::vector<std::unique_ptr<recording>> recorded_;
  std::string recording_failure_;
};

}  // namespace rml::nn
