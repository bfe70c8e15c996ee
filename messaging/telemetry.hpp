#pragma once
// Where one node's components put their metrics and trace events. Whoever builds a node —
// `rml run`'s pipeline, a test, the simulator with several nodes in one process — makes one
// and hands it to each component in its options; a component that starts others (the router
// its lanes, a lane its replicas) hands its own on. Nothing reaches for a process-wide one,
// so two nodes in one process never mix their series or their trace.

#include <memory>

#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"

namespace rml::messaging {

struct telemetry {
  /// Rendered on the node's /metrics.
  std::shared_ptr<metrics::registry> metrics = std::make_shared<metrics::registry>();
  /// Served on the node's /trace (and written to `rml run --trace FILE`).
  std::shared_ptr<trace_log> trace = std::make_shared<trace_log>();
};

}  // namespace rml::messaging
