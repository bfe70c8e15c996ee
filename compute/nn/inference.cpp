#include "compute/nn/inference.hpp"

#include <algorithm>
#include <cstring>
#include <exception>

namespace rml::nn {

struct inference_runner::recording {
  tensor_shape shape;
  /// Whether this records host to host (and then `head`), or the logits alone.
  bool to_host = false;
  inference_head head = inference_head::probabilities;
  /// The recorded ops read the batch from `input` (from `staged_input`, page-locked host
  /// memory, when to_host) and leave the logits in `recorder` (and the head's result in
  /// `staged_result`).
  tensor input, staged_input, result, staged_result;
  std::unique_ptr<tape> recorder;
  var logits;
  std::unique_ptr<recorded_work> work;
  std::vector<const float*> weights;
};

inference_runner::inference_runner(sequential& model, backend& compute)
    : model_(model), compute_(compute), plain_(compute, tape::mode::inference) {}

inference_runner::~inference_runner() = default;

bool inference_runner::weights_unmoved(const recording& entry) {
  const auto parameters = model_.parameters();
  if (parameters.size() != entry.weights.size()) return false;
  for (std::size_t index = 0; index < parameters.size(); ++index) {
    if (parameters[index]->value.data() != entry.weights[index]) return false;
  }
  return true;
}

inference_runner::recording* inference_runner::find(const tensor_shape& shape, bool to_host, inference_head head) {
  auto found = std::find_if(recorded_.begin(), recorded_.end(), [&](const auto& entry) {
    return entry->shape == shape && entry->to_host == to_host && (!to_host || entry->head == head);
  });
  if (found == recorded_.end()) return nullptr;
  if (!weights_unmoved(**found)) {
    recorded_.erase(found);
    return nullptr;
  }
  return found->get();
}

void inference_runner::keep(std::unique_ptr<recording> entry, const std::function<void()>& work) {
  try {
    entry->work = compute_.record(work);
  } catch (const std::exception& failure) {
    // A backend that cannot record these ops still runs them: plain passes from now on.
    recording_failure_ = failure.what();
    recorded_.clear();
    return;
  }
  if (!entry->work) return;
  for (const parameter* each : model_.parameters()) entry->weights.push_back(each->value.data());
  if (recorded_.size() == recordings_max) recorded_.erase(recorded_.begin());
  recorded_.push_back(std::move(entry));
}

const tensor& inference_runner::logits(const tensor& features) {
  if (compute_.device() == device_kind::cpu) {
    plain_.clear();
    return plain_.value(model_.forward(plain_, plain_.input(features)));
  }
  if (recording* entry = find(features.shape(), false, {})) {
    compute_.copy(features, entry->input);
    entry->work->replay();
    return entry->recorder->value(entry->logits);
  }
  // First meeting with this shape since the last recording of it: a plain pass, which also
  // builds whatever the backend makes per shape, then the recording for the next time.
  plain_.clear();
  const tensor& result = plain_.value(model_.forward(plain_, plain_.input(features)));
  if (!recording_failure_.empty()) return result;
  auto entry = std::make_unique<recording>();
  recording& made = *entry;
  made.shape = features.shape();
  made.input = compute_.allocate(features.shape());
  made.recorder = std::make_unique<tape>(compute_, tape::mode::inference);
  keep(std::move(entry), [&] { made.logits = model_.forward(*made.recorder, made.recorder->input(made.input)); });
  return result;
}

void inference_runner::apply_head(const tensor& scores, inference_head head, tensor& out) {
  if (head == inference_head::probabilities) {
    compute_.softmax_forward(scores, out);
  } else {
    compute_.argmax_rows(scores, out);
  }
}

void inference_runner::to_host(const tensor& features, inference_head head, tensor& result) {
  RML_ASSERT(result.device() == device_kind::cpu, "to_host into host memory");
  const bool stageable = compute_.device() != device_kind::cpu && features.device() == device_kind::cpu &&
                         std::size_t(features.numel()) * sizeof(float) <= staged_bytes_max;
  if (stageable) {
    if (recording* entry = find(features.shape(), true, head)) {
      assert_same_shape(result.shape(), entry->staged_result.shape(), "to_host result");
      std::memcpy(entry->staged_input.data(), features.data(), std::size_t(features.numel()) * sizeof(float));
      entry->work->replay();
      compute_.synchronize();
      std::memcpy(result.data(), entry->staged_result.data(), std::size_t(result.numel()) * sizeof(float));
      return;
    }
  }
  // A pass the recording below will replace runs plainly; another goes through logits().
  const bool recordable = stageable && recording_failure_.empty();
  if (recordable) plain_.clear();
  const tensor& scores = recordable ? plain_.value(model_.forward(plain_, plain_.input(features))) : logits(features);
  if (compute_.device() == device_kind::cpu) {
    apply_head(scores, head, result);
  } else {
    tensor out = compute_.allocate(result.shape());
    apply_head(scores, head, out);
    compute_.copy(out, result);
  }
  // The plain pass built the shape's plans: now the whole way is recorded for the next one.
  if (!recordable) return;
  auto entry = std::make_unique<recording>();
  recording& made = *entry;
  made.shape = features.shape();
  made.to_host = true;
  made.head = head;
  made.input = compute_.allocate(features.shape());
  made.staged_input = compute_.allocate_host(features.shape());
  made.result = compute_.allocate(result.shape());
  made.staged_result = compute_.allocate_host(result.shape());
  made.recorder = std::make_unique<tape>(compute_, tape::mode::inference);
  keep(std::move(entry), [&] {
    compute_.copy(made.staged_input, made.input);
    made.logits = model_.forward(*made.recorder, made.recorder->input(made.input));
    apply_head(made.recorder->value(made.logits), made.head, made.result);
    compute_.copy(made.result, made.staged_result);
  });
}

}  // namespace rml::nn
