// `rml run`: the default topology in one process (topologies/default_topology.hpp). Streams
// the Fashion-MNIST train set through ingest and the durable log into the online trainer,
// publishes models to the registry and serving while it trains, shows progress, then
// evaluates the last model on the test set through the serving path and prints a summary.
// With --serve it then keeps serving until SIGTERM or SIGINT. Either signal, at any time,
// drains: admission stops, readiness turns false, admitted requests are answered, then the
// components stop in order.
#include <caf/all.hpp>


#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <thread>

#include "apps/rml/commands.hpp"
#include "apps/rml/run_options.hpp"
#include "apps/rml/stop_signal.hpp"
#include "apps/rml/progress.hpp"
#include "apps/rml/secrets.hpp"
#include "actors/monitoring/drift.hpp"
#include "actors/monitoring/retrain_loop.hpp"
#include "messaging/alert_webhook.hpp"
#include "messaging/errors.hpp"
#include "messaging/feature_check.hpp"
#include "messaging/http_endpoint.hpp"
#include "messaging/trace.hpp"
#include "messaging/zmq_endpoint.hpp"
#include "compute/device_choice.hpp"
#include "compute/nn/sequential.hpp"
#include "topologies/default_topology.hpp"
#include "topologies/topology_file.hpp"

namespace rml::app {
namespace {
namespace fs = std::filesystem;
using namespace std::chrono_literals;
}  // namespace

status set_topology_options(CLI::App& command, const topologies::topology& topology) {
  std::map<std::string, std::pair<std::string, std::string>> set_by;  // flag → (component, value)
  for (const auto& component : topology.components) {
    for (const auto& [key, value] : component.options) {
      const std::string field = to_string(component.at) + ": components." + component.name + ".options." + key;
      if (auto earlier = set_by.find(key); earlier != set_by.end() && earlier->second.second != value) {
        return error(errc::invalid_argument, field + ": '" + value + "' contradicts '" + earlier->second.second + "' given by " + earlier->second.first);
      }
      set_by[key] = {component.name, value};
      CLI::Option* flag = command.get_option_no_throw("--" + key);
      if (!flag) return error(errc::invalid_argument, field + ": rml run has no --" + key);
      if (flag->count() > 0) continue;
      try {
        flag->clear();
        flag->add_result(value);
        flag->run_callback();
      } catch (const CLI::Error& failure) {
        return error(errc::invalid_argument, field + ": " + failure.what());
      }
    }
  }
  return {};
}

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

namespace {
/// Takes what a topology file says into the options: its components' options (named as
/// this command's flags) and serving's replicas, unless the command line gives them, and its
/// supervisor's intensity. `rml run` runs the whole pipeline in one process, so the topology
/// must have one component of each kind, the pipeline's streams, at most one node and one
/// one_for_one supervisor; the error says which of these it breaks.
status apply_topology(CLI::App& command, run_options& options) {
  const bool embedded = options.topology_file.empty();
  auto declared = embedded ? topologies::parse_topology(topologies::default_topology_text(), "default.yaml (embedded)")
                           : topologies::load_topology(options.topology_file);
  if (!declared) return declared.error();
  const auto& topology = declared.value();
  const std::string file = embedded ? "the default topology" : options.topology_file;
  auto refuse = [&](const std::string& what) { return error(errc::invalid_argument, file + ": " + what); };
  if (topology.nodes.size() > 1) {
    return refuse("declares " + std::to_string(topology.nodes.size()) +
                  " nodes; rml run runs one process (a topology across nodes is deployed with rml deploy to rml node processes)");
  }
  std::map<std::string, const topologies::component_spec*> by_kind;
  for (const auto& kind : topologies::component_kinds()) {
    std::vector<const topologies::component_spec*> found;
    for (const auto& component : topology.components) {
      if (component.kind == kind) found.push_back(&component);
    }
    if (found.size() != 1) {
      return refuse("rml run runs the whole pipeline, one component of each kind: " + std::to_string(found.size()) + " of kind " + kind);
    }
    by_kind[kind] = found.front();
  }
  const std::pair<const char*, const char*> wired[] = {
      {"source", "ingest"}, {"ingest", "feature"}, {"feature", "trainer"}, {"trainer", "registry"}, {"registry", "serving"}};
  for (const auto& [from, to] : wired) {
    const auto& source = by_kind[from]->name;
    const auto& target = by_kind[to]->name;
    const bool declared_stream = std::any_of(topology.streams.begin(), topology.streams.end(),
                                             [&](const topologies::stream_spec& stream) { return stream.from == source && stream.to == target; });
    if (!declared_stream) return refuse("rml run wires " + source + " -> " + target + " (" + from + " to " + to + "); the topology has no such stream");
  }
  if (topology.supervisors.size() > 1 || (topology.supervisors.size() == 1 && topology.supervisors.front().strategy != "one_for_one")) {
    return refuse("rml run supervises the pipeline with one one_for_one supervisor; nested supervisors and other strategies are not run yet");
  }
  if (!topology.supervisors.empty()) {
    options.restart_intensity = topology.supervisors.front().intensity;
    options.restart_period_ms = topology.supervisors.front().period_ms;
  }
  if (auto set = set_topology_options(command, topology); !set) return set;
  const auto& serving = *by_kind["serving"];
  if (command.get_option("--replicas")->count() == 0) options.replicas = serving.replicas_min;
  if (command.get_option("--replicas-max")->count() == 0) options.replicas_max = serving.replicas_max;
  options.topology_name = topology.name;
  return {};
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

/// Accuracy on `test` through the serving path (router, batching lane, replicas).
double evaluate(caf::scoped_actor& self, const actors::router_actor& serving, const data::dataset& test) {
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
    request.features.values().assign(first, first + rows * width);
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
  // A worker without work spins briefly (CAF's "aggressive" polls), then sleeps on its
  // condition variable until work is enqueued for it. CAF's default puts 500 sleeps of 50 µs
  // between the two ("moderate" polling): on 2 cores, an idle rml woke 12,000 times a second
  // and used 29 % of a core, and at 1 k requests/s each request cost 17 wake-ups. One
  // moderate poll: 350 wake-ups a second idle, 5.5 per request at 1 k/s, and the same or
  // better latency under load (bench/RESULTS.md, "Serving rebuilt").
  config.set("work-stealing.moderate-poll-attempts", 1);
  messaging::register_messaging(config);
  caf::actor_system system{config};

  auto made = make_pipeline(options, train, std::max(train->classes, test->classes));
  if (!made) return fail(made.error().message(), made.error().code() == errc::invalid_argument ? 2 : 1);
  auto& pipeline = made.value();
  const std::string model_name = served_model_name(options);
  const device_kind device = pipeline.trainer.device;
  const device_kind serving_device = pipeline.serving.lane.replica.device;
  auto started = topologies::start_pipeline(system, pipeline);
  if (!started) return fail(started.error().message(), 1);
  std::fprintf(stderr, "rml run: topology %s, model %s, pipeline %s, seed %llu, %d CAF threads, trainer on %s, serving on %s, state in %s\n",
               options.topology_name.c_str(), options.model.c_str(), pipeline.feature.pipeline.c_str(), (unsigned long long)options.seed,
               options.scheduler_threads > 0 ? options.scheduler_threads : cores,
               device == device_kind::cuda ? "cuda" : (std::to_string(pipeline.trainer.compute_threads) + " compute threads").c_str(),
               to_string(serving_device), options.data_dir.c_str());

  auto sockets = start_endpoints(system, options, pipeline);
  if (!sockets) return fail(sockets.error().message(), sockets.error().code() == errc::invalid_argument ? 2 : 1);
  std::fprintf(stderr, "rml run: %s\n", sockets->describe(options).c_str());
  stop_on_signals();
  auto& names = system.registry();
  caf::scoped_actor self{system};
  // Graceful stop: drain serving (no new admissions, admitted requests answered), close the
  // sockets, then the supervisor stops its children in reverse order.
  auto shut_down = [&](int code) {
    auto router = names.get<actors::router_actor>(messaging::names::serving);
    if (auto unanswered = ask<std::uint64_t>(self, router, std::chrono::milliseconds(options.drain_timeout_ms + 1000),
                                             messaging::drain_atom::value, std::int64_t(options.drain_timeout_ms))) {
      std::fprintf(stderr, "rml run: drained serving, %llu requests unanswered\n", (unsigned long long)*unanswered);
    }
    sockets->stop();
    self->monitor(started->supervisor);
    self->send_exit(started->supervisor, caf::exit_reason::user_shutdown);
    self->receive([](caf::down_msg&) {}, caf::after(10s) >> [] { std::fprintf(stderr, "rml run: shutdown timed out\n"); });
    pipeline.telemetry.trace->close_sink();
    return code;
  };

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
    if (stop_requested()) {
      progress.finish("stopped by a signal");
      std::fprintf(stderr, "rml run: stopping on a signal; the state in %s resumes with --resume\n", options.data_dir.c_str());
      return shut_down(0);
    }
  }
  const double train_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char summary[160];
  std::snprintf(summary, sizeof(summary), "rolling accuracy %.3f", trained.rolling_accuracy);
  progress.finish(summary);

  // Publish the final model (the registry numbers it above every stored version, a resumed
  // run's included) and evaluate it through the serving path.
  auto trainer = names.get<actors::trainer_actor>(messaging::names::trainer);
  std::optional<std::uint64_t> published;
  std::string refusal = "no answer";
  if (trainer) {
    self->request(trainer, 30s, messaging::publish_atom::value)
        .receive([&](std::uint64_t version) { published = version; }, [&](caf::error& failure) { refusal = messaging::describe(failure); });
  }
  if (!published) return shut_down(fail("the registry did not accept the final model: " + refusal, 1));
  auto snapshot = ask<messaging::model_snapshot>(self, names.get<actors::registry_actor>(messaging::names::registry), 30s,
                                                 messaging::version_atom::value, *published);
  if (!snapshot) return shut_down(fail("the registry did not hand back the final model", 1));
  auto serving = names.get<actors::router_actor>(messaging::names::serving);
  messaging::predict_request probe;
  probe.rows = 1;
  probe.features.values().assign(test->features.data(), test->features.data() + width);
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto reply = ask<messaging::predict_reply>(self, serving, 5s, probe);
    if (reply && reply->model_version == *published) break;
    std::this_thread::sleep_for(20ms);
  }
  const double accuracy = evaluate(self, serving, *test);
  if (accuracy < 0) return fail("serving did not answer the evaluation requests", 1);
  std::printf("model %s v%llu: test accuracy %.4f on %lld samples (through serving); trained on %llu events in %.1f s "
              "(%.0f events/s), rolling accuracy %.4f\n",
              options.model.c_str(), (unsigned long long)*published, accuracy, (long long)test->rows(),
              (unsigned long long)trained.events_trained, train_seconds, double(trained.events_trained) / train_seconds,
              trained.rolling_accuracy);
  std::fflush(stdout);  // the result is seen now, also when stdout is a file and rml goes on serving

