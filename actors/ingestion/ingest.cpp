#include "actors/ingestion/ingest.hpp"

#include <caf/all.hpp>

#include <cmath>

#include "messaging/reporting.hpp"
#include "messaging/errors.hpp"
#include "messaging/feature_check.hpp"

namespace rml::actors {
namespace {
using flush_atom = caf::atom_constant<caf::atom("flush")>;

struct waiting_batch {
  messaging::event_batch batch;
  caf::typed_response_promise<messaging::event_acked> promise;
};

struct ingest_state {
  std::shared_ptr<messaging::event_log> log;
  ingest_options options;
  std::vector<waiting_batch> waiting;
  bool flush_scheduled = false;
  std::uint64_t batches = 0, appended = 0, duplicates = 0, refused = 0, writes = 0;
  messaging::latency_histogram write_latency;
  static inline const char* name = "rml.ingest";
};

using ingest_pointer = ingest_actor::stateful_pointer<ingest_state>;

/// Appends every waiting batch in one durable write and answers each.
void flush(ingest_pointer self) {
  auto& state = self->state;
  state.flush_scheduled = false;
  std::vector<waiting_batch> batches = std::move(state.waiting);
  state.waiting.clear();
  std::vector<messaging::event_batch> contents;
  contents.reserve(batches.size());
  for (auto& entry : batches) contents.push_back(std::move(entry.batch));
  const std::int64_t started_us = messaging::clock_us(self);
  auto acks = state.log->append(contents);
  state.write_latency.record(double(messaging::clock_us(self) - started_us));
  ++state.writes;
  state.batches += batches.size();
  if (acks) {
    for (const auto& ack : *acks) {
      state.appended += ack.appended;
      state.duplicates += ack.duplicates;
    }
  }
  {  // one sample per durable write: a write costs an fsync, a sample far less
    std::map<std::string, double> values{{"batches", double(state.batches)},       {"events_appended", double(state.appended)},
                                         {"waiting_batches", double(batches.size())},
                                         {"duplicates", double(state.duplicates)}, {"refused", double(state.refused)},
                                         {"durable_writes", double(state.writes)}, {"log_end_offset", double(state.log->end_offset())}};
    messaging::add_latency(values, "durable_write", state.write_latency);
    messaging::report_metrics(self->system(), "ingest", messaging::clock_us(self), std::move(values));
  }
  for (std::size_t index = 0; index < batches.size(); ++index) {
    if (acks) {
      batches[index].promise.deliver((*acks)[index]);
    } else {
      batches[index].promise.deliver(messaging::to_caf_error(acks.error()));
    }
  }
}

ingest_actor::behavior_type ingest(ingest_pointer self, std::shared_ptr<messaging::event_log> log,
                                   ingest_options options) {
  self->state.log = std::move(log);
  self->state.options = options;
  // The flush message is not part of the public interface: it is handled by a default
  // handler so that the typed interface stays the batch request alone.
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& view) -> caf::result<caf::message> {
    if (view.content().match_elements<flush_atom>()) {
      flush(self);
      return caf::message{};
    }
    return caf::sec::unexpected_message;
  });
  return {
      [self](messaging::event_batch& batch) -> caf::result<messaging::event_acked> {
        auto& state = self->state;
        if (auto refused = check_event_batch(batch, state.options)) {
          ++state.refused;
          return messaging::make_error(errc::invalid_argument, *refused);
        }
        if (state.waiting.size() >= state.options.pending_batches_max) {
          ++state.refused;
          return messaging::make_error(errc::overloaded,
                                       "batch " + std::to_string(batch.batch_id) + ": ingest has " +
                                           std::to_string(state.waiting.size()) + " batches waiting (the bound)");
        }
        auto promise = self->make_response_promise<messaging::event_acked>();
        state.waiting.push_back({std::move(batch), promise});
        if (!state.flush_scheduled) {
          // Queued behind every batch already in the mailbox: they all join this write.
          state.flush_scheduled = true;
          caf::anon_send(caf::actor_cast<caf::actor>(self), flush_atom::value);
        }
        return promise;
      },
  };
}
}  // namespace

std::optional<std::string> check_event_batch(const messaging::event_batch& batch, const ingest_options& options) {
  const std::string where = "batch " + std::to_string(batch.batch_id);
  if (batch.events.empty()) return where + ": no events";
  if (batch.events.size() > options.batch_events_max) {
    return where + ": " + std::to_string(batch.events.size()) + " events, at most " +
           std::to_string(options.batch_events_max);
  }
  for (const messaging::event& fact : batch.events) {
    // Made only for an error: a string per event would cost an allocation on every one.
    const auto which = [&] { return where + ": event " + std::to_string(fact.id); };
    const auto& values = fact.features.values;
    if (values.size() != options.feature_count) {
      return which() + ": " + std::to_string(values.size()) + " features, expected " + std::to_string(options.feature_count);
    }
    if (auto checked = messaging::check_features(values, options.feature_count, options.feature_magnitude_max, "", nullptr); !checked) {
      return which() + checked.error().message();
    }
    if (fact.label != messaging::no_label && (fact.label < 0 || fact.label >= options.classes)) {
      return which() + ": label " + std::to_string(fact.label) + " outside [0, " + std::to_string(options.classes) + ")";
    }
  }
  return std::nullopt;
}

ingest_actor spawn_ingest(caf::actor_system& system, std::shared_ptr<messaging::event_log> log,
                          const ingest_options& options) {
  RML_ASSERT(log != nullptr);
  return system.spawn(ingest, std::move(log), options);
}

}  // namespace rml::actors
