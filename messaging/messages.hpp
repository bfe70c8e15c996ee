#pragma once
// The messages that cross actor and process boundaries. Each is a plain struct with an
// `inspect` overload beside it (CAF examples/custom_type); CAF's binary serializer is the one
// serialization path for actors, nodes, snapshots and simulator traces. Names say what
// happened or what is asked (STYLE.md).
//
// Tensor payloads serialise as one contiguous block of bytes: CAF 0.17 writes a
// std::vector<float> element by element, measured 4× slower than the same data as bytes.

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/deserializer.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>
#include <caf/serializer.hpp>

#include <bit>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace rml::messaging {

static_assert(std::endian::native == std::endian::little,
              "float payloads travel as little-endian bytes");

/// Floats that travel as raw bytes.
struct float_payload {
  std::vector<float> values;
  friend bool operator==(const float_payload&, const float_payload&) = default;
};

inline caf::error inspect(caf::serializer& sink, float_payload& payload) {
  std::size_t count = payload.values.size();
  return caf::error::eval(
      [&] { return sink.begin_sequence(count); },
      [&] { return count > 0 ? sink.apply_raw(count * sizeof(float), payload.values.data()) : caf::error{}; },
      [&] { return sink.end_sequence(); });
}

inline caf::error inspect(caf::deserializer& source, float_payload& payload) {
  std::size_t count = 0;
  return caf::error::eval(
      [&] { return source.begin_sequence(count); },
      [&] {
        payload.values.resize(count);
        return count > 0 ? source.apply_raw(count * sizeof(float), payload.values.data()) : caf::error{};
      },
      [&] { return source.end_sequence(); });
}

/// Other inspectors (to_string, the simulator's trace hashing) see the values.
template <class Inspector>
std::enable_if_t<!std::is_base_of_v<caf::serializer, Inspector> &&
                     !std::is_base_of_v<caf::deserializer, Inspector>,
                 typename Inspector::result_type>
inspect(Inspector& f, float_payload& payload) {
  return f(caf::meta::type_name("float_payload"), payload.values);
}

/// The features of a predict request: floats the request owns, or a view of the receive
/// buffer they arrived in (a ZeroMQ frame, an HTTP body), kept alive by shared ownership, so
/// that the lane's gather into its batch is their only copy. A view may be unaligned (ZeroMQ
/// receives frames in place into its batch buffer): read it through bytes() or copy_to().
class feature_block {
 public:
  feature_block() = default;
  explicit feature_block(std::vector<float> values) : owned_(std::move(values)) {}
  /// A view of `bytes` (whole floats, little-endian), valid while `keeper` lives.
  static feature_block view_of(std::shared_ptr<const void> keeper, std::span<const std::byte> bytes) {
    feature_block block;
    block.keeper_ = std::move(keeper);
    block.view_ = bytes.first(bytes.size() - bytes.size() % sizeof(float));
    return block;
  }

  bool is_view() const { return keeper_ != nullptr; }
  /// How many floats.
  std::size_t size() const { return is_view() ? view_.size() / sizeof(float) : owned_.size(); }
  std::span<const std::byte> bytes() const { return is_view() ? view_ : std::as_bytes(std::span<const float>(owned_)); }
  float at(std::size_t index) const {
    float value;
    std::memcpy(&value, bytes().data() + index * sizeof(float), sizeof(float));
    return value;
  }
  void copy_to(float* destination) const {
    if (size() > 0) std::memcpy(destination, bytes().data(), size() * sizeof(float));
  }
  /// The floats as a vector the caller may change; a view is copied into one first (and
  /// lets its buffer go).
  std::vector<float>& values() {
    if (is_view()) {
      owned_.resize(size());
      copy_to(owned_.data());
      keeper_.reset();
      view_ = {};
    }
    return owned_;
  }

