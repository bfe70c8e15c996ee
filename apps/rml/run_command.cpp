// `rml run`: the default topology in one process (topologies/default_topology.hpp). Streams
// the Fashion-MNIST train set through ingest and the durable log into the online trainer,
// publishes models to the registry and serving while it trains, shows progress, then
// evaluates the last model on the test set through the serving path and prints a summary.
#include <caf/all.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "apps/rml/commands.hpp"
#include "apps/rml/progress.hpp"
#include "messaging/errors.hpp"
#include "messaging/zmq_endpoint.hpp"
#include "compute/nn/sequential.hpp"
#include "topologies/default_topology.hpp"

namespace rml::app {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct run_options {
  std::string model = "mlp";
  int epochs = 1;
  std::uint32_t batch_rows = 64;
  float learning_rate = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  std::uint64_t seed = 1;
  int threads = 0;
  double rate = 0;
  std::string dataset_dir = data::default_fashion_mnist_directory();
  std::string data_dir = "rml-data";
  std::string bind_host = "127.0.0.1";
  int predict_port = 5556;
  int ingest_port = 5555;
  bool resume = false;
  bool fresh = false;
  std::string output;
  std::string train_csv, test_csv, label_column = "label";
  std::string pipeline;  // empty: scale pixels to [0, 1] for Fashion-MNIST, standardize for CSV
  int scheduler_threads = 0;
};

/// The training and test sets: Fashion-MNIST (raw pixels), or the CSV files given.
struct datasets {
  data::dataset train, test;
};

result<datasets> load_datasets(const run_options& options) {
  datasets loaded;
  if (options.train_csv.empty()) {
    auto train = data::load_fashion_mnist(options.dataset_dir, data::split::train, 1.0f);
    if (!train) return train.error();
    auto test = data::load_fashion_mnist(options.dataset_dir, data::split::test, 1.0f);
    if (!test) return test.error();
    loaded.train = std::move(train.value());
    loaded.test = std::move(test.value());
    return loaded;
  }
  auto train = data::read_csv(options.train_csv, options.label_column);
  if (!train) return train.error();
  loaded.train = std::move(train.value());
  const std::string test_path = options.test_csv.empty() ? options.train_csv : options.test_csv;
  auto test = data::read_csv(test_path, options.label_column);
  if (!test) return test.error();
  if (test->feature_count() != loaded.train.feature_count()) {
    return error(errc::shape_mismatch, test_path + " has " + std::to_string(test->feature_count()) + " features, " +
                                           options.train_csv + " has " + std::to_string(loaded.train.feature_count()));
  }
  loaded.test = std::move(test.value());
  return loaded;
}

int fail(const std::string& message, int code) {
  std::fprintf(stderr, "rml run: %s\n", message.c_str());
  return code;
}

/// Asks `target` and waits up to `timeout`; nothing when it did not answer.
template <class Reply, class Handle, class... Ts>
std::optional<Reply> ask(caf::scoped_actor& self, const Handle& target, std::chrono::milliseconds timeout, Ts... request) {
  std::optional<Reply> reply;
  if (!target) return reply;
  self->request(target, timeout, request...).receive([&](Reply& answer) { reply = std::move(answer); }, [](caf::error&) {});
  return reply;
}

/// Refuses to mix runs silently: a data directory holding state needs --resume or --fresh.
int prepare_data_dir(const run_options& options) {
  if (options.resume && options.fresh) return fail("--resume and --fresh exclude each other", 2);
  const bool has_state = fs::exists(fs::path(options.data_dir) / "log");
  if (has_state && options.fresh) {
    std::error_code removed;
    fs::remove_all(fs::path(options.data_dir) / "log", removed);
    fs::remove_all(fs::path(options.data_dir) / "registry", removed);
    if (removed) return fail(options.data_dir + ": cannot clear: " + removed.message(), 1);
    std::fprintf(stderr, "rml run: cleared the previous run's state in %s\n", options.data_dir.c_str());
  } else if (has_state && !options.resume) {
    return fail(options.data_dir + " holds a previous run's state: pass --resume to continue it or --fresh to start over", 2);
  }
  return 0;
}

/// Accuracy on `test` through the serving path (the batcher in front of the replica).
double evaluate(caf::scoped_actor& self, const actors::batcher_actor& serving, const data::dataset& test) {
  constexpr std::int64_t rows_per_request = 500;
  const std::int64_t width = test.feature_count();
  std::int64_t correct = 0;
  for (std::int64_t begin = 0; begin < test.rows(); begin += rows_per_request) {
    const std::int64_t rows = std::min(rows_per_request, test.rows() - begin);
    messaging::predict_request request;
    request.request_id = std::uint64_t(begin);
    request.rows = std::uint32_t(rows);
    request.top_k = 1;
    const float* first = test.features.data() + begin * width;
    request.features.values.assign(first, first + rows * width);
    auto reply = ask<messaging::predict_reply>(self, serving, 30s, request);
    if (!reply) return -1;
    for (std::int64_t row = 0; row < rows; ++row) correct += reply->top_classes[std::size_t(row)] == test.labels[std::size_t(begin + row)];
  }
  return double(correct) / double(test.rows());
}

int run(const run_options& options) {
  if (auto prepared = prepare_data_dir(options); prepared != 0) return prepared;
  auto loaded = load_datasets(options);
  if (!loaded) return fail(loaded.error().message(), 1);
  auto train = std::make_shared<const data::dataset>(std::move(loaded->train));
  const data::dataset* test = &loaded->test;
  const std::int64_t width = train->feature_count();

  const int cores = available_cores();
  caf::actor_system_config config;
  config.set("scheduler.max-threads", options.scheduler_threads > 0 ? options.scheduler_threads : cores);
  config.set("logger.verbosity", caf::atom("quiet"));
  messaging::register_messaging(config);
  caf::actor_system system{config};

  topologies::pipeline_options pipeline;
  pipeline.data_dir = options.data_dir;
  pipeline.train = train;
  pipeline.feature.feature_count = std::uint32_t(width);
  pipeline.feature.pipeline = !options.pipeline.empty()        ? options.pipeline
                              : options.train_csv.empty() ? "scale(0.00392156862745098)"
                                                          : "standardize";
  pipeline.ingest.feature_count = std::uint32_t(width);
  pipeline.ingest.classes = std::max(train->classes, test->classes);
  pipeline.source.epochs = std::uint32_t(options.epochs);
  pipeline.source.seed = options.seed;
  pipeline.source.events_per_second = options.rate;
  pipeline.feature.rows_per_batch = options.batch_rows;
  pipeline.trainer.architecture = options.model;
  pipeline.trainer.seed = options.seed;
  pipeline.trainer.sgd = {options.learning_rate, options.momentum, options.weight_decay};
  // The trainer leaves a core to ingest, the log and feature: on 2 cores one compute thread
  // beside 2 CAF threads measured 1.6× the events/s of two (bench/RESULTS.md, threads).
  pipeline.trainer.compute_threads = options.threads > 0 ? options.threads : std::max(1, cores - 1);
  if (auto valid = topologies::validate(pipeline); !valid) return fail(valid.error().message(), 2);
  auto started = topologies::start_pipeline(system, pipeline);
  if (!started) return fail(started.error().message(), 1);
  std::fprintf(stderr, "rml run: model %s, pipeline %s, seed %llu, %d CAF threads, trainer on %d compute threads, state in %s\n",
               options.model.c_str(), pipeline.feature.pipeline.c_str(), (unsigned long long)options.seed,
               options.scheduler_threads > 0 ? options.scheduler_threads : cores, pipeline.trainer.compute_threads,
               options.data_dir.c_str());

  // The sockets: predictions while training, and events from external producers.
  messaging::zmq_endpoint_options predict_socket;
  predict_socket.role = messaging::endpoint_role::predict;
  predict_socket.bind = "tcp://" + options.bind_host + ":" + std::to_string(options.predict_port);
  predict_socket.target = messaging::names::batcher;
  predict_socket.features = std::uint32_t(width);
  auto predict_endpoint = messaging::zmq_endpoint::start(system, predict_socket);
  if (!predict_endpoint) return fail(predict_endpoint.error().message(), 1);
  messaging::zmq_endpoint_options ingest_socket;
  ingest_socket.role = messaging::endpoint_role::ingest;
  ingest_socket.bind = "tcp://" + options.bind_host + ":" + std::to_string(options.ingest_port);
  ingest_socket.target = messaging::names::ingest;
  ingest_socket.features = std::uint32_t(width);
  auto ingest_endpoint = messaging::zmq_endpoint::start(system, ingest_socket);
  if (!ingest_endpoint) return fail(ingest_endpoint.error().message(), 1);
  std::fprintf(stderr, "rml run: predictions on %s, events on %s (docs/protocol.md)\n",
               (*predict_endpoint)->address().c_str(), (*ingest_endpoint)->address().c_str());

  caf::scoped_actor self{system};
  auto& names = system.registry();
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t total = std::uint64_t(pipeline.train->rows()) * std::uint64_t(options.epochs);
  progress_display progress("training", std::int64_t(total), "events");
  messaging::trainer_status trained;
  while (true) {
    std::this_thread::sleep_for(100ms);
    auto source = ask<messaging::source_status>(self, names.get<actors::source_actor>(messaging::names::source), 5s,
                                                messaging::status_atom::value);
    auto status = ask<messaging::trainer_status>(self, names.get<actors::trainer_actor>(messaging::names::trainer), 5s,
                                                 messaging::status_atom::value);
    if (status) trained = *status;
    char line[160];
    std::snprintf(line, sizeof(line), "acked %llu, rolling accuracy %.3f, model v%llu",
                  (unsigned long long)(source ? source->events_acked : 0), trained.rolling_accuracy,
                  (unsigned long long)trained.published_version);
    progress.update(std::int64_t(std::min<std::uint64_t>(trained.next_offset, total)), line);
    if (source && source->finished && status && status->next_offset >= started->log->end_offset()) break;
  }
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char summary[160];
  std::snprintf(summary, sizeof(summary), "rolling accuracy %.3f", trained.rolling_accuracy);
  progress.finish(summary);

  // Publish the final model and evaluate it through the serving path.
  auto trainer = names.get<actors::trainer_actor>(messaging::names::trainer);
  auto snapshot = ask<messaging::model_snapshot>(self, trainer, 30s, messaging::snapshot_atom::value);
  if (!snapshot) return fail("the trainer did not hand over its final model", 1);
  snapshot->version = trained.published_version + 1;
  auto registry = names.get<actors::registry_actor>(messaging::names::registry);
  auto published = ask<std::uint64_t>(self, registry, 30s, *snapshot);
  if (!published) return fail("the registry did not accept the final model", 1);
  auto serving = names.get<actors::serving_actor>(messaging::names::serving);
  auto batcher = names.get<actors::batcher_actor>(messaging::names::batcher);
  messaging::predict_request probe;
  probe.rows = 1;
  probe.features.values.assign(test->features.data(), test->features.data() + width);
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto reply = ask<messaging::predict_reply>(self, serving, 5s, probe);
    if (reply && reply->model_version == *published) break;
    std::this_thread::sleep_for(20ms);
  }
  const double accuracy = evaluate(self, batcher, *test);
  if (accuracy < 0) return fail("serving did not answer the evaluation requests", 1);
  std::printf("model %s v%llu: test accuracy %.4f on %lld samples (through serving); trained on %llu events in %.1f s "
              "(%.0f events/s), rolling accuracy %.4f\n",
              options.model.c_str(), (unsigned long long)*published, accuracy, (long long)test->rows(),
              (unsigned long long)trained.events_trained, train_seconds, double(trained.events_trained) / train_seconds,
              trained.rolling_accuracy);

