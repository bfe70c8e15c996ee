#pragma once
// Dynamic batching in front of a serving replica. Requests wait in a queue ordered by
// deadline (earliest first); a batch closes when it is full, when the first request has
// waited the maximum queue delay, when a deadline would otherwise be missed, or when the
// replica becomes free with requests waiting — and every batch records which (a counter per
// reason in the metrics). Requests whose deadline passed are answered with a deadline error,
// never computed; beyond the queue bound requests are refused `overloaded` at once. The
// adaptive mode (AIMD, as in the Clipper paper) grows the batch size while batches finish
// within the latency objective and halves it when one does not. Settings change at run time.
//
// Each request still gets exactly one answer: its own rows of the batch's reply, or an error.

#include <caf/typed_actor.hpp>

#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"

namespace rml::actors {

using batcher_actor = caf::typed_actor<
    caf::replies_to<messaging::predict_request>::with<messaging::predict_reply>,
    caf::reacts_to<messaging::batching_settings>,
    caf::replies_to<messaging::status_atom>::with<std::map<std::string, double>>>;

/// Why a batch closed.
enum class batch_close_reason : std::uint8_t { full, delay_expired, deadline_pressure, replica_free };
const char* to_string(batch_close_reason reason);

struct batcher_options {
  messaging::batching_settings settings;
  /// Features per row the model takes: a request that does not fit is refused before it can
  /// spoil a batch.
  std::uint32_t features = 784;
  /// The replica to send batches to, by registered name.
  caf::atom_value replica = messaging::names::serving;
};

batcher_actor spawn_batcher(caf::actor_system& system, const batcher_options& options);

}  // namespace rml::actors