  friend bool operator==(const feature_block& left, const feature_block& right) {
    const auto a = left.bytes(), b = right.bytes();
    return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size()) == 0);
  }

 private:
  std::vector<float> owned_;
  std::shared_ptr<const void> keeper_;
  std::span<const std::byte> view_;
};

inline caf::error inspect(caf::serializer& sink, feature_block& block) {
  std::size_t count = block.size();
  return caf::error::eval(
      [&] { return sink.begin_sequence(count); },
      // A serializer only reads what apply_raw is given (CAF 0.17 takes void* for both ways).
      [&] { return count > 0 ? sink.apply_raw(count * sizeof(float), const_cast<std::byte*>(block.bytes().data())) : caf::error{}; },
      [&] { return sink.end_sequence(); });
}

/// What arrives from another node is owned (the sender's buffer stayed there).
inline caf::error inspect(caf::deserializer& source, feature_block& block) {
  float_payload payload;
  auto read = inspect(source, payload);
  if (!read) block = feature_block(std::move(payload.values));
  return read;
}

template <class Inspector>
std::enable_if_t<!std::is_base_of_v<caf::serializer, Inspector> &&
                     !std::is_base_of_v<caf::deserializer, Inspector>,
                 typename Inspector::result_type>
inspect(Inspector& f, feature_block& block) {
  return f(caf::meta::type_name("feature_block"), block.values());
}

/// Label of an event that has none (a prediction-only event).
inline constexpr std::int32_t no_label = -1;

