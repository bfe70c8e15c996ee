#pragma once
// The feature component: reads events from the durable log, turns the labelled ones into
// feature rows through the feature pipeline (updating its statistics: training side), and
// feeds them to the trainer with a bounded number of batches awaiting an answer
// (backpressure: the log absorbs what the trainer has not taken yet). Each batch carries the pipeline's spec
// and state, which the trainer puts into its snapshots: serving runs the same pipeline.
//
// It keeps no position of its own: on start, and whenever the trainer answers with an error,
// it asks the trainer where it stands (position_atom, messaging/training_input.hpp) and
// resumes from the log offset and pipeline state there — so after any restart (its own or the trainer's) the two agree, and no acked event
// is skipped.

#include <caf/typed_actor.hpp>

#include <chrono>
#include <memory>

#include "messaging/atoms.hpp"
#include "messaging/event_log.hpp"

namespace rml::actors {

using feature_actor = caf::typed_actor<
    caf::reacts_to<messaging::poll_atom>,
    caf::replies_to<messaging::status_atom>::with<std::uint64_t>>;

struct feature_options {
  /// The pipeline spec (compute/data/feature_pipeline.hpp).
  std::string pipeline = "scale(0.00392156862745098)";
  std::uint32_t feature_count = 784;
  /// Rows per training batch.
  std::uint32_t rows_per_batch = 64;
  /// Batches sent to the trainer and not yet answered: 2 lets the next batch be read and
  /// featurised while the trainer trains on the current one.
  std::uint32_t batches_in_flight_max = 2;
  /// How long to wait before looking again when the log has nothing new; each empty look
  /// doubles it up to `idle_poll_max`, and new events bring it back. An idle reader then
  /// costs a few timer wake-ups a second instead of hundreds (which, on 2 cores, kept CAF's
  /// workers polling and cost serving a fifth of a core).
  std::chrono::milliseconds idle_poll{2};
  std::chrono::milliseconds idle_poll_max{100};
  /// How long a partial batch waits for the log to grow before it is sent anyway.
  std::chrono::milliseconds partial_batch_wait{20};
};

/// Checks the options (the pipeline spec must parse); the error names what is wrong.
status validate(const feature_options& options);

feature_actor spawn_feature(caf::actor_system& system, std::shared_ptr<messaging::event_log> log,
                            const feature_options& options);

}  // namespace rml::actors
