#include "compute/nn/inference.hpp"

#include <algorithm>
#include <exception>

namespace rml::nn {

struct inference_runner::recording {
  tensor_shape shape;
  /// The recorded ops read the batch from here and leave the logits in `recorder`.
  tensor input;
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

const tensor& inference_runner::logits(const tensor& features) {
  if (compute_.device() == device_kind::cpu) {
    plain_.clear();
    return plain_.value(model_.forward(plain_, plain_.input(features)));
  }
  auto found = std::find_if(recorded_.begin(), recorded_.end(),
                            [&](const auto& entry) { return entry->shape == features.shape(); });
  if (found != recorded_.end() && !weights_unmoved(**found)) {
    recorded_.erase(found);
    found = recorded_.end();
  }
  if (found != recorded_.end()) {
    recording& entry = **found;
    compute_.copy(features, entry.input);
    entry.work->replay();
    return entry.recorder->value(entry.logits);
  }
  // First meeting with this shape since the last recording of it: a plain pass, which also
  // builds whatever the backend makes per shape, then the recording for the next time.
  plain_.clear();
  const tensor& result = plain_.value(model_.forward(plain_, plain_.input(features)));
  if (!recording_failure_.empty()) return result;
  auto entry = std::make_unique<recording>();
  entry->shape = features.shape();
  entry->input = compute_.allocate(features.shape());
  entry->recorder = std::make_unique<tape>(compute_, tape::mode::inference);
  tape& recorder = *entry->recorder;
  const tensor& input = entry->input;
  var logits;
  try {
    entry->work = compute_.record([&] { logits = model_.forward(recorder, recorder.input(input)); });
  } catch (const std::exception& failure) {
    // A backend that cannot record these ops still runs them: plain passes from now on.
    recording_failure_ = failure.what();
    return result;
  }
  if (!entry->work) return result;
  entry->logits = logits;
  for (const parameter* each : model_.parameters()) entry->weights.push_back(each->value.data());
  if (recorded_.size() == recordings_max) recorded_.erase(recorded_.begin());
  recorded_.push_back(std::move(entry));
  return result;
}

}  // namespace rml::nn