/// An immutable fact: what was observed, when, and (optionally) its label.
struct event {
  std::uint64_t id = 0;
  std::int64_t timestamp_us = 0;
  float_payload features;
  std::int32_t label = no_label;
  bool has_label() const { return label != no_label; }
  friend bool operator==(const event&, const event&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event& x) {
  return f(caf::meta::type_name("event"), x.id, x.timestamp_us, x.features, x.label);
}

/// Events a producer asks to be made durable together; acked as one.
struct event_batch {
  std::uint64_t batch_id = 0;
  std::vector<event> events;
  friend bool operator==(const event_batch&, const event_batch&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_batch& x) {
  return f(caf::meta::type_name("event_batch"), x.batch_id, x.events);
}

/// A batch is durable: its new events sit at log offsets [first_offset, first_offset +
/// appended); `duplicates` events were already in the log and were not appended again.
struct event_acked {
  std::uint64_t batch_id = 0;
  std::uint64_t first_offset = 0;
  std::uint32_t appended = 0;
  std::uint32_t duplicates = 0;
  friend bool operator==(const event_acked&, const event_acked&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, event_acked& x) {
  return f(caf::meta::type_name("event_acked"), x.batch_id, x.first_offset, x.appended, x.duplicates);
}

/// Featurised rows for the trainer: row-major [rows, columns], made from the events at log
/// offsets [first_offset, last_offset] (unlabelled events in that range are not rows), so
/// that a checkpoint can say where training stopped.
struct feature_batch {
  std::uint32_t rows = 0;
  std::uint32_t columns = 0;
  float_payload values;
  std::vector<std::int32_t> labels;
  std::vector<std::uint64_t> event_ids;
  std::uint64_t first_offset = 0;
  std::uint64_t last_offset = 0;
  /// The feature pipeline that made these rows and its state after them: the trainer keeps
  /// the latest to put into snapshots, so serving runs the same transforms.
  std::string feature_pipeline;
  float_payload feature_state;
  friend bool operator==(const feature_batch&, const feature_batch&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, feature_batch& x) {
  return f(caf::meta::type_name("feature_batch"), x.rows, x.columns, x.values, x.labels,
           x.event_ids, x.first_offset, x.last_offset, x.feature_pipeline, x.feature_state);
}

/// Where a trainer stands: the log offset of the next event it trains on, and the state of
/// its feature pipeline there (what a feature reader resumes from).
struct training_position {
  std::uint64_t next_offset = 0;
  float_payload feature_state;
  friend bool operator==(const training_position&, const training_position&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, training_position& x) {
  return f(caf::meta::type_name("training_position"), x.next_offset, x.feature_state);
}

/// A published model: weights (an rml model file, compute/model_file.hpp), the state of the
/// feature pipeline that trained it (serving runs the same one), and how it was validated.
/// What a model's training rows looked like, per feature, as its feature pipeline gave them:
/// quantile bin edges and the share of rows in each bin (monitoring's data-drift reference,
/// actors/monitoring/drift.hpp), flattened. Empty where the trainer kept none.
struct input_reference {
  std::uint64_t rows = 0;
  std::vector<std::uint32_t> edges_per_feature;
  std::vector<float> edges;
  /// edges_per_feature[f] + 1 shares per feature, in feature order.
  std::vector<double> shares;
  bool empty() const { return edges_per_feature.empty(); }
  friend bool operator==(const input_reference&, const input_reference&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, input_reference& x) {
  return f(caf::meta::type_name("input_reference"), x.rows, x.edges_per_feature, x.edges, x.shares);
}

struct model_snapshot {
  /// 0 when sent to the registry: it assigns the next version (above every stored one).
  std::uint64_t version = 0;
  std::uint64_t parent_version = 0;
  std::vector<char> model_file;
  std::string feature_pipeline;
  float_payload feature_state;
  std::map<std::string, double> metrics;
  std::uint64_t log_offset = 0;
  input_reference reference;
  friend bool operator==(const model_snapshot&, const model_snapshot&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_snapshot& x) {
  return f(caf::meta::type_name("model_snapshot"), x.version, x.parent_version, x.model_file,
           x.feature_pipeline, x.feature_state, x.metrics, x.log_offset, x.reference);
}

/// Asks for class probabilities of `rows` feature vectors, answered by the deadline
/// (microseconds on the actor clock) or with an error saying it passed.
struct predict_request {
  std::uint64_t request_id = 0;
  std::int64_t deadline_us = 0;
  std::uint32_t rows = 0;
  std::uint32_t top_k = 1;
  /// 0 asks for the newest published version.
  std::uint64_t model_version = 0;
  feature_block features;
  friend bool operator==(const predict_request&, const predict_request&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, predict_request& x) {
  return f(caf::meta::type_name("predict_request"), x.request_id, x.deadline_us, x.rows, x.top_k,
           x.model_version, x.features);
}

/// Probabilities [rows, classes] and the top_k classes of each row, best first.
struct predict_reply {
  std::uint64_t request_id = 0;
  std::uint64_t model_version = 0;
  std::uint32_t rows = 0;
  std::uint32_t classes = 0;
  float_payload probabilities;
  std::vector<std::int32_t> top_classes;
  friend bool operator==(const predict_reply&, const predict_reply&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, predict_reply& x) {
  return f(caf::meta::type_name("predict_reply"), x.request_id, x.model_version, x.rows,
           x.classes, x.probabilities, x.top_classes);
}

/// A predict request with the ticket its asker will know the answer by.
struct ticketed_request {
  std::uint64_t ticket = 0;
  predict_request request;
  friend bool operator==(const ticketed_request&, const ticketed_request&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ticketed_request& x) {
  return f(caf::meta::type_name("ticketed_request"), x.ticket, x.request);
}

/// Who sent a burst to serving on another node (messaging/at_most_once.hpp): the receiving
/// router admits each request at most once (by sender, incarnation and ticket), refuses a
/// stale sender, and re-bases the deadlines — actor-clock µs of the sender's machine — onto
/// its own clock by `sent_at_us`. Empty `sender`: a burst from within the process.
struct burst_origin {
  /// The sending ledger, unique among a node's: "<node>/<ledger actor id>".
  std::string sender;
  /// The sending node's incarnation (its member key's create revision; 0: not joined).
  std::int64_t incarnation = 0;
  /// The placement controller's epoch as the sending node last saw it (0: none seen).
  std::int64_t epoch = 0;
  /// The sender's actor clock when it sent the burst.
  std::int64_t sent_at_us = 0;
  friend bool operator==(const burst_origin&, const burst_origin&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, burst_origin& x) {
  return f(caf::meta::type_name("burst_origin"), x.sender, x.incarnation, x.epoch, x.sent_at_us);
}

/// Requests that arrived together (one receive burst of an endpoint), sent as one message:
/// serving's cost per request is then a small constant instead of an actor message each
/// way. Every request is answered exactly once, in a `predict_answers` to the sender — by
/// the lane that computed it, straight (the router passes a burst on as its sender's).
struct predict_burst {
  std::vector<ticketed_request> requests;
  /// Set by a ledger sending to another node; the router clears it once admitted.
  burst_origin origin;
  friend bool operator==(const predict_burst&, const predict_burst&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, predict_burst& x) {
  return f(caf::meta::type_name("predict_burst"), x.requests, x.origin);
}

/// The answer to one ticketed request: the reply, or the error when `failure` is set.
struct ticketed_answer {
  std::uint64_t ticket = 0;
  std::uint64_t request_id = 0;
  caf::error failure;
  predict_reply reply;
  bool ok() const { return !failure; }
  friend bool operator==(const ticketed_answer&, const ticketed_answer&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, ticketed_answer& x) {
  return f(caf::meta::type_name("ticketed_answer"), x.ticket, x.request_id, x.failure, x.reply);
}

/// Answers that became ready together (one batch's), sent as one message.
struct predict_answers {
  std::vector<ticketed_answer> answers;
  friend bool operator==(const predict_answers&, const predict_answers&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, predict_answers& x) {
  return f(caf::meta::type_name("predict_answers"), x.answers);
}

/// The router passed requests of a burst on to the actor that now holds them (a lane): the
/// burst's sender, which owns the requests' ledger, watches that actor instead of the router,
/// so that each still gets exactly one answer, an error at once, should it die holding them.
struct burst_routed {
  caf::actor holder;
  std::vector<std::uint64_t> tickets;
  friend bool operator==(const burst_routed&, const burst_routed&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, burst_routed& x) {
  return f(caf::meta::type_name("burst_routed"), x.holder, x.tickets);
}

/// How one request ended at a lane. The answer itself went to whoever asked; this is what
/// the version policy needs of it (live accuracy from feedback, latency, shadow agreement).
struct prediction_outcome {
  std::uint64_t request_id = 0;
  /// The version that answered; 0 for an error.
  std::uint64_t model_version = 0;
  /// The top class of the first row; -1 for an error.
  std::int32_t top_class = -1;
  /// The error's rml::errc (compute/status.hpp) as a number; 0 when answered.
  std::uint8_t error_code = 0;
  /// From the lane's admission to the answer.
  std::int64_t latency_us = 0;
  bool ok() const { return error_code == 0; }
  friend bool operator==(const prediction_outcome&, const prediction_outcome&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, prediction_outcome& x) {
  return f(caf::meta::type_name("prediction_outcome"), x.request_id, x.model_version, x.top_class, x.error_code, x.latency_us);
}

/// A lane tells its router how the requests it answered while handling one message ended:
/// one message per handled message, however many requests it answered.
struct lane_outcomes {
  std::vector<prediction_outcome> outcomes;
  friend bool operator==(const lane_outcomes&, const lane_outcomes&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lane_outcomes& x) {
  return f(caf::meta::type_name("lane_outcomes"), x.outcomes);
}

/// Labelled outcomes a component saw, for monitoring's concept-drift detectors: one bit per
/// labelled answer, 1 where the model was wrong. `stream` says whose: "feedback" (serving's
/// answers that clients labelled) or "training" (the trainer's predict-then-train).
struct outcomes_observed {
  std::string stream;
  std::uint64_t model_version = 0;
  std::vector<std::uint8_t> errors;
  friend bool operator==(const outcomes_observed&, const outcomes_observed&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, outcomes_observed& x) {
  return f(caf::meta::type_name("outcomes_observed"), x.stream, x.model_version, x.errors);
}

/// Request rows (raw, as clients sent them) serving sampled for monitoring's input-drift
/// statistics, with the version that answers them. That version's training reference (about
/// 100 kB for Fashion-MNIST) and the feature pipeline that maps raw rows into its space come
/// with the first sample of each version to each monitor, and are empty after.
struct inputs_sampled {
  std::uint64_t model_version = 0;
  std::uint32_t columns = 0;
  float_payload values;
  input_reference reference;
  std::string feature_pipeline;
  float_payload feature_state;
  friend bool operator==(const inputs_sampled&, const inputs_sampled&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, inputs_sampled& x) {
  return f(caf::meta::type_name("inputs_sampled"), x.model_version, x.columns, x.values, x.reference, x.feature_pipeline,
           x.feature_state);
}

/// Monitoring raised a drift alarm (actors/monitoring/drift_watch.hpp): which stream
/// ("feedback", "training", "inputs") and detector, the version then, what it saw, and the
/// length of ADWIN's window on the training stream (the stretch since its last change).
struct drift_alarmed {
  std::string stream;
  std::string detector;
  std::uint64_t model_version = 0;
  std::int64_t timestamp_us = 0;
  std::string detail;
  std::uint64_t training_window = 0;
  friend bool operator==(const drift_alarmed&, const drift_alarmed&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, drift_alarmed& x) {
  return f(caf::meta::type_name("drift_alarmed"), x.stream, x.detector, x.model_version, x.timestamp_us, x.detail, x.training_window);
}

/// Measurements a component reports: counters, gauges and latency quantiles by name.
struct metrics_sample {
  std::string component;
  std::int64_t timestamp_us = 0;
  std::map<std::string, double> values;
  friend bool operator==(const metrics_sample&, const metrics_sample&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, metrics_sample& x) {
  return f(caf::meta::type_name("metrics_sample"), x.component, x.timestamp_us, x.values);
}

/// What a trainer needs to resume exactly where it stopped: weights (an rml model file),
/// optimizer state, the feature pipeline, and the log offset of the next event to train on.
struct trainer_checkpoint {
  std::vector<char> model_file;
  std::vector<float_payload> optimizer_state;
  std::string feature_pipeline;
  float_payload feature_state;
  std::uint64_t next_offset = 0;
  std::uint64_t events_trained = 0;
  std::uint64_t steps = 0;
  std::uint64_t published_version = 0;
  friend bool operator==(const trainer_checkpoint&, const trainer_checkpoint&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, trainer_checkpoint& x) {
  return f(caf::meta::type_name("trainer_checkpoint"), x.model_file, x.optimizer_state, x.feature_pipeline,
           x.feature_state, x.next_offset, x.events_trained, x.steps, x.published_version);
}

/// Where a trainer stands: progress, and progressive validation (each event predicted before
/// the model trained on it) over the last window of events.
struct trainer_status {
  std::uint64_t next_offset = 0;
  std::uint64_t events_trained = 0;
  std::uint64_t steps = 0;
  std::uint64_t published_version = 0;
  double rolling_accuracy = 0;
  double rolling_loss = 0;
  /// Steps not applied because the loss or a gradient was not finite.
  std::uint64_t steps_skipped = 0;
  /// Steps whose gradients were scaled down to the norm bound.
  std::uint64_t steps_clipped = 0;
  /// Times the weights went non-finite and were restored from the last good state.
  std::uint64_t restores = 0;
  /// Snapshots the registry refused (its gate, or an older version).
  std::uint64_t publishes_refused = 0;
  friend bool operator==(const trainer_status&, const trainer_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, trainer_status& x) {
  return f(caf::meta::type_name("trainer_status"), x.next_offset, x.events_trained, x.steps,
           x.published_version, x.rolling_accuracy, x.rolling_loss, x.steps_skipped, x.steps_clipped, x.restores,
           x.publishes_refused);
}

/// Where a data source stands: events sent to ingest, events acked as durable, and whether
/// it has sent and had acked everything it will.
struct source_status {
  std::uint64_t events_sent = 0;
  std::uint64_t events_acked = 0;
  std::uint64_t events_total = 0;
  bool finished = false;
  friend bool operator==(const source_status&, const source_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, source_status& x) {
  return f(caf::meta::type_name("source_status"), x.events_sent, x.events_acked, x.events_total, x.finished);
}

/// How a dynamic batcher forms batches; can be changed while it runs.
struct batching_settings {
  /// Rows in one batch at most (the adaptive mode moves the current size below this).
  std::uint32_t batch_rows_max = 64;
  /// How long the first queued request may wait for others while a replica is free, before
  /// its batch closes. 0 (Triton's default): at once — batches still form while every
  /// replica is busy, which is when waiting costs nothing.
  std::int64_t queue_delay_max_us = 0;
  /// Adaptive (AIMD, as in Clipper): grow the batch size while batches finish within
  /// the latency objective, halve it when one does not.
  bool adaptive = false;
  std::int64_t latency_objective_us = 5000;
  /// Requests waiting at most; beyond it a request is refused `overloaded` at once.
  std::uint32_t queue_requests_max = 4096;
  friend bool operator==(const batching_settings&, const batching_settings&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batching_settings& x) {
  return f(caf::meta::type_name("batching_settings"), x.batch_rows_max, x.queue_delay_max_us, x.adaptive,
           x.latency_objective_us, x.queue_requests_max);
}

/// Puts a model version on a compute actor's device for the sender, which then sends it
/// compute_requests for (model, snapshot.version). Each sender holds one reference to each
/// version it loaded, given back by compute_release or when the sender goes down; a version
/// no one holds leaves the device. Answered with the version.
struct compute_load {
  std::string model;
  model_snapshot snapshot;
  friend bool operator==(const compute_load&, const compute_load&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compute_load& x) {
  return f(caf::meta::type_name("compute_load"), x.model, x.snapshot);
}

/// The sender no longer computes with (model, version) on this compute actor.
struct compute_release {
  std::string model;
  std::uint64_t version = 0;
  friend bool operator==(const compute_release&, const compute_release&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compute_release& x) {
  return f(caf::meta::type_name("compute_release"), x.model, x.version);
}

/// `rows` feature vectors (already through the model's feature pipeline) for a forward pass
/// of (model, version) on a compute actor, which runs them in one batch with the rows other
/// senders sent meanwhile; answered with each row's class probabilities.
struct compute_request {
  std::string model;
  std::uint64_t version = 0;
  std::uint32_t rows = 0;
  float_payload features;
  friend bool operator==(const compute_request&, const compute_request&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compute_request& x) {
  return f(caf::meta::type_name("compute_request"), x.model, x.version, x.rows, x.features);
}

/// [rows, classes] probabilities, row-major.
struct compute_reply {
  std::uint32_t rows = 0;
  std::uint32_t classes = 0;
  float_payload probabilities;
  friend bool operator==(const compute_reply&, const compute_reply&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compute_reply& x) {
  return f(caf::meta::type_name("compute_reply"), x.rows, x.classes, x.probabilities);
}

/// Where a compute actor stands: its backend, and its counts since it started.
struct compute_status {
  std::string device;
  std::uint64_t requests = 0;
  /// Forward passes run: fewer than requests when senders' rows shared a batch.
  std::uint64_t batches = 0;
  std::uint64_t rows = 0;
  std::uint64_t errors = 0;
  /// Model versions on the device now.
  std::uint64_t models = 0;
  friend bool operator==(const compute_status&, const compute_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, compute_status& x) {
  return f(caf::meta::type_name("compute_status"), x.device, x.requests, x.batches, x.rows, x.errors, x.models);
}

/// Where a serving replica stands.
struct replica_status {
  std::uint64_t requests = 0;
  std::uint64_t rows = 0;
  std::uint64_t errors = 0;
  std::uint64_t model_swaps = 0;
  std::uint64_t model_version = 0;
  friend bool operator==(const replica_status&, const replica_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_status& x) {
  return f(caf::meta::type_name("replica_status"), x.requests, x.rows, x.errors, x.model_swaps, x.model_version);
}

/// Where a serving lane (batching queue and replica pool) stands, with its counts since it
/// started.
struct lane_status {
  std::uint64_t model_version = 0;
  /// The current batch size (the adaptive mode moves it) and the work waiting or out.
  std::uint32_t batch_rows = 0;
  std::uint64_t queued_requests = 0;
  std::uint32_t replicas = 0;
  std::uint64_t batches_outstanding = 0;
  std::uint64_t batches = 0;
  std::uint64_t rows = 0;
  /// Batches closed, by why (batch_close_reason order: full, delay expired, deadline
  /// pressure, replica free).
  std::uint64_t closed_full = 0;
  std::uint64_t closed_delay_expired = 0;
  std::uint64_t closed_deadline_pressure = 0;
  std::uint64_t closed_replica_free = 0;
  /// Requests refused: deadline passed, queue full.
  std::uint64_t deadline_exceeded = 0;
  std::uint64_t overloaded = 0;
  /// Requests queued again because their replica crashed; replicas restarted after a crash,
  /// killed for hanging, added and removed by autoscaling.
  std::uint64_t retried = 0;
  std::uint64_t replica_restarts = 0;
  std::uint64_t replicas_hung = 0;
  std::uint64_t scaled_up = 0;
  std::uint64_t scaled_down = 0;
  std::uint64_t cache_hits = 0;
  std::uint64_t cache_misses = 0;
  std::uint64_t cache_entries = 0;
  /// Replica time per batch (microseconds, actor clock).
  double batch_p50_us = 0;
  double batch_p99_us = 0;
  double cache_hit_rate() const {
    return cache_hits + cache_misses > 0 ? double(cache_hits) / double(cache_hits + cache_misses) : 0.0;
  }
  friend bool operator==(const lane_status&, const lane_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lane_status& x) {
  return f(caf::meta::type_name("lane_status"), x.model_version, x.batch_rows, x.queued_requests, x.replicas,
           x.batches_outstanding, x.batches, x.rows, x.closed_full, x.closed_delay_expired, x.closed_deadline_pressure,
           x.closed_replica_free, x.deadline_exceeded, x.overloaded, x.retried, x.replica_restarts, x.replicas_hung,
           x.scaled_up, x.scaled_down, x.cache_hits, x.cache_misses, x.cache_entries, x.batch_p50_us, x.batch_p99_us);
}

/// One lane as the router sees it: its version and live evaluation on labelled feedback.
struct lane_evaluation {
  std::string role;
  std::uint64_t version = 0;
  std::uint64_t feedback = 0;
  double accuracy = 0;
  /// The bandit's probability of choosing it (0 when it is not an arm).
  double bandit_probability = 0;
  friend bool operator==(const lane_evaluation&, const lane_evaluation&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, lane_evaluation& x) {
  return f(caf::meta::type_name("lane_evaluation"), x.role, x.version, x.feedback, x.accuracy, x.bandit_probability);
}

/// Where serving (the router) stands: requests held, the policy's decisions, feedback.
struct serving_status {
  std::uint64_t in_flight = 0;
  bool draining = false;
  std::uint32_t lanes = 0;
  std::uint64_t lane_restarts = 0;
  std::uint64_t canary_promoted = 0;
  std::uint64_t canary_rolled_back = 0;
  std::uint64_t shadow_answers = 0;
  std::uint64_t shadow_errors = 0;
  std::uint64_t shadow_agree = 0;
  std::uint64_t shadow_disagree = 0;
  std::uint64_t feedback = 0;
  std::uint64_t feedback_unmatched = 0;
  /// Requests lanes held when they went down without answering them (killed: an exit no
  /// actor can intercept); their askers failed them when they saw the lane go (burst_routed).
  std::uint64_t requests_at_lost_lanes = 0;
  /// The lanes serving now (closing ones left out), by role.
  std::vector<lane_evaluation> lane_evaluations;
  const lane_evaluation* lane(const std::string& role) const {
    for (const auto& each : lane_evaluations) {
      if (each.role == role) return &each;
    }
    return nullptr;
  }
  friend bool operator==(const serving_status&, const serving_status&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, serving_status& x) {
  return f(caf::meta::type_name("serving_status"), x.in_flight, x.draining, x.lanes, x.lane_restarts, x.canary_promoted,
           x.canary_rolled_back, x.shadow_answers, x.shadow_errors, x.shadow_agree, x.shadow_disagree, x.feedback,
           x.feedback_unmatched, x.requests_at_lost_lanes, x.lane_evaluations);
}

/// A supervisor restarted one of its children (the structured restart report, STYLE.md).
struct child_restarted {
  std::string supervisor;
  std::string child;
  /// Why the previous instance exited, as text.
  std::string reason;
  /// Restarts of this child since the supervisor started.
  std::uint32_t restart_count = 0;
  friend bool operator==(const child_restarted&, const child_restarted&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_restarted& x) {
  return f(caf::meta::type_name("child_restarted"), x.supervisor, x.child, x.reason, x.restart_count);
}

/// A dynamic supervisor replaced a child that exited: work routed to `previous` now goes to
/// `current` (supervision/dynamic_supervisor.hpp).
struct child_replaced {
  std::string supervisor;
  caf::actor_addr previous;
  caf::actor current;
  std::uint32_t restart_count = 0;
  friend bool operator==(const child_replaced&, const child_replaced&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, child_replaced& x) {
  return f(caf::meta::type_name("child_replaced"), x.supervisor, x.previous, x.current, x.restart_count);
}

/// The true label of an earlier prediction, sent when it becomes known (seconds or hours
/// later): what canary evaluation and the bandit policy learn from. `request_id` is the id
/// the client gave its predict request.
struct prediction_feedback {
  std::uint64_t request_id = 0;
  std::int32_t label = no_label;
  friend bool operator==(const prediction_feedback&, const prediction_feedback&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, prediction_feedback& x) {
  return f(caf::meta::type_name("prediction_feedback"), x.request_id, x.label);
}

/// A component could not load a model version the registry published (its file does not
/// decode, a weight is not finite, its feature pipeline does not restore): it keeps what it
/// had, and tells the registry, which counts and reports it for the operator.
struct model_refused {
  std::uint64_t version = 0;
  /// Who refused it ("serving/mlp/main").
  std::string component;
  std::string reason;
  friend bool operator==(const model_refused&, const model_refused&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, model_refused& x) {
  return f(caf::meta::type_name("model_refused"), x.version, x.component, x.reason);
}

/// What serving offers now: for readiness probes and model metadata.
struct serving_info {
  std::string model;
  /// A model is loaded and serving admits requests.
  bool ready = false;
  /// Draining: admission stopped, in-flight work finishing.
  bool draining = false;
  std::uint32_t features = 0;
  std::uint32_t classes = 0;
  /// The version answering unpinned requests (0: none yet).
  std::uint64_t serving_version = 0;
  /// Every version loaded in a lane (canary, shadow, bandit arms, pinned by path).
  std::vector<std::uint64_t> loaded_versions;
  std::string policy;
  /// How the lanes batch now.
  batching_settings batching;
  friend bool operator==(const serving_info&, const serving_info&) = default;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, serving_info& x) {
  return f(caf::meta::type_name("serving_info"), x.model, x.ready, x.draining, x.features, x.classes, x.serving_version,
           x.loaded_versions, x.policy, x.batching);
}

}  // namespace rml::messaging
