#pragma once
// A dataset replayed as a stream of labelled events into ingest: a seeded shuffle per epoch,
// several epochs, an optional rate limit, and a bound on batches awaiting their ack. Event
// ids are the position in the stream (epoch · rows + index), so a restarted source that
// sends again is deduplicated by the log. Time comes from the actor clock (rate limit and
// event timestamps).

#include <caf/typed_actor.hpp>

#include <memory>

#include "compute/data/dataset.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"

namespace rml::actors {

using source_actor = caf::typed_actor<
    caf::reacts_to<messaging::poll_atom>,
    caf::replies_to<messaging::status_atom>::with<messaging::source_status>>;

struct dataset_source_options {
  std::uint32_t epochs = 1;
  /// Events per second; 0 sends as fast as ingest acks.
  double events_per_second = 0;
  std::uint32_t batch_events = 256;
  std::uint32_t batches_in_flight_max = 4;
  std::uint64_t seed = 1;
  /// From this event on (0: never) the stream drifts, for trying drift detection against a
  /// known change: "relabel" shifts every label by one class (concept drift: the inputs stay,
  /// their meaning changes), "invert" turns every feature v into the dataset's largest value
  /// minus v (input drift: the inputs change).
  std::uint64_t drift_at_event = 0;
  std::string drift_kind = "relabel";
};

/// Checks the options; the error names the field.
status validate(const dataset_source_options& options);

/// Spawns a source replaying `data` (features as they are: the feature pipeline scales).
source_actor spawn_dataset_source(caf::actor_system& system, std::shared_ptr<const data::dataset> data,
                                  const dataset_source_options& options);

}  // namespace rml::actors
