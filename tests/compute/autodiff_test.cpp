// The tape: gradients of compositions against finite differences of the tape's own forward
// pass (float32, so tolerances are looser than the per-op tests), reuse of values,
// parameters shared between uses, and inference mode.
#include <catch2/catch.hpp>

#include "compute/autodiff.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;
using namespace rml::test;

namespace {
parameter make_parameter(std::mt19937_64& generator, const tensor_shape& shape, const char* name) {
  return {name, to_tensor(random_values(generator, std::size_t(shape.numel()), -0.5, 0.5), shape), {}};
}

/// Finite differences of `loss()` with respect to each element of `target`, in float.
template <class Loss>
values float_numeric_gradient(tensor& target, Loss&& loss, float step = 1e-2f) {
  values gradient(std::size_t(target.numel()));
  for (std::int64_t i = 0; i < target.numel(); ++i) {
    const float saved = target.data()[i];
    target.data()[i] = saved + step;
    const double up = loss();
    target.data()[i] = saved - step;
    const double down = loss();
    target.data()[i] = saved;
    gradient[std::size_t(i)] = (up - down) / (2.0 * step);
  }
  return gradient;
}
}  // namespace

TEST_CASE("the tape differentiates a composition of linear, tanh, sigmoid, add and mse") {
  auto compute = make_cpu_backend({1});
  auto generator = seeded_generator();
  parameter w1 = make_parameter(generator, {5, 4}, "w1"), b1 = make_parameter(generator, {5}, "b1");
  parameter w2 = make_parameter(generator, {5, 5}, "w2"), w3 = make_parameter(generator, {2, 5}, "w3");
  tensor x = to_tensor(random_values(generator, 12), {3, 4});
  tensor target = to_tensor(random_values(generator, 6), {3, 2});

  tape recorder(*compute);
  auto forward = [&] {
    recorder.clear();
    var h = recorder.tanh(recorder.linear(recorder.input(x), recorder.param(w1), recorder.param(b1)));
    // A skip connection: h feeds two branches whose gradients must add up.
    var g = recorder.add(recorder.sigmoid(recorder.linear(h, recorder.param(w2), var{})), h);
    return recorder.mse(recorder.linear(g, recorder.param(w3), var{}), target);
  };
  auto loss_value = [&] { return double(recorder.value(forward()).data()[0]); };

  var loss = forward();
  recorder.backward(loss);
  std::vector<std::pair<parameter*, values>> analytic;
  for (parameter* p : {&w1, &b1, &w2, &w3}) analytic.emplace_back(p, to_double(p->gradient));
  for (auto& [p, gradient] : analytic) {
    CAPTURE(p->name);
    values numeric = float_numeric_gradient(p->value, loss_value);
    tensor actual = to_tensor(gradient, p->value.shape());
    require_close(actual, numeric, 2e-2, p->name.c_str());
  }
}

TEST_CASE("the tape differentiates conv2d, relu, max pooling, reshape and cross-entropy together") {
  auto compute = make_cpu_backend({1});
  auto generator = seeded_generator();
  parameter kernel = make_parameter(generator, {3, 2, 3, 3}, "kernel"), bias = make_parameter(generator, {3}, "bias");
  parameter w = make_parameter(generator, {4, 12}, "w");
  tensor x = to_tensor(random_values(generator, 2 * 2 * 6 * 6), {2, 2, 6, 6});
  const std::vector<std::int32_t> labels = {1, 3};

  tape recorder(*compute);
  auto forward = [&] {
    recorder.clear();
    var c = recorder.relu(recorder.conv2d(recorder.input(x), recorder.param(kernel), recorder.param(bias), {1, 0}));
    var p = recorder.max_pool2d(c, {2, 2});
    var flat = recorder.reshape(p, {2, 12});
    return recorder.softmax_cross_entropy(recorder.linear(flat, recorder.param(w), var{}), labels);
  };
  auto loss_value = [&] { return double(recorder.value(forward()).data()[0]); };
  recorder.backward(forward());
  std::vector<std::pair<parameter*, values>> analytic;
  for (parameter* p : {&kernel, &bias, &w}) analytic.emplace_back(p, to_double(p->gradient));
  for (auto& [p, gradient] : analytic) {
    CAPTURE(p->name);
    values numeric = float_numeric_gradient(p->value, loss_value, 1e-3f);
    require_close(to_tensor(gradient, p->value.shape()), numeric, 3e-2, p->name.c_str());
  }
}

TEST_CASE("a parameter used twice gets the sum of both gradients") {
  auto compute = make_cpu_backend({1});
  parameter w{"w", tensor::from(std::vector<float>{2.0f}, {1, 1}), {}};
  tensor x = tensor::from(std::vector<float>{3.0f}, {1, 1});
  tensor zero = tensor::zeros({1, 1});
  tape recorder(*compute);
  // loss = (w·(w·x))² /1 → d/dw = 2·w²x · 2wx = 4w³x² = 4·8·9 = 288
  var inner = recorder.linear(recorder.input(x), recorder.param(w), var{});
  var outer = recorder.linear(inner, recorder.param(w), var{});
  var loss = recorder.mse(outer, zero);
  recorder.backward(loss);
  REQUIRE(w.gradient.data()[0] == Approx(288.0f));
  // backward() overwrites: a second step on the same values gives the same gradient.
  recorder.backward(loss);
  REQUIRE(w.gradient.data()[0] == Approx(288.0f));
}

TEST_CASE("a parameter the loss does not reach gets a zero gradient") {
  auto compute = make_cpu_backend({1});
  parameter used{"used", tensor::filled({1, 2}, 1.0f), {}};
  parameter unused{"unused", tensor::filled({1, 2}, 1.0f), tensor::filled({1, 2}, 5.0f)};
  tape recorder(*compute);
  tensor x = tensor::filled({1, 2}, 1.0f);
  recorder.param(unused);
  var loss = recorder.mse(recorder.linear(recorder.input(x), recorder.param(used), var{}), tensor::zeros({1, 1}));
  recorder.backward(loss);
  for (float g : unused.gradient.values()) REQUIRE(g == 0.0f);
}

TEST_CASE("an inference tape records no gradients") {
  auto compute = make_cpu_backend({1});
  parameter w{"w", tensor::filled({2, 3}, 0.5f), {}};
  tape recorder(*compute, tape::mode::inference);
  var y = recorder.linear(recorder.input(tensor::filled({4, 3}, 1.0f)), recorder.param(w), var{});
  REQUIRE(recorder.value(y).data()[0] == Approx(1.5f));
  REQUIRE_FALSE(recorder.gradient(y).defined());
  REQUIRE_FALSE(w.gradient.defined());
}
