#pragma once
// Ingest: validates event batches, makes them durable in the event log and acks each batch
// only once it is durable (DESIGN.md contract 1). Batches that arrive while a write is being
// prepared share it: the actor appends everything waiting in one durable write (group
// commit), so a burst of producers costs one fsync, not one each.
//
// Refusals are explicit errors (category "rml"), naming the batch, the event and what was
// wrong: a wrong feature count, a NaN or infinite value, a label outside the classes, an
// oversized batch, or `overloaded` when more batches wait than the bound allows.
// Duplicate event ids are not errors: the ack counts them and they are not appended again.

#include <caf/typed_actor.hpp>

#include <memory>

#include "messaging/event_log.hpp"
#include "messaging/messages.hpp"

namespace rml::actors {

/// Answers an event batch with its ack once durable, or an error naming what was refused.
using ingest_actor = caf::typed_actor<
    caf::replies_to<messaging::event_batch>::with<messaging::event_acked>>;

struct ingest_options {
  /// Every event carries exactly this many features.
  std::uint32_t feature_count = 784;
  /// Labels lie in [0, classes), or are messaging::no_label.
  std::int32_t classes = 10;
  /// Upper bound of events in one batch.
  std::size_t batch_events_max = 4096;
  /// Upper bound of batches waiting for the next durable write; beyond it batches are
  /// refused with `overloaded`.
  std::size_t pending_batches_max = 1024;
  /// |feature| at most this (0: any finite value): finite but huge values poison the online
  /// model as surely as NaN (messaging/feature_check.hpp).
  float feature_magnitude_max = 1e6f;
};

/// Spawns an ingest actor appending to `log`, which it shares with readers of the log.
ingest_actor spawn_ingest(caf::actor_system& system, std::shared_ptr<messaging::event_log> log,
                          const ingest_options& options);

/// The validation ingest applies, exposed for the socket endpoints: nothing when the batch
/// is acceptable, else the reason naming batch, event and field.
std::optional<std::string> check_event_batch(const messaging::event_batch& batch,
                                             const ingest_options& options);

}  // namespace rml::actors
