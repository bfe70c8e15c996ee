// The CUDA backend's benchmark, one JSON line per measurement, set beside PyTorch's
// (bench/gpu/torch_gpu_peer.py, same workloads) by bench/gpu/check.sh.
//
//   rml_gpu_bench [--models mlp,lenet] [--seconds S] [--train-batches 64,512] [--no-inference]
//                 [--no-training]
//
// train B:      training steps at batch B (64, 512) on random batches already on the GPU
//               (16 of them, rotated), SGD lr 0.05 momentum 0.9; the labels come from
//               the host each step, as rml's API takes them; samples/s
// latency:      batch-1 predictions from a host array to host classes; median µs
// throughput:   batch-1024 predictions from host to host; samples/s
// Inference inputs are in page-locked host memory (backend::allocate_host), as the PyTorch
// peer's are (pin_memory()); the predictions run through classifier_session::predict, which
// records each batch size's forward pass as a CUDA graph (compute/nn/inference.hpp).
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "compute/cuda/cuda_backend.hpp"
#include "compute/nn/training.hpp"

using namespace rml;
using clock_type = std::chrono::steady_clock;

namespace {
double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

/// Random values in host memory; page-locked when `pinned` (as PyTorch's pin_memory()).
tensor random_host(std::mt19937& generator, const tensor_shape& shape, backend* pinned = nullptr) {
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  tensor result = pinned != nullptr ? pinned->allocate_host(shape) : tensor::empty(shape);
  for (float& value : result.values()) value = uniform(generator);
  return result;
}

/// A model of `architecture` on the GPU with its SGD and session (lr 0.05, momentum 0.9).
struct gpu_model {
  gpu_model(backend& gpu, const std::string& architecture)
      : model(nn::make_architecture(architecture).value()) {
    model.initialize(1);
    model.place_on(gpu);
    update = std::make_unique<nn::sgd>(gpu, model.parameters(), nn::sgd_options{0.05f, 0.9f, 0.0f});
    session = std::make_unique<nn::classifier_session>(model, *update, gpu);
  }
  nn::sequential model;
  std::unique_ptr<nn::sgd> update;
  std::unique_ptr<nn::classifier_session> session;
};

void train(backend& gpu, const std::string& architecture, std::int64_t batch, double seconds) {
  std::mt19937 generator(7);
  gpu_model trained(gpu, architecture);
  nn::classifier_session& session = *trained.session;
  constexpr int batches = 16;
  std::vector<tensor> features;
  std::vector<std::vector<std::int32_t>> labels(batches);
  for (int index = 0; index < batches; ++index) {
    features.push_back(on_device(gpu, random_host(generator, {batch, 784})));
    for (std::int64_t row = 0; row < batch; ++row) labels[index].push_back(std::int32_t(generator() % 10));
  }
  for (int step = 0; step < 20; ++step) session.train_step(features[step % batches], labels[step % batches]);
  gpu.synchronize();
  std::int64_t steps = 0;
  float loss = 0;
  const auto start = clock_type::now();
  while (seconds_since(start) < seconds) {
    for (int step = 0; step < 50; ++step, ++steps) {
      loss = session.train_step(features[steps % batches], labels[steps % batches]);
    }
  }
  gpu.synchronize();
  const double elapsed = seconds_since(start);
  std::printf("{\"peer\": \"rml\", \"model\": \"%s\", \"workload\": \"train\", \"batch\": %lld, "
              "\"samples_per_s\": %.1f, \"steps\": %lld, \"last_loss\": %.4f}\n",
              architecture.c_str(), (long long)batch, double(steps * batch) / elapsed, (long long)steps, loss);
}

void infer(backend& gpu, const std::string& architecture, double seconds) {
  std::mt19937 generator(9);
  gpu_model served(gpu, architecture);
  nn::classifier_session& session = *served.session;
  {  // batch 1: each prediction from a host array to a host class
    tensor one = random_host(generator, {1, 784}, &gpu);
    std::int32_t predicted = 0;
    for (int warm = 0; warm < 200; ++warm) session.predict(one, {&predicted, 1});
    std::vector<double> micros;
    const auto start = clock_type::now();
    while (seconds_since(start) < seconds) {
      const auto begin = clock_type::now();
      session.predict(one, {&predicted, 1});
      micros.push_back(seconds_since(begin) * 1e6);
    }
    std::sort(micros.begin(), micros.end());
    std::printf("{\"peer\": \"rml\", \"model\": \"%s\", \"workload\": \"latency\", \"batch\": 1, "
                "\"p50_us\": %.2f, \"p99_us\": %.2f, \"calls\": %zu}\n",
                architecture.c_str(), micros[micros.size() / 2], micros[micros.size() * 99 / 100], micros.size());
  }
  {  // batch 1024, host to host
    constexpr std::int64_t batch = 1024;
    tensor many = random_host(generator, {batch, 784}, &gpu);
    std::vector<std::int32_t> classes(batch);
    for (int warm = 0; warm < 20; ++warm) session.predict(many, classes);
    std::int64_t calls = 0;
    const auto start = clock_type::now();
    while (seconds_since(start) < seconds) {
      session.predict(many, classes);
      ++calls;
    }
    std::printf("{\"peer\": \"rml\", \"model\": \"%s\", \"workload\": \"throughput\", \"batch\": %lld, "
                "\"samples_per_s\": %.1f, \"calls\": %lld}\n",
                architecture.c_str(), (long long)batch, double(calls * batch) / seconds_since(start), (long long)calls);
  }
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rml's CUDA backend benchmark"};
  std::vector<std::string> models{"mlp", "lenet"};
  std::vector<std::int64_t> train_batches{64, 512};
  bool inference = true, training = true;
  double seconds = 2.0;
  app.add_option("--models", models, "architectures")->delimiter(',');
  app.add_option("--train-batches", train_batches, "training batch sizes")->delimiter(',');
  app.add_flag("!--no-inference", inference, "skip the inference measurements (profiling one workload)");
  app.add_flag("!--no-training", training, "skip the training measurements (profiling one workload)");
  app.add_option("--seconds", seconds, "seconds per measurement")->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  auto made = cuda::make_cuda_backend();
  if (!made) {
    std::fprintf(stderr, "rml_gpu_bench: %s\n", made.error().message().c_str());
    return 1;
  }
  backend& gpu = **made;
  std::fprintf(stderr, "rml_gpu_bench: %s\n", gpu.description().c_str());
  for (const auto& architecture : models) {
    if (training) {
      for (std::int64_t batch : train_batches) train(gpu, architecture, batch, seconds);
    }
    if (inference) infer(gpu, architecture, seconds);
  }
  return 0;
}
