// One epoch of mlp and of lenet on Fashion-MNIST on the GPU reaches the CPU's test accuracy
// within 0.5 points with the same seed: SGD lr 0.01, momentum 0.9, batch 64. Skips, saying
// so, where there is no GPU.
//
// Why lr 0.01 and not the 0.05 of tests/compute/nn/training_test.cpp: at 0.05 one epoch of
// lenet is chaotic in the rounding. Measured on the CPU alone (bench/RESULTS.md, GPU
// section): oneDNN on 1 thread and on 2 threads, same seed, ended at 0.8421 and 0.8588 test
// accuracy, 1.7 points apart, so no second backend can be held to 0.5 points there. At 0.01
// the same two runs ended 0.16 points apart (lenet) and identical (mlp): rounding then moves
// the result by less than the bound, and a real error in an op does not hide inside it.
#include "compute/nn/training.hpp"
#include "tests/compute/fashion.hpp"
#include "tests/compute/cuda/gpu.hpp"

using namespace rml;

namespace {
using test::fashion;

double one_epoch_accuracy(backend& compute, const char* architecture, std::uint64_t seed) {
  auto model = nn::make_architecture(architecture);
  model->initialize(seed);
  model->place_on(compute);
  nn::sgd update(compute, model->parameters(), {0.01f, 0.9f, 0.0f});
  nn::classifier_session session(*model, update, compute);
  auto summary = nn::train_epoch(session, fashion(data::split::train), 64, seed);
  REQUIRE(summary.samples == 60000);
  return nn::evaluate_accuracy(session, fashion(data::split::test));
}

void same_accuracy_as_cpu(const char* architecture) {
  auto gpu = test::gpu_or_skip();
  if (!gpu) return;
  auto cpu = make_cpu_backend();
  const double on_cpu = one_epoch_accuracy(*cpu, architecture, 1);
  const double on_gpu = one_epoch_accuracy(*gpu, architecture, 1);
  std::fprintf(stderr, "%s one epoch: test accuracy %.4f on cpu, %.4f on cuda\n", architecture, on_cpu, on_gpu);
  INFO(architecture << ": cpu " << on_cpu << ", cuda " << on_gpu);
  REQUIRE(on_gpu >= 0.78);
  REQUIRE(std::abs(on_gpu - on_cpu) <= 0.005);
}
}  // namespace

TEST_CASE("one epoch of mlp on cuda reaches the cpu's test accuracy within 0.5 points") {
  same_accuracy_as_cpu("mlp");
}

TEST_CASE("one epoch of lenet on cuda reaches the cpu's test accuracy within 0.5 points") {
  same_accuracy_as_cpu("lenet");
}
