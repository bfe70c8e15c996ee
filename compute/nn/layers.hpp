#pragma once
// Layers: each records its forward pass on a tape, owns its parameters, and describes itself
// as a spec string ("linear(784,256)") from which the model file rebuilds it.

#include <memory>
#include <string>
#include <vector>

#include "compute/autodiff.hpp"
#include "compute/random.hpp"
#include "compute/status.hpp"

namespace rml::nn {

/// How weights are drawn at initialisation. Biases are drawn from U(±1/√fan_in) in both.
enum class weight_init : std::uint8_t {
  /// Kaiming (He) uniform with negative slope a = √5: U(±1/√fan_in), PyTorch's default
  /// for Linear and Conv2d.
  kaiming_uniform,
  /// Xavier (Glorot) uniform: U(±√(6 / (fan_in + fan_out))).
  xavier_uniform,
};

class layer {
 public:
  virtual ~layer() = default;
  /// Records this layer on the tape; x has a batch dimension first.
  virtual var forward(tape& recorder, var x) = 0;
  /// The spec string this layer is rebuilt from.
  virtual std::string spec() const = 0;
  /// The shape of one sample after this layer, or an error naming why this layer cannot
  /// take `sample` (a shape without the batch dimension).
  virtual result<tensor_shape> output_shape(const tensor_shape& sample) const = 0;
  virtual std::vector<parameter*> parameters() { return {}; }
  virtual void initialize(random_source&, weight_init) {}
};

class linear final : public layer {
 public:
  linear(std::int64_t inputs, std::int64_t outputs, bool with_bias = true);
  var forward(tape& recorder, var x) override;
  std::string spec() const override;
  result<tensor_shape> output_shape(const tensor_shape& sample) const override;
  std::vector<parameter*> parameters() override;
  void initialize(random_source& random, weight_init scheme) override;

 private:
  std::int64_t inputs_, outputs_;
  parameter weight_, bias_;
};

class conv2d final : public layer {
 public:
  conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
         int stride = 1, int padding = 0);
  var forward(tape& recorder, var x) override;
  std::string spec() const override;
  result<tensor_shape> output_shape(const tensor_shape& sample) const override;
  std::vector<parameter*> parameters() override;
  void initialize(random_source& random, weight_init scheme) override;

 private:
  std::int64_t in_channels_, out_channels_, kernel_;
  conv2d_params params_;
  parameter weight_, bias_;
};

class max_pool2d final : public layer {
 public:
  max_pool2d(int kernel, int stride);
  var forward(tape& recorder, var x) override;
  std::string spec() const override;
  result<tensor_shape> output_shape(const tensor_shape& sample) const override;

 private:
  pool2d_params params_;
};

class activation final : public layer {
 public:
  explicit activation(activation_kind kind) : kind_(kind) {}
  var forward(tape& recorder, var x) override { return recorder.activation(kind_, x); }
  std::string spec() const override { return to_string(kind_); }
  result<tensor_shape> output_shape(const tensor_shape& sample) const override { return sample; }

 private:
  activation_kind kind_;
};

/// [N, C, H, W] → [N, C·H·W].
class flatten final : public layer {
 public:
  var forward(tape& recorder, var x) override;
  std::string spec() const override { return "flatten"; }
  result<tensor_shape> output_shape(const tensor_shape& sample) const override;
};

/// A spec split into its name and integer arguments: "conv2d(1,6,5)" → conv2d, {1, 6, 5}.
struct spec_call {
  std::string name;
  std::vector<std::int64_t> arguments;
};
result<spec_call> parse_spec_call(std::string_view spec);

/// Parses one layer spec ("conv2d(1,6,5,1,2)"); the error names the spec and what is wrong.
result<std::unique_ptr<layer>> parse_layer(std::string_view spec);

}  // namespace rml::nn