  if (!options.output.empty()) {
    std::ofstream out(options.output, std::ios::binary | std::ios::trunc);
    out.write(snapshot->model_file.data(), std::streamsize(snapshot->model_file.size()));
    if (!out) return fail(options.output + ": cannot write the model file", 1);
    std::printf("saved %s\n", options.output.c_str());
  }

  // What the guards against bad data did, when they did anything.
  if (auto guarded = ask<messaging::trainer_status>(self, trainer, 5s, messaging::status_atom::value);
      guarded && (guarded->steps_skipped || guarded->steps_clipped || guarded->restores || guarded->publishes_refused)) {
    std::fprintf(stderr, "rml run: trainer guards: %llu steps skipped (loss or gradients not finite), %llu clipped, %llu weight restores, "
                         "%llu snapshots refused by the registry's gate\n",
                 (unsigned long long)guarded->steps_skipped, (unsigned long long)guarded->steps_clipped,
                 (unsigned long long)guarded->restores, (unsigned long long)guarded->publishes_refused);
  }

  // What monitoring collected, one line per component.
  auto monitor = names.get<actors::monitor_actor>(messaging::names::monitor);
  if (auto report = ask<actors::metrics_report>(self, monitor, 5s, messaging::status_atom::value)) {
    for (const auto& [component, values] : *report) {
      std::fprintf(stderr, "  %s\n", actors::format_report_line(component, values).c_str());
    }
  }

