// compute/ benchmark: the workloads of bench/RESULTS.md's foundation table, one per run,
// printed as one JSON line so bench/compute_bench.py can set them beside PyTorch's.
//
//   rml_compute_bench --workload train|online|latency|throughput --model mlp|lenet
//                     [--threads N] [--seed S] [--samples N] [--batch N] [--data-dir DIR]
//
// train:      one epoch at batch 64 (SGD lr 0.05, momentum 0.9), samples/s + test accuracy
// online:     one pass at batch 1, predicting each sample before training on it
//             (progressive accuracy), SGD lr 0.005 momentum 0.9
// latency:    batch-1 predictions over the test set, p50/p99 in µs
// throughput: predictions at batch 256 (--batch) over the test set, samples/s
#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "compute/nn/training.hpp"

using namespace rml;
using clock_type = std::chrono::steady_clock;

/// Batch-1 SGD needs a smaller step than batch 64: with momentum 0.9, 0.005 diverged for
/// rml and PyTorch alike.
constexpr float online_learning_rate = 0.001f;

namespace {
struct options {
  std::string workload = "train";
  std::string model = "mlp";
  int threads = 0;
  std::uint64_t seed = 1;
  std::int64_t samples = 0;
  float learning_rate = 0;  // 0: the workload's default
  std::int64_t batch = 256;  // throughput's batch
  std::string data_dir = data::default_fashion_mnist_directory();
};

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

double percentile(std::vector<double> values, double fraction) {
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, std::size_t(fraction * double(values.size())))];
}

int run(const options& o) {
  auto train = data::load_fashion_mnist(o.data_dir, data::split::train);
  auto test = data::load_fashion_mnist(o.data_dir, data::split::test);
  if (!train || !test) {
    std::fprintf(stderr, "%s\n", (!train ? train.error() : test.error()).message().c_str());
    return 1;
  }
  auto compute = make_cpu_backend({o.threads});
  auto model = nn::make_architecture(o.model);
  if (!model) return std::fprintf(stderr, "%s\n", model.error().message().c_str()), 2;
  model->initialize(o.seed);
  const float learning_rate = o.learning_rate > 0 ? o.learning_rate : o.workload == "online" ? online_learning_rate : 0.05f;
  nn::sgd update(*compute, model->parameters(), {learning_rate, 0.9f, 0.0f});
  nn::classifier_session session(*model, update, *compute);
  const int threads = o.threads > 0 ? o.threads : available_cores();
  std::printf("{\"system\": \"rml\", \"workload\": \"%s\", \"model\": \"%s\", \"threads\": %d, \"seed\": %llu, ",
              o.workload.c_str(), o.model.c_str(), threads, (unsigned long long)o.seed);

  if (o.workload == "train") {
    const auto start = clock_type::now();
    auto summary = nn::train_epoch(session, *train, 64, o.seed);
    const double elapsed = seconds_since(start);
    std::printf("\"samples_per_s\": %.1f, \"test_accuracy\": %.4f, \"mean_loss\": %.4f}\n",
                double(summary.samples) / elapsed, nn::evaluate_accuracy(session, *test), summary.mean_loss);
    return 0;
  }
  if (o.workload == "online") {
    const std::int64_t count = o.samples > 0 ? std::min(o.samples, train->rows()) : train->rows();
    const auto order = shuffled_indices(std::uint32_t(train->rows()), o.seed);
    tensor sample = tensor::empty({1, train->feature_count()});
    std::int32_t predicted = 0;
    std::int64_t correct = 0;
    const auto start = clock_type::now();
    for (std::int64_t step = 0; step < count; ++step) {
      const std::uint32_t index = order[std::size_t(step)];
      nn::gather_rows(train->features, {&index, 1}, sample);
      const std::int32_t label = train->labels[index];
      session.train_step(sample, {&label, 1}, {&predicted, 1});
      correct += predicted == label;
    }
    const double elapsed = seconds_since(start);
    std::printf("\"samples\": %lld, \"samples_per_s\": %.1f, \"progressive_accuracy\": %.4f, \"test_accuracy\": %.4f}\n",
                (long long)count, double(count) / elapsed, double(correct) / double(count),
                nn::evaluate_accuracy(session, *test));
    return 0;
  }
  // Inference workloads use a model trained for one epoch, as a served model would be.
  nn::train_epoch(session, *train, 64, o.seed);
  if (o.workload == "latency") {
    const std::int64_t count = o.samples > 0 ? std::min(o.samples, test->rows()) : test->rows();
    std::vector<double> latencies_us;
    latencies_us.reserve(std::size_t(count));
    tensor sample = tensor::empty({1, test->feature_count()});
    std::int32_t predicted = 0;
    for (std::int64_t warmup = 0; warmup < 200; ++warmup) session.predict(test->features.rows(0, 1), {&predicted, 1});
    for (std::int64_t row = 0; row < count; ++row) {
      const auto start = clock_type::now();
      session.predict(test->features.rows(row, row + 1), {&predicted, 1});
      latencies_us.push_back(seconds_since(start) * 1e6);
    }
    std::printf("\"samples\": %lld, \"p50_us\": %.2f, \"p99_us\": %.2f}\n", (long long)count,
                percentile(latencies_us, 0.50), percentile(latencies_us, 0.99));
    return 0;
  }
  if (o.workload == "throughput") {
    const std::int64_t batch = o.batch;
    std::vector<std::int32_t> predicted(batch);
    session.predict(test->features.rows(0, batch), predicted);
    std::int64_t done = 0;
    const auto start = clock_type::now();
    for (int repeat = 0; repeat < 3; ++repeat) {
      for (std::int64_t begin = 0; begin + batch <= test->rows(); begin += batch) {
        session.predict(test->features.rows(begin, begin + batch), predicted);
        done += batch;
      }
    }
    std::printf("\"batch\": %lld, \"samples_per_s\": %.1f}\n", (long long)batch, double(done) / seconds_since(start));
    return 0;
  }
  std::fprintf(stderr, "unknown workload '%s'\n", o.workload.c_str());
  return 2;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rml compute benchmark"};
  options o;
  app.add_option("--workload", o.workload)->check(CLI::IsMember({"train", "online", "latency", "throughput"}));
  app.add_option("--model", o.model)->check(CLI::IsMember(nn::architecture_names()));
  app.add_option("--threads", o.threads, "compute threads (0: every core)");
  app.add_option("--seed", o.seed);
  app.add_option("--samples", o.samples, "limit for online and latency (0: all)");
  app.add_option("--lr", o.learning_rate, "learning rate (0: 0.05, online 0.001)");
  app.add_option("--batch", o.batch, "rows per prediction for throughput")->check(CLI::Range(1, 10000));
  app.add_option("--data-dir", o.data_dir);
  CLI11_PARSE(app, argc, argv);
  return run(o);
}
