#pragma once
// The front door of serving: decides which model version answers each request (the version
// policy), sends it to that version's lane (actors/serving/batcher: a batching queue and a
// pool of replicas), learns from labelled feedback, and drains gracefully.
//
// Version policies (`parse_version_policy`):
//   latest            every request to the newest version the registry published
//   pinned:V          every request to version V
//   canary:P          P % of requests to the newest version (the candidate), the rest to the
//                     stable one; once both have `feedback_min` labelled answers the
//                     candidate is promoted if its live accuracy is within
//                     `accuracy_tolerance` of the stable's and its p99 latency within
//                     `latency_ratio_max` (plus slack), else rolled back (dropped). Versions
//                     published meanwhile wait; the newest becomes the next candidate.
//   shadow            answers from the stable version; every request is mirrored to the
//                     newest version, whose answers are compared (agreement, live accuracy,
//                     latency) and never returned
//   bandit:V1,V2,...  Exp3 (as in Clipper) over the listed versions, rewarded by labelled
//                     feedback (1 when the top class was right), however late it comes
// A request naming a version (`model_version`, the HTTP path's /versions/V) goes to that
// version whatever the policy; versions not in a lane are loaded from the registry.
//
// Feedback (`prediction_feedback`) names a request id and its true label: the router keeps
// the last `feedback_window` predictions to match them. Request ids must be unique among
// the predictions that may get feedback.
//
// The router holds no request: it passes a burst (messaging::predict_burst) on to the lane it
// chose, as the burst's sender's — once per burst under latest and pinned, request by
// request under the other policies — and tells the sender which lane holds its requests
// (burst_routed). The lane answers the sender straight and reports to the router how each
// request ended (lane_outcomes): the policy's bookkeeping (in-flight counts, latency, live
// accuracy, shadow agreement) comes from those. Only a request asked with a promise (from
// inside the process) is answered through the router.
//
// Exactly one answer per request: a lane whose replicas crash retries on another replica
// (actors/serving/batcher); a lane that is stopped or throws answers what it holds first; a
// lane killed holding requests leaves them to their senders, which watch it and fail them
// (messaging/actor_bridge). Lanes are restarted by the router's lanes supervisor (a
// supervision::dynamic_supervisor whose children are the lanes, started with their role),
// whose child_replaced tells the router to load the lane's version into the new one —
// within `lane_restarts_max` per `lane_restart_window`, beyond which that supervisor stops
// and the router answers everything it holds and exits for its own supervisor. Drain (`drain_atom`): admission stops (requests get
// `not_ready`), readiness turns false, the requests already admitted finish; the reply says
// how many were still unanswered when the drain's time ran out (0 when all finished).
//
// On a cluster node (`follow_model_pointer`) the registry's pushes are held until the
// cluster's model pointer reaches them (model_pointer_atom), then taken as above.

#include <caf/typed_actor.hpp>

#include <atomic>
#include <memory>

#include "actors/serving/batcher.hpp"
#include "compute/status.hpp"
#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::actors {

using router_actor = caf::typed_actor<
    caf::replies_to<messaging::predict_request>::with<messaging::predict_reply>,
    caf::reacts_to<messaging::predict_burst>,
    caf::reacts_to<messaging::predict_answers>,
    caf::reacts_to<messaging::lane_outcomes>,
    caf::reacts_to<messaging::model_snapshot>,
    caf::reacts_to<messaging::rollback_atom, messaging::model_snapshot>,
    caf::reacts_to<messaging::model_pointer_atom, std::uint64_t>,
    caf::replies_to<messaging::status_atom>::with<messaging::serving_status>,
    caf::reacts_to<messaging::batching_settings>,
    caf::replies_to<messaging::prediction_feedback>::with<bool>,
    caf::replies_to<messaging::policy_atom, std::string>::with<std::string>,
    caf::replies_to<messaging::info_atom>::with<messaging::serving_info>,
    caf::replies_to<messaging::drain_atom, std::int64_t>::with<std::uint64_t>>;

struct version_policy {
  enum class kind : std::uint8_t { latest, pinned, canary, shadow, bandit };
  kind type = kind::latest;
  std::uint64_t pinned_version = 0;
  /// Share of requests sent to the canary, in (0, 1).
  double canary_fraction = 0.1;
  /// Versions the bandit chooses among.
  std::vector<std::uint64_t> arms;
};

/// Parses a policy spec (see above); the error names the spec and what was wrong.
result<version_policy> parse_version_policy(const std::string& spec);
std::string to_string(const version_policy& policy);

struct canary_settings {
  /// Labelled answers each of the candidate and the stable version needs before a decision.
  std::uint32_t feedback_min = 200;
  /// The candidate is promoted when its accuracy ≥ stable's − this …
  double accuracy_tolerance = 0.01;
  /// … and its p99 latency ≤ stable's × this + `latency_slack_us`.
  double latency_ratio_max = 1.5;
  std::int64_t latency_slack_us = 2'000;
};

struct router_options {
  /// The model's name (metrics, metadata, the HTTP path).
  std::string model = "model";
  std::string policy = "latest";
  /// How every lane batches and scales (lane name and model are set per lane).
  batcher_options lane;
  canary_settings canary;
  /// Exp3's exploration rate γ in (0, 1].
  double bandit_exploration = 0.1;
  /// Seeds canary and bandit choices.
  std::uint64_t seed = 1;
  /// Predictions remembered for feedback.
  std::size_t feedback_window = 65'536;
  /// Lanes for versions requested by number, beyond the policy's, at most (least recently
  /// used out).
  std::size_t pinned_lanes_max = 4;
  /// Lanes restarted after a crash per window at most; beyond, the router answers what it
  /// holds with errors and exits (restart_intensity_exceeded) for its own supervisor.
  std::uint32_t lane_restarts_max = 10;
  std::chrono::milliseconds lane_restart_window{10'000};
  /// Where versions not in a lane are loaded from (registered name).
  caf::atom_value registry = messaging::names::registry;
  /// On a cluster node: a version pushed by the registry becomes the latest only once the
  /// cluster's model pointer (etcd's `desired/models/<model>`, moved forward only by the
  /// elected controller, told here with model_pointer_atom) has reached it; until then it is
  /// held (the newest `held_versions_max`). So a registry cut off from etcd with the rest of
  /// the cluster cannot make this side serve a version the cluster does not call latest.
  /// An explicit rollback is not held (it goes below the pointer by design).
  bool follow_model_pointer = false;
  /// The node's last known cluster model pointer, read when the router starts: one its
  /// supervisor restarts knows the pointer at once instead of refusing every request until
  /// the node next tells it (found by `rml sim`'s component-crashes scenario). Null: none.
  std::shared_ptr<const std::atomic<std::uint64_t>> known_model_pointer;
  /// One request in this many to the main lane has its first row sent to monitoring's
  /// input-drift statistics (0: none); the main lane's labelled answers go to its
  /// concept-drift detectors as error bits whatever this is.
  std::uint32_t drift_sample_every = 16;
  /// Where its metrics and trace events go (messaging/telemetry.hpp); its lanes get the same.
  messaging::telemetry telemetry;
};

/// Checks the options; the error names the field.
status validate(const router_options& options);

router_actor spawn_router(caf::actor_system& system, const router_options& options);

}  // namespace rml::actors