  if (options.serve) {
    std::fprintf(stderr, "rml run: serving model %s until SIGTERM or SIGINT\n", model_name.c_str());
    while (!stop_requested()) std::this_thread::sleep_for(50ms);
  }
  return shut_down(0);
}
}  // namespace

std::string served_model_name(const run_options& options) {
  if (!options.model_name.empty()) return options.model_name;
  return options.model.find('(') == std::string::npos ? options.model : "model";
}

result<topologies::pipeline_options> make_pipeline(const run_options& options, std::shared_ptr<const data::dataset> train,
                                                   std::int32_t classes) {
  const std::int64_t width = train->feature_count();
  const int cores = available_cores();
  topologies::pipeline_options pipeline;
  pipeline.data_dir = options.data_dir;
  pipeline.train = train;
  pipeline.feature.feature_count = std::uint32_t(width);
  pipeline.feature.pipeline = !options.pipeline.empty()        ? options.pipeline
                              : options.train_csv.empty() ? "scale(0.00392156862745098)"
                                                          : "standardize";
  pipeline.ingest.feature_count = std::uint32_t(width);
  pipeline.ingest.feature_magnitude_max = options.feature_magnitude_max;
  pipeline.trainer.gradient_norm_max = options.gradient_norm_max;
  pipeline.trainer.publish_steps = options.publish_steps;
  pipeline.registry_accuracy_drop_max = options.gate_accuracy_drop;
  pipeline.ingest.classes = classes;
  pipeline.source.epochs = std::uint32_t(options.epochs);
  pipeline.source.seed = options.seed;
  pipeline.source.events_per_second = options.rate;
  pipeline.source.drift_at_event = options.stream_drift_at;
  pipeline.source.drift_kind = options.stream_drift;
  pipeline.feature.rows_per_batch = options.batch_rows;
  pipeline.trainer.architecture = options.model;
  pipeline.trainer.seed = options.seed;
  pipeline.trainer.sgd = {options.learning_rate, options.momentum, options.weight_decay};
  // The trainer leaves a core to ingest, the log and feature: on 2 cores one compute thread
  // beside 2 CAF threads measured 1.6× the events/s of two (bench/RESULTS.md, threads).
  pipeline.trainer.compute_threads = options.threads > 0 ? options.threads : std::max(1, cores - 1);
  pipeline.serving.model = served_model_name(options);
  pipeline.serving.policy = options.policy;
  pipeline.serving.seed = options.seed;
  pipeline.serving.lane.settings.batch_rows_max = options.serve_batch_max;
  pipeline.serving.lane.settings.queue_delay_max_us = options.queue_delay_us;
  pipeline.serving.lane.settings.adaptive = options.adaptive_batching;
  pipeline.serving.lane.settings.latency_objective_us = options.latency_objective_us;
  pipeline.serving.lane.settings.queue_requests_max = options.queue_max;
  pipeline.serving.lane.pool.replicas_min = options.replicas;
  pipeline.serving.lane.pool.replicas_max = options.replicas_max > 0 ? options.replicas_max : options.replicas;
  pipeline.serving.lane.cache_entries_max = options.cache_entries;
  pipeline.serving.lane.replica.compute_threads = options.replica_threads;
  // CLI11 checked both names already (IsMember); parse_device is the one place they map.
  const device_kind device = *parse_device(options.device);
  const device_kind serving_device = options.serving_device.empty() ? device : *parse_device(options.serving_device);
  pipeline.trainer.device = device;
  pipeline.serving.lane.replica.device = serving_device;
  if (!options.trace_file.empty()) {
    std::string failure;
    if (!pipeline.telemetry.trace->open_sink(options.trace_file, failure)) return error(errc::io_error, failure);
  }
  if (options.replicas_max > 0 && options.replicas_max < options.replicas) {
    return error(errc::invalid_argument, "--replicas-max (" + std::to_string(options.replicas_max) + ") is below --replicas (" + std::to_string(options.replicas) + ")");
  }
  auto& drift = pipeline.monitor.drift;
  drift.concept_drift.adwin.delta = options.drift_adwin_delta;
  drift.concept_drift.page_hinkley.threshold = options.drift_ph_threshold;
  drift.concept_drift.page_hinkley.delta = options.drift_ph_delta;
  drift.concept_drift.page_hinkley.alpha = options.drift_ph_alpha;
  drift.concept_drift.ddm.warning_threshold = options.drift_ddm_warning;
  drift.concept_drift.ddm.drift_threshold = options.drift_ddm_drift;
  drift.input_drift.psi_drifted = options.drift_psi;
  drift.input_drift.drifted_share_alarm = options.drift_features_share;
  drift.input_drift.window_rows = options.drift_window_rows;
  drift.input_drift.rows_min = std::min<std::uint32_t>(drift.input_drift.rows_min, options.drift_window_rows / 2);
  if (auto valid = actors::drift::check(drift.concept_drift); !valid) return error(errc::invalid_argument, "--drift-*: " + valid.error().message());
  if (auto valid = actors::drift::check(drift.input_drift); !valid) return error(errc::invalid_argument, "--drift-*: " + valid.error().message());
  pipeline.serving.drift_sample_every = options.drift_sample_every;
  pipeline.trainer.reference_rows_max = options.drift_reference_rows;
  if (options.on_drift == "retrain") {
    actors::retrain_loop_options retrain;
    retrain.retrain_events_max = options.retrain_events_max;
    retrain.retrain_events_min = std::min<std::uint64_t>(retrain.retrain_events_min, options.retrain_events_max);
    retrain.shadow_comparisons_min = options.retrain_shadow_comparisons;
    retrain.canary_percent = options.retrain_canary_percent;
    retrain.timeout = std::chrono::seconds(options.retrain_timeout_s);
    if (auto valid = actors::validate(retrain); !valid) return error(errc::invalid_argument, "--retrain-*: " + valid.error().message());
    pipeline.monitor.retrain = retrain;
  }
  if (!options.alert_webhook.empty()) {
    if (auto url = messaging::parse_webhook_url(options.alert_webhook); !url) return error(errc::invalid_argument, "--alert-webhook: " + url.error().message());
    auto webhook = std::make_shared<messaging::alert_webhook>(messaging::alert_webhook::options{options.alert_webhook}, pipeline.telemetry.metrics);
    pipeline.monitor.on_alarm = [webhook](const actors::drift_alarm& alarm) { webhook->post(actors::alarm_json(alarm)); };
  }
  pipeline.restart_intensity = int(options.restart_intensity);
  pipeline.restart_period = std::chrono::milliseconds(options.restart_period_ms);
  if (auto valid = topologies::validate(pipeline); !valid) return error(errc::invalid_argument, valid.error().message());
  return pipeline;
}
result<endpoints> start_endpoints(caf::actor_system& system, const run_options& options, const topologies::pipeline_options& pipeline,
                                  std::shared_ptr<const messaging::sender_identity> cluster_identity) {
  const bool cluster_node = cluster_identity != nullptr;
  const std::uint32_t width = pipeline.feature.feature_count;
  endpoints made;
  messaging::zmq_endpoint_options predict_socket;
  predict_socket.role = messaging::endpoint_role::predict;
  predict_socket.telemetry = pipeline.telemetry;
  predict_socket.bind = "tcp://" + options.bind_host + ":" + std::to_string(options.predict_port);
  predict_socket.target = messaging::names::serving;
  predict_socket.wait_for_target = cluster_node;
  predict_socket.identity = cluster_identity;
  predict_socket.features = width;
  predict_socket.client_in_flight_max = options.client_in_flight_max;
  predict_socket.limits.feature_magnitude_max = options.feature_magnitude_max;
  auto predict_endpoint = messaging::zmq_endpoint::start(system, predict_socket);
  if (!predict_endpoint) return predict_endpoint.error();
  made.predict = std::move(predict_endpoint.value());
  messaging::zmq_endpoint_options ingest_socket;
  ingest_socket.role = messaging::endpoint_role::ingest;
  ingest_socket.telemetry = pipeline.telemetry;
  ingest_socket.bind = "tcp://" + options.bind_host + ":" + std::to_string(options.ingest_port);
  ingest_socket.target = messaging::names::ingest;
  ingest_socket.features = width;
  auto ingest_endpoint = messaging::zmq_endpoint::start(system, ingest_socket);
  if (!ingest_endpoint) return ingest_endpoint.error();
  made.ingest = std::move(ingest_endpoint.value());
  messaging::http_endpoint_options http_options;
  http_options.host = options.bind_host;
  http_options.wait_for_target = cluster_node;
  http_options.identity = cluster_identity;
  http_options.telemetry = pipeline.telemetry;
  http_options.port = options.http_port;
  http_options.model = served_model_name(options);
  http_options.features = width;
  http_options.threads = options.http_threads;
  http_options.feature_magnitude_max = options.feature_magnitude_max;
  http_options.request_timeout = std::chrono::milliseconds(options.http_request_timeout_ms);
  http_options.tls_certificate_file = options.tls_certificate;
  http_options.tls_key_file = options.tls_key;
  if (!options.infer_token_file.empty()) {
    auto token = read_secret_file(options.infer_token_file, "--infer-token-file");
    if (!token) return error(errc::invalid_argument, token.error().message());
    http_options.infer_token = *token;
    made.needs_infer_token = true;
  }
  // The control key: given, or made and written where only this user can read it.
  made.control_key_file = options.control_key_file.empty() ? (fs::path(options.data_dir) / "control-key").string() : options.control_key_file;
  auto control_key = options.control_key_file.empty() ? make_secret_file(made.control_key_file)
                                                      : read_secret_file(options.control_key_file, "--control-key-file");
  if (!control_key) return error(errc::invalid_argument, control_key.error().message());
  http_options.control_key = *control_key;
  auto http_endpoint = messaging::http_endpoint::start(system, http_options);
  if (!http_endpoint) return error(http_endpoint.error().code(), http_endpoint.error().message() + " (--http-port picks another port)");
  made.http = std::move(http_endpoint.value());
  return made;
}