  if (!options.output.empty()) {
    std::ofstream out(options.output, std::ios::binary | std::ios::trunc);
    out.write(snapshot->model_file.data(), std::streamsize(snapshot->model_file.size()));
    if (!out) return fail(options.output + ": cannot write the model file", 1);
    std::printf("saved %s\n", options.output.c_str());
  }

  // What monitoring collected, one line per component.
  auto monitor = names.get<actors::monitor_actor>(messaging::names::monitor);
  if (auto report = ask<actors::metrics_report>(self, monitor, 5s, messaging::status_atom::value)) {
    for (const auto& [component, values] : *report) {
      std::fprintf(stderr, "  %s\n", actors::format_report_line(component, values).c_str());
    }
  }

  // Orderly shutdown: the sockets first, then the supervisor stops its children in reverse order.
  predict_endpoint->reset();
  ingest_endpoint->reset();
  self->monitor(started->supervisor);
  self->send_exit(started->supervisor, caf::exit_reason::user_shutdown);
  self->receive([](caf::down_msg&) {}, caf::after(10s) >> [] { std::fprintf(stderr, "rml run: shutdown timed out\n"); });
  return 0;
}
}  // namespace

void register_run_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<run_options>();
  CLI::App* command = app.add_subcommand(
      "run", "Run the pipeline in one process: stream Fashion-MNIST, train online, serve, evaluate");
  command->add_option("--model", options->model,
                      "Architecture: mlp, lenet, or a model spec such as \"input(4); linear(4,16); relu; linear(16,3)\"")
      ->capture_default_str();
  command->add_option("--train-csv", options->train_csv, "Train on this CSV file instead of Fashion-MNIST");
  command->add_option("--test-csv", options->test_csv, "Evaluate on this CSV file (default: the training file)");
  command->add_option("--label-column", options->label_column, "The CSV column holding the class label")
      ->capture_default_str();
  command->add_option("--pipeline", options->pipeline,
                      "Feature pipeline spec (default: scale(1/255) for Fashion-MNIST, standardize for CSV)");
  command->add_option("--scheduler-threads", options->scheduler_threads, "CAF scheduler threads (0: every core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--epochs", options->epochs, "Passes over the training set")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  command->add_option("--batch", options->batch_rows, "Rows per training step")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  command->add_option("--lr", options->learning_rate, "SGD learning rate")->capture_default_str();
  command->add_option("--momentum", options->momentum, "SGD momentum")->capture_default_str();
  command->add_option("--weight-decay", options->weight_decay, "L2 weight decay")->capture_default_str();
  command->add_option("--seed", options->seed, "Seed of weights and stream order")->capture_default_str();
  command->add_option("--threads", options->threads, "Trainer compute threads (0: every core but one)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--rate", options->rate, "Events per second the source streams (0: as fast as acked)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  command->add_option("--dataset-dir", options->dataset_dir, "Directory of the Fashion-MNIST IDX files")
      ->capture_default_str();
  command->add_option("--data-dir", options->data_dir, "Directory of durable state (log, checkpoints, registry)")
      ->capture_default_str();
  command->add_option("--bind", options->bind_host, "Address the sockets bind to")->capture_default_str();
  command->add_option("--predict-port", options->predict_port, "ZeroMQ port of the prediction socket (0: any free)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--ingest-port", options->ingest_port, "ZeroMQ port of the ingest socket (0: any free)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_flag("--resume", options->resume, "Continue the run whose state is in --data-dir");
  command->add_flag("--fresh", options->fresh, "Clear --data-dir's state and start over");
  command->add_option("--output", options->output, "Save the final model to this file");
  command->callback([options, &exit_code] { exit_code = run(*options); });
}

}  // namespace rml::app
