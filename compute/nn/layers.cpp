#include "compute/nn/layers.hpp"

#include <charconv>
#include <cmath>

namespace rml::nn {
namespace {

void fill_uniform(tensor& values, float bound, random_source& random) {
  for (float& value : values.values()) value = random.uniform(-bound, bound);
}

void initialize_weights(parameter& weight, parameter* bias, std::int64_t fan_in,
                        std::int64_t fan_out, random_source& random, weight_init scheme) {
  float bound = 0.0f;
  switch (scheme) {
    case weight_init::kaiming_uniform: {
      // gain = √(2 / (1 + a²)) with a = √5; bound = gain · √(3 / fan_in) = 1/√fan_in.
      const float gain = std::sqrt(2.0f / (1.0f + 5.0f));
      bound = gain * std::sqrt(3.0f / float(fan_in));
      break;
    }
    case weight_init::xavier_uniform:
      bound = std::sqrt(6.0f / float(fan_in + fan_out));
      break;
  }
  fill_uniform(weight.value, bound, random);
  if (bias != nullptr && bias->value.defined()) {
    fill_uniform(bias->value, 1.0f / std::sqrt(float(fan_in)), random);
  }
}

error spec_error(std::string_view spec, const std::string& reason) {
  return error(errc::parse_error, "layer spec '" + std::string(spec) + "': " + reason);
}

}  // namespace

// --- linear ---------------------------------------------------------------------------

linear::linear(std::int64_t inputs, std::int64_t outputs, bool with_bias)
    : inputs_(inputs), outputs_(outputs) {
  RML_ASSERT(inputs >= 1 && outputs >= 1);
  weight_ = {"weight", tensor::zeros({outputs, inputs}), {}};
  if (with_bias) bias_ = {"bias", tensor::zeros({outputs}), {}};
}

var linear::forward(tape& recorder, var x) {
  return recorder.linear(x, recorder.param(weight_),
                         bias_.value.defined() ? recorder.param(bias_) : var{});
}

std::string linear::spec() const {
  return "linear(" + std::to_string(inputs_) + "," + std::to_string(outputs_) +
         (bias_.value.defined() ? ")" : ",0)");
}

result<tensor_shape> linear::output_shape(const tensor_shape& sample) const {
  if (sample.rank() != 1 || sample[0] != inputs_) {
    return error(errc::shape_mismatch, spec() + " takes samples of shape [" +
                                           std::to_string(inputs_) + "], got " +
                                           sample.to_string());
  }
  return tensor_shape{outputs_};
}

std::vector<parameter*> linear::parameters() {
  if (bias_.value.defined()) return {&weight_, &bias_};
  return {&weight_};
}

void linear::initialize(random_source& random, weight_init scheme) {
  initialize_weights(weight_, &bias_, inputs_, outputs_, random, scheme);
}

// --- conv2d ---------------------------------------------------------------------------

conv2d::conv2d(std::int64_t in_channels, std::int64_t out_channels, std::int64_t kernel,
               int stride, int padding)
    : in_channels_(in_channels), out_channels_(out_channels), kernel_(kernel),
      params_{stride, padding} {
  RML_ASSERT(in_channels >= 1 && out_channels >= 1 && kernel >= 1 && stride >= 1 && padding >= 0);
  weight_ = {"weight", tensor::zeros({out_channels, in_channels, kernel, kernel}), {}};
  bias_ = {"bias", tensor::zeros({out_channels}), {}};
}

var conv2d::forward(tape& recorder, var x) {
  return recorder.conv2d(x, recorder.param(weight_), recorder.param(bias_), params_);
}

std::string conv2d::spec() const {
  return "conv2d(" + std::to_string(in_channels_) + "," + std::to_string(out_channels_) + "," +
         std::to_string(kernel_) + "," + std::to_string(params_.stride) + "," +
         std::to_string(params_.padding) + ")";
}

result<tensor_shape> conv2d::output_shape(const tensor_shape& sample) const {
  if (sample.rank() != 3 || sample[0] != in_channels_) {
    return error(errc::shape_mismatch, spec() + " takes samples of shape [" +
                                           std::to_string(in_channels_) + ", H, W], got " +
                                           sample.to_string());
  }
  const std::int64_t height = window_output_size(sample[1], kernel_, params_.stride, params_.padding);
  const std::int64_t width = window_output_size(sample[2], kernel_, params_.stride, params_.padding);
  if (height < 1 || width < 1) {
    return error(errc::shape_mismatch,
                 spec() + ": kernel larger than the padded input " + sample.to_string());
  }
  return tensor_shape{out_channels_, height, width};
}

std::vector<parameter*> conv2d::parameters() { return {&weight_, &bias_}; }

void conv2d::initialize(random_source& random, weight_init scheme) {
  const std::int64_t receptive = kernel_ * kernel_;
  initialize_weights(weight_, &bias_, in_channels_ * receptive, out_channels_ * receptive,
                     random, scheme);
}

// --- max_pool2d -----------------------------------------------------------------------

max_pool2d::max_pool2d(int kernel, int stride) : params_{kernel, stride} {
  RML_ASSERT(kernel >= 1 && stride >= 1);
}

var max_pool2d::forward(tape& recorder, var x) { return recorder.max_pool2d(x, params_); }

std::string max_pool2d::spec() const {
  return "maxpool2d(" + std::to_string(params_.kernel) + "," + std::to_string(params_.stride) + ")";
}

result<tensor_shape> max_pool2d::output_shape(const tensor_shape& sample) const {
  if (sample.rank() != 3) {
    return error(errc::shape_mismatch,
                 spec() + " takes samples of shape [C, H, W], got " + sample.to_string());
  }
  const std::int64_t height = window_output_size(sample[1], params_.kernel, params_.stride, 0);
  const std::int64_t width = window_output_size(sample[2], params_.kernel, params_.stride, 0);
  if (height < 1 || width < 1) {
    return error(errc::shape_mismatch, spec() + ": window larger than the input " + sample.to_string());
  }
  return tensor_shape{sample[0], height, width};
}

// --- flatten --------------------------------------------------------------------------

var flatten::forward(tape& recorder, var x) {
  const tensor& value = recorder.value(x);
  return recorder.reshape(x, {value.dim(0), value.numel() / value.dim(0)});
}

result<tensor_shape> flatten::output_shape(const tensor_shape& sample) const {
  return tensor_shape{sample.numel()};
}

// --- parsing --------------------------------------------------------------------------

result<spec_call> parse_spec_call(std::string_view spec) {
  spec_call call;
  const std::size_t open = spec.find('(');
  call.name = std::string(spec.substr(0, open));
  if (call.name.empty()) return spec_error(spec, "no layer name");
  if (open == std::string_view::npos) return call;
  if (spec.back() != ')') return spec_error(spec, "missing ')'");
  std::string_view rest = spec.substr(open + 1, spec.size() - open - 2);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    std::int64_t number = 0;
    auto [end, failure] = std::from_chars(item.data(), item.data() + item.size(), number);
    if (failure != std::errc() || end != item.data() + item.size()) {
      return spec_error(spec, "argument '" + std::string(item) + "' is not an integer");
    }
    call.arguments.push_back(number);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
    if (rest.empty()) return spec_error(spec, "empty argument after ','");
  }
  return call;
}

