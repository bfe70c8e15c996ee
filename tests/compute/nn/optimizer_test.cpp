// Optimizers: they reduce a simple convex loss, validate their options with named errors,
// and expose their state for checkpoints.
#include <catch2/catch.hpp>

#include "compute/nn/optimizer.hpp"

using namespace rml;

namespace {
/// Minimises mean((w·x − y)²) for a fixed linear target and returns the final loss.
template <class Optimizer, class Options>
float fit_line(const Options& options, int steps) {
  auto compute = make_cpu_backend({1});
  parameter w{"w", tensor::zeros({1, 2}), {}};
  tensor x = tensor::from(std::vector<float>{1, 0, 0, 1, 1, 1}, {3, 2});
  tensor y = tensor::from(std::vector<float>{2, -1, 1}, {3, 1});
  Optimizer update(*compute, {&w}, options);
  tape recorder(*compute);
  float loss = 0;
  for (int step = 0; step < steps; ++step) {
    recorder.clear();
    var l = recorder.mse(recorder.linear(recorder.input(x), recorder.param(w), var{}), y);
    loss = recorder.value(l).data()[0];
    recorder.backward(l);
    update.step();
  }
  return loss;
}
}  // namespace

TEST_CASE("sgd with momentum and adam both fit a linear target") {
  REQUIRE(fit_line<nn::sgd>(nn::sgd_options{0.1f, 0.9f, 0.0f}, 200) < 1e-4f);
  REQUIRE(fit_line<nn::adam>(nn::adam_options{0.05f}, 400) < 1e-4f);
  // Weight decay keeps the weights from the exact fit.
  REQUIRE(fit_line<nn::sgd>(nn::sgd_options{0.1f, 0.9f, 0.5f}, 200) > 1e-3f);
}

TEST_CASE("optimizer options are validated with the field and value named") {
  REQUIRE(nn::validate(nn::sgd_options{0.1f, 0.9f, 0.0f}).ok());
  REQUIRE(nn::validate(nn::sgd_options{-1.0f, 0.9f, 0.0f}).error().message() == "learning rate must be > 0, got -1.000000");
  REQUIRE(nn::validate(nn::sgd_options{0.1f, 1.0f, 0.0f}).error().message() == "momentum must be in [0, 1), got 1.000000");
  nn::adam_options adam;
  adam.beta2 = 1.5f;
  REQUIRE(nn::validate(adam).error().message() == "beta2 must be in [0, 1), got 1.500000");
}

TEST_CASE("optimizer state is exposed for checkpoints") {
  auto compute = make_cpu_backend({1});
  parameter a{"a", tensor::zeros({3}), {}}, b{"b", tensor::zeros({2, 2}), {}};
  nn::sgd momentum(*compute, {&a, &b}, {0.1f, 0.9f, 0.0f});
  REQUIRE(momentum.state().size() == 2);
  REQUIRE(momentum.state()[1]->shape() == tensor_shape{2, 2});
  nn::adam adam(*compute, {&a, &b}, {});
  REQUIRE(adam.state().size() == 4);
}
