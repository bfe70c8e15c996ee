// Layers and Sequential: spec strings round-trip, shapes are checked when a model is built,
// the built-in architectures have the documented sizes, and initialisation is seeded.
#include <catch2/catch.hpp>

#include <cmath>

#include "compute/nn/sequential.hpp"

using namespace rml;

TEST_CASE("the built-in architectures have their documented shapes") {
  auto mlp = nn::make_architecture("mlp");
  REQUIRE(mlp.ok());
  REQUIRE(mlp->parameter_count() == 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10);
  REQUIRE(mlp->output_shape() == tensor_shape{10});
  auto lenet = nn::make_architecture("lenet");
  REQUIRE(lenet.ok());
  REQUIRE(lenet->sample_shape() == tensor_shape{1, 28, 28});
  REQUIRE(lenet->parameter_count() ==
          (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10));
  auto unknown = nn::make_architecture("resnet");
  REQUIRE(unknown.error().message() == "unknown model 'resnet' (known: mlp, lenet)");
}

TEST_CASE("a model's spec string rebuilds the same model") {
  for (const char* name : {"mlp", "lenet"}) {
    auto model = nn::make_architecture(name);
    auto rebuilt = nn::sequential::from_spec(model->spec());
    REQUIRE(rebuilt.ok());
    REQUIRE(rebuilt->spec() == model->spec());
  }
}

TEST_CASE("a model spec whose shapes do not fit is refused naming the layer") {
  auto bad = nn::sequential::from_spec("input(1,28,28); conv2d(1,6,5); flatten; linear(100,10)");
  REQUIRE_FALSE(bad.ok());
  REQUIRE(bad.error().code() == errc::shape_mismatch);
  REQUIRE(bad.error().message() == "model spec layer 3: linear(100,10) takes samples of shape [100], got [3456]");
  REQUIRE(nn::sequential::from_spec("linear(3,4)").error().message().find("must start with input") != std::string::npos);
  REQUIRE(nn::sequential::from_spec("input(4); linear(4,x)").error().message() ==
          "layer spec 'linear(4,x)': argument 'x' is not an integer");
  REQUIRE(nn::sequential::from_spec("input(4); dense(4,2)").error().message().find("unknown layer 'dense'") !=
          std::string::npos);
  REQUIRE(nn::sequential::from_spec("input(4); linear(0,2)").error().message() ==
          "layer spec 'linear(0,2)': argument 1 must be in [1, 16777216], got 0");
  REQUIRE(nn::sequential::from_spec("input(1,4,4); maxpool2d(8)").error().code() == errc::shape_mismatch);
}

TEST_CASE("initialisation is seeded and follows the Kaiming bound") {
  auto first = nn::make_architecture("mlp"), second = nn::make_architecture("mlp"), third = nn::make_architecture("mlp");
  first->initialize(5);
  second->initialize(5);
  third->initialize(6);
  auto weights = [](nn::sequential& model) { return std::vector<float>(model.parameters()[0]->value.values().begin(), model.parameters()[0]->value.values().end()); };
  REQUIRE(weights(*first) == weights(*second));
  REQUIRE(weights(*first) != weights(*third));
  const float bound = 1.0f / std::sqrt(784.0f);
  float largest = 0;
  for (float w : weights(*first)) largest = std::max(largest, std::abs(w));
  REQUIRE(largest <= bound);
  REQUIRE(largest > 0.95f * bound);

  auto xavier = nn::make_architecture("mlp");
  xavier->initialize(5, nn::weight_init::xavier_uniform);
  float xavier_largest = 0;
  for (float w : weights(*xavier)) xavier_largest = std::max(xavier_largest, std::abs(w));
  REQUIRE(xavier_largest <= std::sqrt(6.0f / (784 + 256)));
  REQUIRE(xavier_largest > 0.95f * std::sqrt(6.0f / (784 + 256)));
}

TEST_CASE("a batch whose shape does not fit the model is an error naming both shapes") {
  auto lenet = nn::make_architecture("lenet");
  REQUIRE(lenet->check_batch({5, 784}).ok());
  REQUIRE(lenet->check_batch({5, 1, 28, 28}).ok());
  auto wrong = lenet->check_batch({5, 783});
  REQUIRE(wrong.error().code() == errc::shape_mismatch);
  REQUIRE(wrong.error().message() ==
          "input of shape [5, 783] does not fit a model taking samples of shape [1, 28, 28] "
          "(expected [N, 784] or [N] + [1, 28, 28])");
  REQUIRE_FALSE(lenet->check_batch({5, 28, 28}).ok());
}

TEST_CASE("a sequential model accepts flat rows or shaped samples") {
  auto compute = make_cpu_backend({1});
  auto lenet = nn::make_architecture("lenet");
  lenet->initialize(1);
  tape recorder(*compute, tape::mode::inference);
  tensor flat = tensor::filled({3, 784}, 0.5f);
  const tensor first = recorder.value(lenet->forward(recorder, recorder.input(flat))).clone();
  const tensor second = recorder.value(lenet->forward(recorder, recorder.input(flat.reshaped({3, 1, 28, 28}))));
  REQUIRE(first.shape() == tensor_shape{3, 10});
  REQUIRE(std::vector<float>(first.values().begin(), first.values().end()) ==
          std::vector<float>(second.values().begin(), second.values().end()));
}
