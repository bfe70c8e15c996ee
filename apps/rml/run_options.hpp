#pragma once
// What `rml run` is told (its flags, and the topology file's component options named as
// those flags), turned into the pipeline's options and its sockets. `rml node` builds the
// components placed on it from the same options, so a component is configured one way
// whether it runs in one process or across a cluster.

#include <CLI/CLI.hpp>

#include <caf/actor_system.hpp>

#include <memory>
#include <string>

#include "compute/status.hpp"
#include "compute/data/dataset.hpp"
#include "messaging/feature_check.hpp"
#include "messaging/http_endpoint.hpp"
#include "messaging/zmq_endpoint.hpp"
#include "topologies/default_topology.hpp"
#include "topologies/topology_file.hpp"

namespace rml::app {

struct run_options {
  std::string model = "mlp";
  int epochs = 1;
  std::uint32_t batch_rows = 64;
  float learning_rate = 0.05f;
  float momentum = 0.9f;
  float weight_decay = 0.0f;
  std::uint64_t seed = 1;
  int threads = 0;
  std::string device = "cpu";
  std::string serving_device;  // empty: as --device
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
  // Serving.
  int http_port = 8000;
  int http_threads = 1;
  std::string model_name;  // empty: the --model name, or "model" for a spec
  std::string policy = "latest";
  std::uint32_t replicas = 1, replicas_max = 0;  // 0: = replicas
  int replica_threads = 1;
  std::uint32_t serve_batch_max = 64;
  std::int64_t queue_delay_us = 0;
  bool adaptive_batching = false;
  std::int64_t latency_objective_us = 5000;
  std::uint32_t queue_max = 4096;
  std::size_t cache_entries = 4096;
  bool serve = false;
  std::int64_t drain_timeout_ms = 10'000;
  std::string trace_file;
  // Access and limits (README: Security).
  std::string control_key_file, infer_token_file, tls_certificate, tls_key;
  std::int64_t http_request_timeout_ms = 10'000;
  std::size_t client_in_flight_max = 1000;
  float feature_magnitude_max = messaging::feature_magnitude_max_default;
  // Guards against bad data in training.
  float gradient_norm_max = 10.0f;
  double gate_accuracy_drop = 0.1;
  std::uint64_t publish_steps = 200;
  // Drift detection (actors/monitoring/drift.hpp) and where its alarms go.
  double drift_adwin_delta = 0.002;
  double drift_ph_threshold = 100;
  double drift_ph_delta = 0.005;
  double drift_ph_alpha = 1.0;
  double drift_ddm_warning = 2.0;
  double drift_ddm_drift = 3.0;
  double drift_psi = 0.2;
  double drift_features_share = 0.05;
  std::uint32_t drift_window_rows = 2048;
  std::uint32_t drift_sample_every = 16;
  std::uint32_t drift_reference_rows = 1024;
  std::string alert_webhook;
  // Drift's response (actors/monitoring/retrain_loop.hpp).
  std::string on_drift = "alert";
  std::uint64_t retrain_events_max = 20'000;
  std::uint64_t retrain_shadow_comparisons = 200;
  double retrain_canary_percent = 20;
  std::uint32_t retrain_timeout_s = 300;
  // A known change in the source's stream, for trying drift detection.
  std::uint64_t stream_drift_at = 0;
  std::string stream_drift = "relabel";
  // The topology (topologies/topology_file.hpp): its name, and its supervisor's intensity.
  std::string topology_file;  // empty: the embedded default
  std::string topology_name = "default";
  std::uint32_t restart_intensity = 10;
  std::uint32_t restart_period_ms = 10'000;
};

/// Adds rml run's flags, bound to `options`, to `command`.
void add_run_flags(CLI::App* command, run_options& options);

/// Sets the flags of `command` that the topology's components give options for and the
/// command line did not: the same conversion and checks as on the command line. A flag two
/// components both set (seed, bind) must get one value.
status set_topology_options(CLI::App& command, const topologies::topology& topology);

/// The options a topology's components give, over rml run's defaults (the node's way in).
result<run_options> run_options_of(const topologies::topology& topology);

/// The training and test sets: Fashion-MNIST (raw pixels), or the CSV files given.
struct datasets {
  data::dataset train, test;
};
result<datasets> load_datasets(const run_options& options);

/// The served model's name in /v2/models/{name}.
std::string served_model_name(const run_options& options);

/// The pipeline's options from rml run's (validated; the error names the option).
result<topologies::pipeline_options> make_pipeline(const run_options& options, std::shared_ptr<const data::dataset> train,
                                                   std::int32_t classes);

/// The sockets: predictions (ZeroMQ, HTTP), events (ZeroMQ), /metrics; each sends to its
/// component by name, wherever it runs.
struct endpoints {
  std::unique_ptr<messaging::zmq_endpoint> predict, ingest;
  std::unique_ptr<messaging::http_endpoint> http;
  /// Where the control key is (given, or made in the data directory).
  std::string control_key_file;
  bool needs_infer_token = false;
  /// "predictions on ... events on ..., metrics on ..." for the console.
  std::string describe(const run_options& options) const;
  void stop();
};
/// `cluster_identity` (a cluster node's; null for rml run): predictions that find no serving
/// wait for one (it may be moving between nodes), and those sent to another node say who
/// sends them (messaging/at_most_once.hpp).
result<endpoints> start_endpoints(caf::actor_system& system, const run_options& options, const topologies::pipeline_options& pipeline,
                                  std::shared_ptr<const messaging::sender_identity> cluster_identity = nullptr);

}  // namespace rml::app
