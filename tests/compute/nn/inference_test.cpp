// The inference runner on the CPU: the same logits as a forward pass recorded on a tape, for
// any batch size, host memory in and out, and nothing recorded (the CPU has no graphs).
#include <catch2/catch.hpp>

#include <algorithm>

#include "compute/nn/inference.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;

TEST_CASE("the inference runner gives a plain forward pass's logits on the cpu, recording nothing") {
  auto compute = make_cpu_backend({1});
  auto generator = test::seeded_generator();
  auto model = nn::make_architecture("lenet");
  model->initialize(2);
  nn::inference_runner runner(*model, *compute);
  for (std::int64_t rows : {1, 5, 5, 32}) {
    CAPTURE(rows);
    tensor features = test::to_tensor(test::random_values(generator, std::size_t(rows * 784), 0, 1), {rows, 784});
    tape recorder(*compute, tape::mode::inference);
    const tensor& expected = recorder.value(model->forward(recorder, recorder.input(features)));
    const tensor& logits = runner.logits(features);
    REQUIRE(logits.device() == device_kind::cpu);
    test::require_close(logits, test::to_double(expected), 0.0, "runner logits");
  }
  REQUIRE(runner.recordings() == 0);
  REQUIRE(runner.recording_failure().empty());
}

TEST_CASE("the inference runner hands probabilities and classes to the host on the cpu") {
  auto compute = make_cpu_backend({1});
  auto generator = test::seeded_generator();
  auto model = nn::make_architecture("mlp");
  model->initialize(3);
  nn::inference_runner runner(*model, *compute);
  const std::int64_t rows = 9;
  tensor features = test::to_tensor(test::random_values(generator, std::size_t(rows * 784), 0, 1), {rows, 784});
  const tensor logits = runner.logits(features).clone();
  tensor probabilities = tensor::empty({rows, 10}), classes = tensor::empty({rows});
  runner.to_host(features, nn::inference_head::probabilities, probabilities);
  runner.to_host(features, nn::inference_head::classes, classes);
  for (std::int64_t row = 0; row < rows; ++row) {
    const float* scores = logits.data() + row * 10;
    const float* p = probabilities.data() + row * 10;
    double sum = 0;
    for (int column = 0; column < 10; ++column) sum += p[column];
    REQUIRE(sum == Approx(1.0).epsilon(1e-5));
    const auto best = std::max_element(scores, scores + 10) - scores;
    REQUIRE(classes.data()[row] == float(best));
    REQUIRE(std::max_element(p, p + 10) - p == best);
  }
  REQUIRE(runner.recordings() == 0);
}
