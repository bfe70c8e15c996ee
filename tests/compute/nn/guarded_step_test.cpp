// classifier_session::guarded_step on the CPU: the same loss, predictions and update as a
// plain train_step where nothing is wrong, its gradient norm the norm of the gradients it
// left, clipping that scales them to the bound, and a step on non-finite data that changes
// nothing. (tests/compute/cuda/ops_test.cpp holds the GPU's recorded steps to these.)
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "compute/nn/training.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;

namespace {
struct trained {
  explicit trained(backend& compute) : model(nn::make_architecture("mlp").value()) {
    model.initialize(9);
    update = std::make_unique<nn::sgd>(compute, model.parameters(), nn::sgd_options{0.05f, 0.9f, 0.0f});
    session = std::make_unique<nn::classifier_session>(model, *update, compute);
  }
  nn::sequential model;
  std::unique_ptr<nn::sgd> update;
  std::unique_ptr<nn::classifier_session> session;
};

double gradient_norm(nn::sequential& model) {
  double squares = 0;
  for (const parameter* each : model.parameters()) {
    for (float value : each->gradient.values()) squares += double(value) * double(value);
  }
  return std::sqrt(squares);
}
}  // namespace

TEST_CASE("a guarded step reads loss, norm and predictions at once and steps as a plain one does") {
  auto compute = make_cpu_backend({1});
  auto generator = test::seeded_generator();
  trained guarded(*compute), plain(*compute);
  for (int step = 0; step < 3; ++step) {
    CAPTURE(step);
    const std::int64_t rows = step == 1 ? 5 : 12;
    tensor features = test::to_tensor(test::random_values(generator, std::size_t(rows * 784), 0, 1), {rows, 784});
    std::vector<std::int32_t> labels(static_cast<std::size_t>(rows));
    for (auto& label : labels) label = std::int32_t(test::random_size(generator, 0, 9));
    std::vector<std::int32_t> expected_predictions(labels.size()), guarded_predictions(labels.size(), -1),
        plain_predictions(labels.size());
    guarded.session->predict(features, expected_predictions);  // before the step's update
    const auto outcome = guarded.session->guarded_step(features, labels, guarded_predictions, 0.0f);
    const float plain_loss = plain.session->train_step(features, labels, plain_predictions);
    REQUIRE(outcome.applied);
    REQUIRE_FALSE(outcome.clipped);
    REQUIRE(outcome.loss == Approx(plain_loss).epsilon(1e-6));
    REQUIRE(outcome.gradient_norm == Approx(gradient_norm(guarded.model)).epsilon(1e-5));
    REQUIRE(guarded_predictions == expected_predictions);
    REQUIRE(guarded_predictions == plain_predictions);
    const auto a = guarded.model.parameters(), b = plain.model.parameters();
    for (std::size_t index = 0; index < a.size(); ++index) test::require_close(a[index]->value, test::to_double(b[index]->value), 0.0, "weights");
  }
}

TEST_CASE("a guarded step clips to its bound and skips non-finite data without a change") {
  auto compute = make_cpu_backend({1});
  auto generator = test::seeded_generator();
  trained guarded(*compute);
  tensor features = test::to_tensor(test::random_values(generator, 8 * 784, 0, 1), {8, 784});
  std::vector<std::int32_t> labels{1, 2, 3, 4, 5, 6, 7, 8}, predicted(8);
  const auto clipped = guarded.session->guarded_step(features, labels, predicted, 1e-3f);
  REQUIRE(clipped.applied);
  REQUIRE(clipped.clipped);
  REQUIRE(clipped.gradient_norm > 1e-3);
  REQUIRE(gradient_norm(guarded.model) == Approx(1e-3).epsilon(1e-4));  // scaled in place to the bound

  std::vector<std::vector<float>> before;
  for (const parameter* each : guarded.model.parameters()) before.emplace_back(each->value.values().begin(), each->value.values().end());
  features.data()[3] = std::numeric_limits<float>::infinity();
  const auto skipped = guarded.session->guarded_step(features, labels, predicted, 1e-3f);
  REQUIRE_FALSE(skipped.applied);
  const auto parameters = guarded.model.parameters();
  for (std::size_t index = 0; index < parameters.size(); ++index) {
    REQUIRE(std::equal(before[index].begin(), before[index].end(), parameters[index]->value.values().begin()));
  }
}
