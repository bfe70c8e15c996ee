#pragma once
// Sequential: layers applied in order to samples of a fixed shape. Its spec string names
// the input shape and every layer, e.g.
//   "input(784); linear(784,256); relu; linear(256,128); relu; linear(128,10)"
// and is what the model file stores as the architecture.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compute/nn/layers.hpp"

namespace rml::nn {

class sequential {
 public:
  /// An empty model taking samples of `sample_shape` (no batch dimension).
  explicit sequential(const tensor_shape& sample_shape);
  sequential(sequential&&) = default;
  sequential& operator=(sequential&&) = default;

  /// Builds a model from its spec; the error names the layer and what is wrong, including
  /// layers whose shapes do not fit together.
  static result<sequential> from_spec(std::string_view spec);

  /// Appends a layer; fails when it cannot take the current output shape.
  status add(std::unique_ptr<layer> next);

  /// Whether a batch of this shape can go through forward(): [N, features] with as many
  /// features as a sample holds, or [N, sample shape...]. User input decides this shape, so
  /// a mismatch is an error value naming both shapes; forward() asserts it.
  status check_batch(const tensor_shape& batch) const;

  /// Records the model on the tape. `batch` is [N, features] or [N, sample shape...];
  /// it is viewed as [N, sample shape...] before the first layer.
  var forward(tape& recorder, var batch);

  std::string spec() const;
  std::vector<parameter*> parameters();
  /// Moves every parameter to `compute`'s device (a copy; nothing when it is there) and
  /// forgets the gradients. Weights are drawn, saved and checked on the host; training and
  /// inference run where the parameters are.
  void place_on(backend& compute);
  /// Brings every parameter back to host memory through `compute`, their device's backend.
  void place_on_host(backend& compute);
  /// The first weight that is NaN or infinite, as "weight I of NAME"; nothing when every
  /// weight is finite (the trainer, the registry's gate and serving all ask this).
  std::optional<std::string> non_finite_weight();
  std::size_t parameter_count() const;
  /// Draws every parameter from `seed`: same seed, same weights.
  void initialize(std::uint64_t seed, weight_init scheme = weight_init::kaiming_uniform);

  const tensor_shape& sample_shape() const { return sample_shape_; }
  std::int64_t sample_size() const { return sample_shape_.numel(); }
  const tensor_shape& output_shape() const { return output_shape_; }
  std::size_t layer_count() const { return layers_.size(); }

 private:
  tensor_shape sample_shape_;
  tensor_shape output_shape_;
  std::vector<std::unique_ptr<layer>> layers_;
};

/// The built-in architectures by name: "mlp" (784-256-128-10, ReLU) and "lenet" (LeNet-5
/// for 1×28×28 inputs with ReLU). The error lists the known names.
result<sequential> make_architecture(std::string_view name);
/// The names make_architecture knows.
std::vector<std::string> architecture_names();

}  // namespace rml::nn
