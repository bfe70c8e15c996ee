#pragma once
// The KServe V2 (Open Inference Protocol) side of the HTTP endpoint that involves no socket:
// which route a path names, what a request body asks for, and the JSON answers. Pure
// functions over bytes, so the fuzz targets (tests/fuzz) run them without a server. Every
// refusal is an rml::error naming the field and what was wrong; the endpoint turns its code
// into the HTTP status.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "compute/status.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging::v2 {

/// What the paths of the endpoint name.
enum class route_kind : std::uint8_t {
  metrics,          // GET  /metrics
  trace,            // GET  /trace
  dashboard,        // GET  /dashboard
  dashboard_script, // GET  /dashboard/chart.js (Debian's libjs-chart.js)
  server_metadata,  // GET  /v2
  live,             // GET  /v2/health/live
  ready,            // GET  /v2/health/ready
  model_metadata,   // GET  /v2/models/{m}[/versions/{v}]
  model_ready,      // GET  /v2/models/{m}[/versions/{v}]/ready
  infer,            // POST /v2/models/{m}[/versions/{v}]/infer
  feedback,         // POST /v2/models/{m}/feedback     (control: needs the control key)
  policy,           // POST /v2/models/{m}/policy       (control)
  batching,         // POST /v2/models/{m}/batching     (control)
};

struct route {
  route_kind kind = route_kind::live;
  /// The version named in the path; 0 when none was.
  std::uint64_t version = 0;
};

/// The route `target` names on a server of `model`: not_found names the path or the model,
/// invalid_argument a version that is not a number ≥ 1.
result<route> route_of(std::string_view target, const std::string& model);
/// Whether the route takes POST (else GET).
bool takes_post(route_kind kind);
/// Whether the route changes how serving behaves, and so needs the control key.
bool is_control(route_kind kind);

/// Bounds on an infer request's input.
struct input_limits {
  std::uint32_t features = 784;
  std::int64_t rows_max = 65'536;
  /// |feature| at most this (0: any finite value); see messaging/feature_check.hpp.
  float feature_magnitude_max = 1e6f;
};

/// What a parsed infer request asks for.
struct infer_call {
  std::string id;
  predict_request request;
  bool probabilities = true, classes = true;
  bool probabilities_binary = false, classes_binary = false;
  std::int64_t timeout_us = 0;
};

/// Parses an infer body: JSON, or with Triton's binary tensor extension the JSON's length in
/// `inference_header_length` (the Inference-Header-Content-Length header's text) and the
/// raw tensor bytes after it. Features are checked (finite, within the bound) here, once.
/// With a `keeper` (what owns `body`), binary FP32 features are a view of the body, not a copy.
result<infer_call> parse_infer(std::string_view body, const std::string* inference_header_length, const input_limits& limits,
                               std::shared_ptr<const void> keeper = nullptr);

/// The infer answer: the body (JSON, then any binary outputs) and, when binary outputs follow
/// it, the JSON's length. `reply` holds only finite values (serving guarantees it).
std::pair<std::string, std::size_t> infer_response(const infer_call& call, const predict_reply& reply, const std::string& model);

/// The request id serving sees: the client's id when it is a decimal number, else a hash.
std::uint64_t numeric_id(std::string_view id);

/// rml extension bodies.
result<prediction_feedback> parse_feedback(std::string_view body);
result<std::string> parse_policy(std::string_view body);

/// A change of batching settings: the fields the body named.
struct batching_change {
  std::optional<std::uint32_t> batch_rows_max, queue_requests_max;
  std::optional<std::int64_t> queue_delay_max_us, latency_objective_us;
  std::optional<bool> adaptive;
  batching_settings applied_to(batching_settings settings) const;
};
result<batching_change> parse_batching(std::string_view body);

/// JSON answers.
std::string batching_json(const batching_settings& settings);
/// Model metadata for a loaded version (0: the serving one).
std::string metadata_json(const serving_info& info);
std::string server_metadata_json();
/// {"error": message}, the message made valid UTF-8 (it may quote what a client sent).
std::string error_json(std::string_view message);

}  // namespace rml::messaging::v2
