// The inference runner on the CPU: the same logits as a forward pass recorded on a tape, for
// any batch size, host memory in and out, and nothing recorded (the CPU has no graphs).
#include <catch2/catch.hpp>

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
