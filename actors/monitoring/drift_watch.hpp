#pragma once
// What the monitoring component does with the labelled stream and sampled requests: runs the
// drift detectors (drift.hpp) over them, keeps their state as Prometheus series and writes
// each alarm to the trace. Owned by the monitor actor; no actor of its own, so that tests
// and the simulator drive it directly.
//
// Streams of error bits are told apart by name: "feedback" (serving's main lane, labelled by
// clients) and "training" (the trainer's predict-then-train). Input drift follows the main
// lane's version: a new version brings its own training reference, and the window starts over.

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/monitoring/drift.hpp"
#include "compute/data/feature_pipeline.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

struct drift_watch_options {
  drift::concept_drift_options concept_drift;
  drift::input_drift_options input_drift;
  /// Input statistics are computed every this many sampled rows (a pass costs about 0.1 ms
  /// for 784 features).
  std::uint32_t input_evaluate_rows = 128;
};

/// One alarm: which stream or "inputs", which detector, and what it saw.
struct drift_alarm {
  std::string stream;    // "feedback", "training", "inputs"
  std::string detector;  // "adwin", "page_hinkley", "ddm", "psi"
  std::uint64_t model_version = 0;
  std::int64_t timestamp_us = 0;
  std::string detail;
};

/// The alarm as the JSON an alert webhook receives: {"alert":"drift","stream":…,"detector":…,
/// "model_version":…,"timestamp_us":…,"detail":…}.
std::string alarm_json(const drift_alarm& alarm);

class drift_watch {
 public:
  drift_watch(drift_watch_options options, messaging::telemetry telemetry);
  ~drift_watch();

  /// Feeds a batch of error bits; the alarms it raised (each also traced and counted).
  std::vector<drift_alarm> observe(const messaging::outcomes_observed& outcomes, std::int64_t now_us);
  /// Feeds sampled request rows; an alarm when the inputs began to differ from the training
  /// reference (not again until they stop differing). Rows of a version whose reference this
  /// watch has not been given are counted as unreferenced and skipped.
  std::optional<drift_alarm> sample(const messaging::inputs_sampled& inputs, std::int64_t now_us);

  /// The state for the console report and `rml run`'s summary: "<stream>_error_rate",
  /// "<stream>_alarms", "inputs_psi_mean", "inputs_drifted_features", "inputs_alarms", ….
  std::map<std::string, double> report() const;
  /// The last input statistics computed (empty before the first pass).
  const drift::input_drift_statistics& input_statistics() const { return input_statistics_; }
  std::uint64_t input_version() const { return input_version_; }
  /// ADWIN's window on a stream (the stretch since its last change); 0 for a stream not seen.
  std::uint64_t window_of(const std::string& stream) const;

 private:
  struct stream_state;
  drift_watch_options options_;
  messaging::telemetry telemetry_;
  std::map<std::string, std::unique_ptr<stream_state>> streams_;
  // Input drift of the main lane's current version.
  std::uint64_t input_version_ = 0;
  std::optional<drift::input_drift> input_;
  std::optional<data::feature_pipeline> pipeline_;
  std::uint32_t rows_since_evaluation_ = 0;
  drift::input_drift_statistics input_statistics_;
  bool input_alarmed_ = false;
  std::uint64_t input_alarms_ = 0, unreferenced_rows_ = 0;
  std::vector<float> transformed_;

  stream_state& stream(const std::string& name);
  void evaluate_inputs(std::int64_t now_us, std::optional<drift_alarm>& raised);
};

}  // namespace rml::actors