std::string endpoints::describe(const run_options& options) const {
  const char* scheme = options.tls_certificate.empty() ? "http" : "https";
  const std::string http = std::string(scheme) + "://" + options.bind_host + ":" + std::to_string(this->http->port());
  return "predictions on " + predict->address() + " (ZeroMQ, docs/protocol.md) and " + http + "/v2/models/" + served_model_name(options) +
         " (KServe V2), events on " + ingest->address() + ", metrics on " + http + "/metrics; control endpoints (policy, batching, " +
         "feedback) need 'Authorization: Bearer <key>' with the key in " + control_key_file +
         (needs_infer_token ? "; inference needs the token of --infer-token-file" : "");
}

void endpoints::stop() {
  if (http) http->stop();
  predict.reset();
  ingest.reset();
}

result<run_options> run_options_of(const topologies::topology& topology) {
  CLI::App app;
  run_options options;
  add_run_flags(&app, options);
  app.parse(std::vector<std::string>{});
  if (auto set = set_topology_options(app, topology); !set) return set.error();
  return options;
}

status check_topology_options(const topologies::topology& topology) {
  auto options = run_options_of(topology);
  if (!options) return options.error();
  return {};
}

void add_run_flags(CLI::App* command, run_options& options) {
  command->add_option("--model", options.model,
                      "Architecture: mlp, lenet, or a model spec such as \"input(4); linear(4,16); relu; linear(16,3)\"")
      ->capture_default_str();
  command->add_option("--train-csv", options.train_csv, "Train on this CSV file instead of Fashion-MNIST");
  command->add_option("--test-csv", options.test_csv, "Evaluate on this CSV file (default: the training file)");
  command->add_option("--label-column", options.label_column, "The CSV column holding the class label")
      ->capture_default_str();
  command->add_option("--pipeline", options.pipeline,
                      "Feature pipeline spec (default: scale(1/255) for Fashion-MNIST, standardize for CSV)");
  command->add_option("--scheduler-threads", options.scheduler_threads, "CAF scheduler threads (0: every core)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--epochs", options.epochs, "Passes over the training set")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  command->add_option("--batch", options.batch_rows, "Rows per training step")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  command->add_option("--lr", options.learning_rate, "SGD learning rate")->capture_default_str();
  command->add_option("--momentum", options.momentum, "SGD momentum")->capture_default_str();
  command->add_option("--weight-decay", options.weight_decay, "L2 weight decay")->capture_default_str();
  command->add_option("--seed", options.seed, "Seed of weights and stream order")->capture_default_str();
  command->add_option("--threads", options.threads, "Trainer compute threads (0: every core but one)")
      ->check(CLI::Range(0, 1024))
      ->capture_default_str();
  command->add_option("--device", options.device,
                      "Where the trainer and the serving replicas compute: cpu, or cuda (the GPU; without one, "
                      "the CPU with a notice)")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  command->add_option("--serving-device", options.serving_device,
                      "Where the serving replicas compute, when not where --device says: cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  command->add_option("--rate", options.rate, "Events per second the source streams (0: as fast as acked)")
      ->check(CLI::Range(0.0, 1e9))
      ->capture_default_str();
  command->add_option("--dataset-dir", options.dataset_dir, "Directory of the Fashion-MNIST IDX files")
      ->capture_default_str();
  command->add_option("--data-dir", options.data_dir, "Directory of durable state (log, checkpoints, registry)")
      ->capture_default_str();
  command->add_option("--bind", options.bind_host, "Address the sockets bind to")->capture_default_str();
  command->add_option("--predict-port", options.predict_port, "ZeroMQ port of the prediction socket (0: any free)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--ingest-port", options.ingest_port, "ZeroMQ port of the ingest socket (0: any free)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--http-port", options.http_port, "HTTP port of KServe V2, /metrics and /trace (0: any free)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  command->add_option("--http-threads", options.http_threads, "Threads of the HTTP endpoint's event loop")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  command->add_option("--model-name", options.model_name, "The served model's name in /v2/models/{name} (default: --model)");
  command->add_option("--policy", options.policy, "Version policy: latest, pinned:V, canary:P, shadow, bandit:V1,V2,...")
      ->capture_default_str();
  command->add_option("--replicas", options.replicas, "Serving replicas per version (the pool's minimum)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  command->add_option("--replicas-max", options.replicas_max, "Autoscaling's maximum replicas (default: --replicas, no scaling)")
      ->check(CLI::Range(0, 256));
  command->add_option("--replica-threads", options.replica_threads,
                      "Compute threads of each serving replica (oneDNN's; a batch is split across them)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  command->add_option("--serve-batch-max", options.serve_batch_max, "Rows in one serving batch at most")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  command->add_option("--queue-delay-us", options.queue_delay_us, "How long a request may wait for a batch to fill while a replica is free (0: no wait)")
      ->check(CLI::Range(0, 10'000'000))
      ->capture_default_str();
  command->add_flag("--adaptive-batching", options.adaptive_batching, "AIMD batch size against --latency-objective-us");
  command->add_option("--latency-objective-us", options.latency_objective_us, "Batch latency the adaptive mode keeps under")
      ->check(CLI::Range(1, 60'000'000))
      ->capture_default_str();
  command->add_option("--queue-max", options.queue_max, "Requests queued per version at most; beyond, `overloaded`")
      ->check(CLI::Range(1, 10'000'000))
      ->capture_default_str();
  command->add_option("--cache-entries", options.cache_entries, "Prediction cache entries per served version (0: off)")->capture_default_str();
  command->add_flag("--serve", options.serve, "After training and evaluation, keep serving until SIGTERM or SIGINT");
  command->add_option("--drain-timeout-ms", options.drain_timeout_ms, "How long a drain waits for admitted requests")
      ->check(CLI::Range(0, 600'000))
      ->capture_default_str();
  command->add_option("--control-key-file", options.control_key_file,
                      "File holding the key of the HTTP control endpoints (default: a new random key written to DATA-DIR/control-key)");
  command->add_option("--infer-token-file", options.infer_token_file, "File holding a token HTTP inference then needs (Authorization: Bearer)");
  command->add_option("--tls-cert", options.tls_certificate, "PEM certificate (chain): the HTTP endpoint speaks HTTPS only (with --tls-key)");
  command->add_option("--tls-key", options.tls_key, "PEM private key of --tls-cert");
  command->add_option("--http-request-timeout-ms", options.http_request_timeout_ms,
                      "How long an HTTP connection may take to deliver a whole request before it is closed")
      ->check(CLI::Range(100, 3'600'000))
      ->capture_default_str();
  command->add_option("--client-in-flight-max", options.client_in_flight_max,
                      "Prediction requests one ZeroMQ client may have unanswered; beyond, `overloaded`")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  command->add_option("--feature-magnitude-max", options.feature_magnitude_max,
                      "Features beyond ±this are refused at ingest and prediction, naming event or row and feature (0: any finite value)")
      ->check(CLI::Range(0.0f, 3e38f))
      ->capture_default_str();
  command->add_option("--publish-steps", options.publish_steps, "Training steps between two models the trainer publishes (0: only the final one)")
      ->capture_default_str();
  command->add_option("--clip-gradient-norm", options.gradient_norm_max,
                      "Training gradients whose global L2 norm exceeds this are scaled down to it (0: no clipping)")
      ->check(CLI::Range(0.0f, 1e30f))
      ->capture_default_str();
  command->add_option("--gate-accuracy-drop", options.gate_accuracy_drop,
                      "The registry refuses a snapshot whose rolling accuracy is more than this below the current version's (0: off)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command->add_option("--drift-adwin-delta", options.drift_adwin_delta, "ADWIN's confidence on the labelled streams' error rate (smaller: fewer false alarms, later)")
      ->check(CLI::Range(1e-12, 0.5))
      ->capture_default_str();
  command->add_option("--drift-ph-threshold", options.drift_ph_threshold, "Page-Hinkley's λ: the cumulative rise of the error rate that alarms")
      ->check(CLI::Range(1e-6, 1e9))
      ->capture_default_str();
  command->add_option("--drift-ph-delta", options.drift_ph_delta, "Page-Hinkley's tolerated rise per outcome before it accumulates")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  command->add_option("--drift-ph-alpha", options.drift_ph_alpha, "Page-Hinkley's fading of its cumulative sum (1: none; below 1 alarms as a learning model's error falls)")
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  command->add_option("--drift-ddm-warning", options.drift_ddm_warning, "DDM's warning level, in standard deviations")
      ->check(CLI::Range(0.01, 100.0))
      ->capture_default_str();
  command->add_option("--drift-ddm-drift", options.drift_ddm_drift, "DDM's drift level, in standard deviations (above the warning level)")
      ->check(CLI::Range(0.01, 100.0))
      ->capture_default_str();
  command->add_option("--drift-psi", options.drift_psi, "Population stability index above which a feature of the request inputs counts as drifted")
      ->check(CLI::Range(1e-6, 100.0))
      ->capture_default_str();
  command->add_option("--drift-features-share", options.drift_features_share, "Share of features drifted that raises the input-drift alarm")
      ->check(CLI::Range(1e-6, 1.0))
      ->capture_default_str();
  command->add_option("--drift-window-rows", options.drift_window_rows, "Sampled request rows the input-drift statistics cover")
      ->check(CLI::Range(64, 1'000'000))
      ->capture_default_str();
  command->add_option("--drift-reference-rows", options.drift_reference_rows,
                      "Training rows the trainer keeps (a seeded uniform sample) for the input-drift reference snapshots carry (0: none)")
      ->check(CLI::Range(0, 1'000'000))
      ->capture_default_str();
  command->add_option("--drift-sample-every", options.drift_sample_every, "One prediction request in this many has its first row sampled for input drift (0: none)")
      ->check(CLI::Range(0, 1'000'000))
      ->capture_default_str();
  command->add_option("--on-drift", options.on_drift,
                      "What a concept-drift alarm does: alert (trace, metrics, webhook), or retrain (also a fresh model on the log since the "
                      "change, mirrored in shadow, then a canary that promotes or rolls it back; from the latest policy only)")
      ->check(CLI::IsMember({"alert", "retrain"}))
      ->capture_default_str();
  command->add_option("--retrain-events-max", options.retrain_events_max, "Events a drift retrain replays at most")
      ->check(CLI::Range(std::uint64_t(500), std::uint64_t(100'000'000)))
      ->capture_default_str();
  command->add_option("--retrain-shadow-comparisons", options.retrain_shadow_comparisons,
                      "Shadow comparisons of a retrained version before its canary starts")
      ->check(CLI::Range(std::uint64_t(1), std::uint64_t(10'000'000)))
      ->capture_default_str();
  command->add_option("--retrain-canary-percent", options.retrain_canary_percent, "Share of requests (%) a retrained version answers as a canary")
      ->check(CLI::Range(0.1, 99.9))
      ->capture_default_str();
  command->add_option("--retrain-timeout-s", options.retrain_timeout_s, "A drift retrain with no canary decision by then is abandoned")
      ->check(CLI::Range(1, 86'400))
      ->capture_default_str();
  command->add_option("--stream-drift-at", options.stream_drift_at,
                      "The source's stream drifts from this event on (0: never), the way --stream-drift says: to try drift detection")
      ->capture_default_str();
  command->add_option("--stream-drift", options.stream_drift,
                      "How the stream drifts at --stream-drift-at: relabel (each label moves to the next class: concept drift) or invert "
                      "(each feature v becomes the largest value minus v: input drift)")
      ->check(CLI::IsMember({"relabel", "invert"}))
      ->capture_default_str();
  command->add_option("--alert-webhook", options.alert_webhook, "POST every drift alarm as JSON to this http:// or https:// URL");
  command->add_option("--trace", options.trace_file, "Append trace events (batches, scaling, canary decisions) to this file as JSON lines");
  command->add_flag("--resume", options.resume, "Continue the run whose state is in --data-dir");
  command->add_flag("--fresh", options.fresh, "Clear --data-dir's state and start over");
  command->add_option("--output", options.output, "Save the final model to this file");
  command->add_option("--topology", options.topology_file,
                      "Topology file (YAML, docs/topologies.md) whose options, serving replicas and supervisor this run takes; "
                      "flags given here win (default: topologies/default.yaml, embedded)");
}

void register_run_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<run_options>();
  CLI::App* command = app.add_subcommand(
      "run", "Run the pipeline in one process: stream Fashion-MNIST, train online, serve, evaluate");
  add_run_flags(command, *options);
  command->callback([options, command, &exit_code] {
    if (auto applied = apply_topology(*command, *options); !applied) {
      std::fprintf(stderr, "rml run: %s\n", applied.error().message().c_str());
      exit_code = 2;
      return;
    }
    exit_code = run(*options);
  });
}

}  // namespace rml::app

