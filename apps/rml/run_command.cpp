#include <chrono>
#include <cstdio>
#include <memory>

#include "apps/rml/commands.hpp"
#include "apps/rml/progress.hpp"
#include "compute/data/dataset.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/training.hpp"

namespace rml::app {
namespace {

struct run_options {
  std::string model = "mlp";
  std::string optimizer = "sgd";
  int epochs = 1;
  std::int64_t batch_rows = 64;
  float learning_rate = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  std::uint64_t seed = 1;
  int threads = 0;
  std::string data_dir = data::default_fashion_mnist_directory();
  std::string output;
};

void fail(const std::string& message) { std::fprintf(stderr, "rml run: %s\n", message.c_str()); }

int run(const run_options& options) {
  auto model = nn::make_architecture(options.model);
  if (!model) return fail(model.error().message()), 2;
  std::unique_ptr<backend> compute = make_cpu_backend({options.threads});
  std::fprintf(stderr, "rml run: model %s (%zu parameters), %s, seed %llu\n", options.model.c_str(),
               model->parameter_count(), compute->description().c_str(),
               (unsigned long long)options.seed);

  auto train = data::load_fashion_mnist(options.data_dir, data::split::train);
  if (!train) return fail(train.error().message()), 1;
  auto test = data::load_fashion_mnist(options.data_dir, data::split::test);
  if (!test) return fail(test.error().message()), 1;
  if (auto fits = model->check_batch(train->features.shape()); !fits) {
    return fail(options.data_dir + ": " + fits.error().message()), 2;
  }

  model->initialize(options.seed);
  std::unique_ptr<nn::optimizer> update;
  if (options.optimizer == "sgd") {
    nn::sgd_options settings{options.learning_rate, options.momentum, options.weight_decay};
    if (auto valid = nn::validate(settings); !valid) return fail(valid.error().message()), 2;
    update = std::make_unique<nn::sgd>(*compute, model->parameters(), settings);
  } else {
    nn::adam_options settings;
    settings.learning_rate = options.learning_rate;
    settings.weight_decay = options.weight_decay;
    if (auto valid = nn::validate(settings); !valid) return fail(valid.error().message()), 2;
    update = std::make_unique<nn::adam>(*compute, model->parameters(), settings);
  }
  nn::classifier_session session(*model, *update, *compute);

  const auto start = std::chrono::steady_clock::now();
  for (int epoch = 1; epoch <= options.epochs; ++epoch) {
    progress_display progress("epoch " + std::to_string(epoch) + "/" + std::to_string(options.epochs),
                              train->rows(), "samples");
    double running_loss = 0.0;
    auto summary = nn::train_epoch(
        session, *train, options.batch_rows, options.seed + std::uint64_t(epoch),
        [&](std::int64_t step, std::int64_t samples, float loss) {
          running_loss = step == 1 ? loss : 0.98 * running_loss + 0.02 * loss;
          char status[64];
          std::snprintf(status, sizeof(status), "loss %.4f", running_loss);
          progress.update(samples, status);
        });
    char status[64];
    std::snprintf(status, sizeof(status), "mean loss %.4f", summary.mean_loss);
    progress.finish(status);
  }
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double accuracy = nn::evaluate_accuracy(session, *test);
  std::printf("model %s: test accuracy %.4f on %lld samples; trained %d epoch(s) in %.1f s (%.0f samples/s)\n",
              options.model.c_str(), accuracy, (long long)test->rows(), options.epochs, train_seconds,
              double(train->rows()) * options.epochs / train_seconds);

  if (!options.output.empty()) {
    model_metadata metadata{{"model", options.model},
                            {"dataset", "fashion-mnist"},
                            {"epochs", std::to_string(options.epochs)},
                            {"seed", std::to_string(options.seed)},
                            {"test_accuracy", std::to_string(accuracy)}};
    if (auto saved = save_model(options.output, *model, metadata); !saved) {
      return fail(saved.error().message()), 1;
    }
    std::printf("saved %s\n", options.output.c_str());
  }
  return 0;
}

}  // namespace

void register_run_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<run_options>();
  CLI::App* command = app.add_subcommand("run", "Train a built-in model on Fashion-MNIST and report test accuracy");
  command->add_option("--model", options->model, "Architecture: mlp or lenet")
      ->check(CLI::IsMember(nn::architecture_names()))
      ->capture_default_str();
  command->add_option("--optimizer", options->optimizer, "sgd or adam")
      ->check(CLI::IsMember({"sgd", "adam"}))
      ->capture_default_str();
  command->add_option("--epochs", options->epochs, "Passes over the training set")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  command->add_option("--batch", options->batch_rows, "Rows per training step")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  command->add_option("--lr", options->learning_rate, "Learning rate")->capture_default_str();
  command->add_option("--momentum", options->momentum, "SGD momentum")->capture_default_str();
  command->add_option("--weight-decay", options->weight_decay, "L2 weight decay")->capture_default_str();
  command->add_option("--seed", options->seed, "Seed of weights and data order")->capture_default_str();
  command->add_option("--threads", options->threads, "Compute threads (0: every core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--data-dir", options->data_dir, "Directory of the Fashion-MNIST IDX files")
      ->capture_default_str();
  command->add_option("--output", options->output, "Save the trained model to this file");
  command->callback([options, &exit_code] { exit_code = run(*options); });
}

}  // namespace rml::app
