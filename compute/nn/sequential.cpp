#include "compute/nn/sequential.hpp"

#include <cmath>

namespace rml::nn {
namespace {
std::string_view trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\n' || text.front() == '\t'))
    text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\n' || text.back() == '\t'))
    text.remove_suffix(1);
  return text;
}
}  // namespace

sequential::sequential(const tensor_shape& sample_shape)
    : sample_shape_(sample_shape), output_shape_(sample_shape) {
  RML_ASSERT(sample_shape.rank() >= 1 && sample_shape.rank() <= 3,
             "a sample has 1 to 3 dimensions (the batch makes 4)");
}

result<sequential> sequential::from_spec(std::string_view spec) {
  std::vector<std::string_view> parts;
  while (true) {
    const std::size_t separator = spec.find(';');
    parts.push_back(trim(spec.substr(0, separator)));
    if (separator == std::string_view::npos) break;
    spec.remove_prefix(separator + 1);
  }
  auto input = parse_spec_call(parts.front());
  if (!input) return input.error();
  if (input->name != "input" || input->arguments.empty() || input->arguments.size() > 3) {
    return error(errc::parse_error, "model spec must start with input(d1[,d2[,d3]]), got '" +
                                        std::string(parts.front()) + "'");
  }
  for (std::int64_t dimension : input->arguments) {
    if (dimension < 1 || dimension > (1 << 24)) {
      return error(errc::parse_error, "model spec '" + std::string(parts.front()) +
                                          "': input dimensions must be in [1, 16777216]");
    }
  }
  sequential model{tensor_shape(std::span<const std::int64_t>(input->arguments))};
  for (std::size_t index = 1; index < parts.size(); ++index) {
    auto next = parse_layer(parts[index]);
    if (!next) return next.error();
    if (auto added = model.add(std::move(next.value())); !added) {
      return error(added.error().code(),
                   "model spec layer " + std::to_string(index) + ": " + added.error().message());
    }
  }
  return model;
}

status sequential::add(std::unique_ptr<layer> next) {
  auto shape = next->output_shape(output_shape_);
  if (!shape) return shape.error();
  output_shape_ = *shape;
  layers_.push_back(std::move(next));
  return {};
}

status sequential::check_batch(const tensor_shape& batch) const {
  const bool flat = batch.rank() == 2 && batch[1] == sample_size();
  bool shaped = batch.rank() == sample_shape_.rank() + 1;
  for (int axis = 0; shaped && axis < sample_shape_.rank(); ++axis) {
    shaped = batch[axis + 1] == sample_shape_[axis];
  }
  if (flat || shaped) return {};
  return error(errc::shape_mismatch, "input of shape " + batch.to_string() +
                                         " does not fit a model taking samples of shape " +
                                         sample_shape_.to_string() + " (expected [N, " +
                                         std::to_string(sample_size()) + "] or [N] + " +
                                         sample_shape_.to_string() + ")");
}

var sequential::forward(tape& recorder, var batch) {
  const tensor& input = recorder.value(batch);
  const std::int64_t rows = input.dim(0);
  if (auto fits = check_batch(input.shape()); !fits) {
    detail::assertion_failed("check_batch(input)", __FILE__, __LINE__, fits.error().message().c_str());
  }
  std::array<std::int64_t, tensor_rank_max> dims{rows};
  std::copy(sample_shape_.dims().begin(), sample_shape_.dims().end(), dims.begin() + 1);
  tensor_shape batch_shape(std::span<const std::int64_t>(dims.data(), std::size_t(sample_shape_.rank() + 1)));
  var x = input.shape() == batch_shape ? batch : recorder.reshape(batch, batch_shape);
  for (auto& next : layers_) x = next->forward(recorder, x);
  return x;
}

std::string sequential::spec() const {
  std::string text = "input(";
  for (int axis = 0; axis < sample_shape_.rank(); ++axis) {
    if (axis > 0) text += ',';
    text += std::to_string(sample_shape_[axis]);
  }
  text += ")";
  for (const auto& next : layers_) {
    text += "; ";
    text += next->spec();
  }
  return text;
}

std::vector<parameter*> sequential::parameters() {
  std::vector<parameter*> all;
  for (auto& next : layers_) {
    for (parameter* owned : next->parameters()) all.push_back(owned);
  }
  return all;
}

void sequential::place_on(backend& compute) {
  for (parameter* each : parameters()) {
    each->value = on_device(compute, each->value);
    each->gradient = tensor();
  }
}

void sequential::place_on_host(backend& compute) {
  for (parameter* each : parameters()) {
    each->value = on_host(compute, each->value);
    each->gradient = tensor();
  }
}

std::optional<std::string> sequential::non_finite_weight() {
  for (const parameter* each : parameters()) {
    RML_ASSERT(each->value.device() == device_kind::cpu, "non_finite_weight reads host weights");
    const auto values = each->value.values();
    for (std::size_t index = 0; index < values.size(); ++index) {
      if (!std::isfinite(values[index])) return "weight " + std::to_string(index) + " of " + each->name;
    }
  }
  return std::nullopt;
}

std::size_t sequential::parameter_count() const {
  std::size_t count = 0;
  for (const auto& next : layers_) {
    for (parameter* owned : next->parameters()) count += std::size_t(owned->value.numel());
  }
  return count;
}

void sequential::initialize(std::uint64_t seed, weight_init scheme) {
  random_source random(seed);
  for (auto& next : layers_) next->initialize(random, scheme);
}

std::vector<std::string> architecture_names() { return {"mlp", "lenet"}; }

result<sequential> make_architecture(std::string_view name) {
  if (name == "mlp") {
    return sequential::from_spec(
        "input(784); linear(784,256); relu; linear(256,128); relu; linear(128,10)");
  }
  if (name == "lenet") {
    // LeNet-5 on 28×28: the first convolution pads by 2 to see the 32×32 field of the
    // original; ReLU and max pooling as in the modern variant.
    return sequential::from_spec(
        "input(1,28,28); conv2d(1,6,5,1,2); relu; maxpool2d(2,2); conv2d(6,16,5); relu; "
        "maxpool2d(2,2); flatten; linear(400,120); relu; linear(120,84); relu; linear(84,10)");
  }
  std::string known;
  for (const auto& candidate : architecture_names()) known += (known.empty() ? "" : ", ") + candidate;
  return error(errc::invalid_argument,
               "unknown model '" + std::string(name) + "' (known: " + known + ")");
}

}  // namespace rml::nn