result<std::unique_ptr<layer>> parse_layer(std::string_view spec) {
  auto parsed = parse_spec_call(spec);
  if (!parsed) return parsed.error();
  const spec_call& call = *parsed;
  const auto& arguments = call.arguments;
  auto expect = [&](std::size_t least, std::size_t most) -> status {
    if (arguments.size() < least || arguments.size() > most) {
      return spec_error(spec, "expects " + std::to_string(least) +
                                  (least == most ? "" : " to " + std::to_string(most)) +
                                  " arguments, got " + std::to_string(arguments.size()));
    }
    return {};
  };
  // Checks that arguments [from, to) lie in [low, high].
  auto in_range = [&](std::size_t from, std::size_t to, std::int64_t low,
                      std::int64_t high) -> status {
    for (std::size_t index = from; index < std::min(to, arguments.size()); ++index) {
      if (arguments[index] < low || arguments[index] > high) {
        return spec_error(spec, "argument " + std::to_string(index + 1) + " must be in [" +
                                    std::to_string(low) + ", " + std::to_string(high) +
                                    "], got " + std::to_string(arguments[index]));
      }
    }
    return {};
  };
  constexpr std::int64_t features_max = 1 << 24;
  constexpr std::int64_t window_max = 4096;
  if (call.name == "linear") {  // linear(inputs, outputs[, with_bias 0|1])
    if (auto ok = expect(2, 3); !ok) return ok.error();
    if (auto ok = in_range(0, 2, 1, features_max); !ok) return ok.error();
    if (auto ok = in_range(2, 3, 0, 1); !ok) return ok.error();
    const bool with_bias = arguments.size() == 2 || arguments[2] == 1;
    return std::unique_ptr<layer>(std::make_unique<linear>(arguments[0], arguments[1], with_bias));
  }
  if (call.name == "conv2d") {  // conv2d(in, out, kernel[, stride[, padding]])
    if (auto ok = expect(3, 5); !ok) return ok.error();
    if (auto ok = in_range(0, 4, 1, window_max); !ok) return ok.error();
    if (auto ok = in_range(4, 5, 0, window_max); !ok) return ok.error();
    const int stride = arguments.size() > 3 ? int(arguments[3]) : 1;
    const int padding = arguments.size() > 4 ? int(arguments[4]) : 0;
    return std::unique_ptr<layer>(
        std::make_unique<conv2d>(arguments[0], arguments[1], arguments[2], stride, padding));
  }
  if (call.name == "maxpool2d") {  // maxpool2d(kernel[, stride = kernel])
    if (auto ok = expect(1, 2); !ok) return ok.error();
    if (auto ok = in_range(0, 2, 1, window_max); !ok) return ok.error();
    const int kernel = int(arguments[0]);
    return std::unique_ptr<layer>(
        std::make_unique<max_pool2d>(kernel, arguments.size() > 1 ? int(arguments[1]) : kernel));
  }
  for (activation_kind kind : {activation_kind::relu, activation_kind::tanh, activation_kind::sigmoid}) {
    if (call.name == to_string(kind)) {
      if (auto ok = expect(0, 0); !ok) return ok.error();
      return std::unique_ptr<layer>(std::make_unique<activation>(kind));
    }
  }
  if (call.name == "flatten") {
    if (auto ok = expect(0, 0); !ok) return ok.error();
    return std::unique_ptr<layer>(std::make_unique<flatten>());
  }
  return spec_error(spec, "unknown layer '" + call.name +
                              "' (known: linear, conv2d, maxpool2d, relu, tanh, sigmoid, flatten)");
}

}  // namespace rml::nn
