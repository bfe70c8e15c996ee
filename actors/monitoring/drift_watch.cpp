#include "actors/monitoring/drift_watch.hpp"

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <cstdio>

#include "actors/monitoring/drift_reference.hpp"
#include "compute/tensor.hpp"

namespace rml::actors {

struct drift_watch::stream_state {
  drift::concept_drift detectors;
  std::uint64_t model_version = 0;
  std::uint64_t alarms = 0;
  messaging::metrics::counter* outcomes = nullptr;
  messaging::metrics::gauge* error_rate = nullptr;
  messaging::metrics::gauge* window = nullptr;
  messaging::metrics::gauge* page_hinkley = nullptr;
  messaging::metrics::gauge* ddm_warning = nullptr;
  std::map<std::string, messaging::metrics::counter*> alarm_counters;
  explicit stream_state(const drift::concept_drift_options& options) : detectors(options) {}
};

namespace {
constexpr const char* alarms_name = "rml_drift_alarms_total";
constexpr const char* alarms_help = "Drift alarms raised, by stream (feedback, training, inputs) and detector";
constexpr const char* component = "monitor/drift";
}  // namespace

std::string alarm_json(const drift_alarm& alarm) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  writer.StartObject();
  writer.Key("alert");
  writer.String("drift");
  writer.Key("stream");
  writer.String(alarm.stream.c_str());
  writer.Key("detector");
  writer.String(alarm.detector.c_str());
  writer.Key("model_version");
  writer.Uint64(alarm.model_version);
  writer.Key("timestamp_us");
  writer.Int64(alarm.timestamp_us);
  writer.Key("detail");
  writer.String(alarm.detail.c_str());
  writer.EndObject();
  return buffer.GetString();
}

drift_watch::drift_watch(drift_watch_options options, messaging::telemetry telemetry)
    : options_(options), telemetry_(std::move(telemetry)) {
  auto& metrics = *telemetry_.metrics;
  // Present from the start, so that alerting rules see 0 rather than nothing.
  metrics.get_counter(alarms_name, alarms_help, {{"stream", "inputs"}, {"detector", "psi"}});
  metrics.get_gauge("rml_input_drift_alarm", "1 while sampled request inputs differ from the serving version's training reference");
}

drift_watch::~drift_watch() = default;

drift_watch::stream_state& drift_watch::stream(const std::string& name) {
  auto found = streams_.find(name);
  if (found != streams_.end()) return *found->second;
  auto state = std::make_unique<stream_state>(options_.concept_drift);
  auto& metrics = *telemetry_.metrics;
  const messaging::metrics::label_set labels{{"stream", name}};
  state->outcomes = &metrics.get_counter("rml_drift_outcomes_total", "Labelled outcomes the concept-drift detectors saw", labels);
  state->error_rate = &metrics.get_gauge("rml_drift_error_rate", "Error rate over ADWIN's adaptive window", labels);
  state->window = &metrics.get_gauge("rml_drift_window_outcomes", "Outcomes in ADWIN's adaptive window (it shrinks at a change)", labels);
  state->page_hinkley = &metrics.get_gauge("rml_drift_page_hinkley_statistic", "Page-Hinkley's cumulative rise of the error rate (alarm above its threshold)", labels);
  state->ddm_warning = &metrics.get_gauge("rml_drift_ddm_warning", "1 while DDM is in its warning zone", labels);
  for (const char* detector : {"adwin", "page_hinkley", "ddm"}) {
    state->alarm_counters[detector] = &metrics.get_counter(alarms_name, alarms_help, {{"stream", name}, {"detector", detector}});
  }
  return *streams_.emplace(name, std::move(state)).first->second;
}

std::vector<drift_alarm> drift_watch::observe(const messaging::outcomes_observed& outcomes, std::int64_t now_us) {
  std::vector<drift_alarm> raised;
  if (outcomes.stream.empty() || outcomes.stream.size() > 32) return raised;  // not a stream this system names
  auto& watched = stream(outcomes.stream);
  watched.model_version = outcomes.model_version;
  for (std::uint8_t error : outcomes.errors) {
    const auto alarms = watched.detectors.update(error != 0);
    if (!alarms.any()) continue;
    char detail[200];
    const auto& hinkley = watched.detectors.hinkley();
    std::snprintf(detail, sizeof(detail), "stream=%s outcomes=%llu version=%llu error_rate=%.3f window=%llu page_hinkley=%.1f",
                  outcomes.stream.c_str(), (unsigned long long)watched.detectors.seen(), (unsigned long long)outcomes.model_version,
                  watched.detectors.window().mean(),
                  (unsigned long long)watched.detectors.window().width(),
                  alarms.page_hinkley ? hinkley.statistic_at_change() : hinkley.statistic());
    const std::pair<bool, const char*> fired[] = {{alarms.adwin, "adwin"}, {alarms.page_hinkley, "page_hinkley"}, {alarms.ddm, "ddm"}};
    for (const auto& [on, detector] : fired) {
      if (!on) continue;
      ++watched.alarms;
      watched.alarm_counters[detector]->add();
      std::string text = std::string("detector=") + detector + " " + detail;
      telemetry_.trace->record({now_us, component, "concept_drift", text});
      raised.push_back({outcomes.stream, detector, outcomes.model_version, now_us, std::move(text)});
    }
  }
  watched.outcomes->add(double(outcomes.errors.size()));
  watched.error_rate->set(watched.detectors.window().mean());
  watched.window->set(double(watched.detectors.window().width()));
  watched.page_hinkley->set(watched.detectors.hinkley().statistic());
  watched.ddm_warning->set(watched.detectors.drift_detection().warning() ? 1.0 : 0.0);
  return raised;
}

