#pragma once
// A serving lane: dynamic batching in front of a pool of serving replicas of one model.
//
// Requests wait in one queue ordered by deadline (earliest first); a batch closes when it is
// full, when the first request has waited the maximum queue delay, when a deadline would
// otherwise be missed, or when a replica becomes free with requests waiting — and every
// batch records which (a counter per reason, a Prometheus counter, a trace event). Requests
// whose deadline passed are answered with a deadline error, never computed; beyond the queue
// bound requests are refused `overloaded` at once. The adaptive mode (AIMD, as in the
// Clipper paper) grows the batch size while batches finish within the latency objective and
// halves it when one does not. Settings change at run time.
//
// The pool: batches go to the replica with the fewest batches outstanding. The replicas are
// the children of a dynamic supervisor (supervision/dynamic_supervisor.hpp) that the lane
// owns: one that crashes is restarted by it (within the pool's restart intensity, beyond
// which the supervisor and then the lane exit, for the lane's own supervisor to decide) and
// announced to the lane (child_replaced); the lane monitors each replica, and the requests of
// the batches it held go back into the queue — they keep their deadlines and are served by
// another replica, so each still gets exactly one answer. Autoscaling looks at the load
// every `scale_interval`: a backlog for `scale_up_after` looks in a row adds a replica, an
// idle replica for `scale_down_after` looks removes one; the two thresholds and dwell times
// differ (hysteresis) and any change resets both counts. Because the queue is shared, a new
// replica takes queued work at once: that is the rebalancing.
//
// A bounded prediction cache (prediction_cache.hpp) answers a request whose features the lane
// already answered with the version it now serves, at once and without queueing; answers of
// an older version are never reused.
//
// Answers go straight to whoever asked: a burst's sender (an endpoint's ledger, passed on
// by the router as the burst's sender) or a request's promise; a burst without a sender (the
// router's shadow mirror) is computed and answered to nobody. How each request ended goes to
// `report_to` (the router) in one messaging::lane_outcomes per message handled. A lane that
// is told to exit (a linked actor died, its supervisor stops it) or whose handler throws
// answers everything it holds with `not_ready` first; only a kill, which no actor sees, leaves
// its requests to their endpoints' deadlines.

#include <caf/typed_actor.hpp>

#include <functional>

#include "actors/serving/replica.hpp"
#include "compute/status.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

using batcher_actor = caf::typed_actor<
    caf::replies_to<messaging::predict_request>::with<messaging::predict_reply>,
    caf::reacts_to<messaging::predict_burst>,
    caf::reacts_to<messaging::batching_settings>,
    caf::reacts_to<messaging::model_snapshot>,
    caf::replies_to<messaging::status_atom>::with<messaging::lane_status>>;

/// Why a batch closed.
enum class batch_close_reason : std::uint8_t { full, delay_expired, deadline_pressure, replica_free };
const char* to_string(batch_close_reason reason);

struct replica_pool_settings {
  std::uint32_t replicas_min = 1;
  std::uint32_t replicas_max = 1;
  /// Batches one replica holds at once (one computing, the rest in its mailbox).
  std::uint32_t batches_per_replica_max = 1;
  /// How often the pool looks at its load to scale.
  std::chrono::milliseconds scale_interval{250};
  /// Looks in a row with a backlog (a full round of batches queued, or requests waiting
  /// longer than the queue delay plus half the latency objective) before adding a replica.
  std::uint32_t scale_up_after = 2;
  /// Looks in a row with an idle replica and no backlog before removing one.
  std::uint32_t scale_down_after = 20;
  /// Crashed replicas restarted per restart window at most; beyond, the lane exits.
  std::uint32_t restarts_max = 10;
  std::chrono::milliseconds restart_window{10'000};
  /// Times a request goes back to the queue because its replica crashed, at most.
  std::uint32_t retries_max = 2;
  /// Looks at the load every `scale_interval` even when it cannot scale (min = max), and
  /// counts what each look found (read_lane_load): a cluster node's load report.
  bool report_load = false;
};

struct batcher_options {
  messaging::batching_settings settings;
  /// Features per row the model takes: a request that does not fit is refused before it can
  /// spoil a batch.
  std::uint32_t features = 784;
  /// Names for metrics and the trace: the model served and this lane's role ("main",
  /// "canary", "shadow", "v7").
  std::string model = "model";
  std::string lane = "main";
  replica_pool_settings pool;
  /// Predictions remembered per lane (least recently used out); 0 turns the cache off.
  std::size_t cache_entries_max = 4096;
  /// Options of the replicas the lane spawns.
  serving_options replica;
  /// Spawns one replica (tests hand in fakes); empty: spawn_serving_replica(replica).
  std::function<serving_actor(caf::actor_system&)> spawn_replica;
  /// Where its metrics and trace events go (messaging/telemetry.hpp); the router hands in its
  /// own, and the lane hands it to its replicas.
  messaging::telemetry telemetry;
  /// Who hears how each request ended (messaging::lane_outcomes): the router; none when null.
  caf::actor_addr report_to;
};

/// Checks the settings; the error names the field.
status validate(const batcher_options& options);

batcher_actor spawn_batcher(caf::actor_system& system, const batcher_options& options);

/// A lane's load so far, from its series in `registry` (cumulative since the registry began;
/// the difference of two readings is the load between them): its looks, the looks that
/// found a backlog, the replica time spent computing, and the replicas running now.
struct lane_load {
  double looks = 0;
  double backlog_looks = 0;
  double busy_seconds = 0;
  double replicas = 0;
};
lane_load read_lane_load(messaging::metrics::registry& registry, const std::string& model, const std::string& lane = "main");

}  // namespace rml::actors