std::optional<drift_alarm> drift_watch::sample(const messaging::inputs_sampled& inputs, std::int64_t now_us) {
  std::optional<drift_alarm> raised;
  auto& metrics = *telemetry_.metrics;
  const auto& values = inputs.values.values;
  if (inputs.columns == 0 || values.size() % inputs.columns != 0) return raised;
  const std::size_t rows = values.size() / inputs.columns;
  if (!inputs.reference.empty()) {
    // A version's reference (and the pipeline into its space): the window starts over.
    auto reference = drift::from_message(inputs.reference);
    auto pipeline = data::feature_pipeline::from_spec(inputs.feature_pipeline, inputs.columns);
    if (reference && reference->features() == inputs.columns && pipeline && pipeline->restore(inputs.feature_state.values).ok()) {
      input_.emplace(std::move(*reference), options_.input_drift);
      pipeline_.emplace(std::move(pipeline.value()));
      input_version_ = inputs.model_version;
      rows_since_evaluation_ = 0;
      input_statistics_ = {};
      if (input_alarmed_) telemetry_.trace->record({now_us, component, "input_drift_cleared", "version=" + std::to_string(input_version_) + " (a new version)"});
      input_alarmed_ = false;
      metrics.get_gauge("rml_input_drift_alarm", "").set(0);
    } else {
      telemetry_.trace->record({now_us, component, "input_reference_refused",
                                "version=" + std::to_string(inputs.model_version) + ": its reference or pipeline does not fit rows of " +
                                    std::to_string(inputs.columns) + " features"});
    }
  }
  if (!input_ || inputs.model_version != input_version_ || inputs.columns != input_->reference().features()) {
    unreferenced_rows_ += rows;
    metrics.get_counter("rml_input_drift_unreferenced_rows_total", "Sampled rows of a version whose training reference monitoring lacks").add(double(rows));
    return raised;
  }
  transformed_.assign(values.begin(), values.end());
  tensor block = tensor::borrow(transformed_.data(), {std::int64_t(rows), std::int64_t(inputs.columns)});
  pipeline_->apply(block);
  for (std::size_t row = 0; row < rows; ++row) {
    input_->add(std::span<const float>(transformed_).subspan(row * inputs.columns, inputs.columns));
    if (++rows_since_evaluation_ >= options_.input_evaluate_rows) evaluate_inputs(now_us, raised);
  }
  metrics.get_counter("rml_input_drift_rows_total", "Request rows the input-drift statistics saw").add(double(rows));
  return raised;
}

void drift_watch::evaluate_inputs(std::int64_t now_us, std::optional<drift_alarm>& raised) {
  rows_since_evaluation_ = 0;
  input_statistics_ = input_->statistics();
  const auto& statistics = input_statistics_;
  auto& metrics = *telemetry_.metrics;
  metrics.get_gauge("rml_input_drift_psi_mean", "Population stability index of request inputs against the training reference, mean over features").set(statistics.psi_mean);
  metrics.get_gauge("rml_input_drift_psi_max", "Population stability index of the most drifted feature").set(statistics.psi_max);
  metrics.get_gauge("rml_input_drift_ks_max", "Largest two-sample Kolmogorov-Smirnov statistic over features").set(statistics.ks_max);
  metrics.get_gauge("rml_input_drift_drifted_features", "Features whose PSI is above the drifted threshold").set(double(statistics.drifted_features));
  metrics.get_gauge("rml_input_drift_window_rows", "Sampled request rows in the input-drift window").set(double(statistics.rows));
  metrics.get_gauge("rml_input_drift_features", "Features the training reference covers").set(double(statistics.psi.size()));
  char detail[240];
  std::snprintf(detail, sizeof(detail), "version=%llu drifted_features=%zu/%zu psi_mean=%.3f psi_max=%.3f (feature %zu) ks_max=%.3f rows=%llu",
                (unsigned long long)input_version_, statistics.drifted_features, statistics.psi.size(), statistics.psi_mean, statistics.psi_max,
                statistics.psi_max_feature, statistics.ks_max, (unsigned long long)statistics.rows);
  if (statistics.alarm && !input_alarmed_) {
    input_alarmed_ = true;
    ++input_alarms_;
    metrics.get_counter(alarms_name, alarms_help, {{"stream", "inputs"}, {"detector", "psi"}}).add();
    metrics.get_gauge("rml_input_drift_alarm", "").set(1);
    telemetry_.trace->record({now_us, component, "input_drift", detail});
    if (!raised) raised = drift_alarm{"inputs", "psi", input_version_, now_us, detail};
  } else if (!statistics.alarm && input_alarmed_ && statistics.rows >= options_.input_drift.rows_min) {
    input_alarmed_ = false;
    metrics.get_gauge("rml_input_drift_alarm", "").set(0);
    telemetry_.trace->record({now_us, component, "input_drift_cleared", detail});
  }
}

std::uint64_t drift_watch::window_of(const std::string& stream) const {
  auto found = streams_.find(stream);
  return found == streams_.end() ? 0 : found->second->detectors.window().width();
}

std::map<std::string, double> drift_watch::report() const {
  std::map<std::string, double> values;
  for (const auto& [name, watched] : streams_) {
    values[name + "_error_rate"] = watched->detectors.window().mean();
    values[name + "_alarms"] = double(watched->alarms);
  }
  if (input_) {
    values["inputs_psi_mean"] = input_statistics_.psi_mean;
    values["inputs_drifted_features"] = double(input_statistics_.drifted_features);
    values["inputs_alarms"] = double(input_alarms_);
    values["inputs_version"] = double(input_version_);
  }
  return values;
}

}  // namespace rml::actors
