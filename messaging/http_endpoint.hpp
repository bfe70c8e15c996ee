#pragma once
// The HTTP endpoint: KServe V2 / Open Inference Protocol on Boost.Beast, plus Prometheus
// metrics and the trace, on one port (127.0.0.1:8000 by default, Triton's convention).
//
//   GET  /v2/health/live                          200 {"live":true}
//   GET  /v2/health/ready                         200 {"ready":true}, 503 while not ready/draining
//   GET  /v2                                      server metadata
//   GET  /v2/models/{m}[/versions/{v}]            model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready      200 / 503
//   POST /v2/models/{m}[/versions/{v}]/infer      inference (JSON, or Triton's binary tensor
//                                                 data extension); inputs FP32, FP64, INT64,
//                                                 INT32, UINT8; outputs "probabilities" FP32
//                                                 [N, classes] and "classes" INT64 [N, top_k]
//   POST /v2/models/{m}/feedback                  rml extension: {"id": "...", "label": n}  (control)
//   POST /v2/models/{m}/policy                    rml extension: {"policy": "canary:10"}    (control)
//   POST /v2/models/{m}/batching                  rml extension: batching settings          (control)
//   GET  /metrics                                 Prometheus text format
//   GET  /trace                                   the newest trace events, JSON lines
//
// Errors are HTTP 4xx/5xx with {"error": "..."} naming what was wrong: 400 bad input, 401
// missing or wrong key or token, 403 control endpoints off (no control key), 404 unknown
// model, version or path, 405 wrong method, 413 body over the limit, 415 a control POST that
// is not JSON, 500 a model that answered NaN, 503 overloaded, not ready or too many
// connections, 504 deadline passed. Connections are kept alive. A pipelining client's
// requests are read as a burst (every complete request the read brought, up to 64 owed per
// connection) and go to serving together; their answers are written in request order, those
// ready together in one write.
// Infer requests go to the serving actor registered under `target` (the router), looked up
// per burst so a restarted one is found, through the endpoint's request ledger
// (messaging/request_ledger.hpp): it holds each until answered, fails those whose holder
// dies, and answers 504 a grace period past a deadline should serving hang.
//
// Access (as Triton's --http-restricted-api): the control routes need
// `Authorization: Bearer <control_key>` and `Content-Type: application/json` (so no web page
// can send them as a CORS "simple request"); with no control key they are refused. Inference
// needs `Authorization: Bearer <infer_token>` when a token is set. With a certificate and
// key the endpoint speaks HTTPS only (TLS 1.2 or later, OpenSSL through Boost.Beast).
//
// Limits: a connection must deliver each whole request within `request_timeout` (slow
// clients cannot hold connections), and a response must be taken within `write_timeout`;
// beyond `connections_max` a new connection is answered 503 and closed. On stop, requests
// already received on a connection (pipelined) are still answered before it closes.

#include <caf/actor_system.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "compute/status.hpp"
#include "messaging/at_most_once.hpp"
#include "messaging/atoms.hpp"
#include "messaging/telemetry.hpp"

namespace boost::asio {
class io_context;
}

namespace rml::messaging {

struct http_endpoint_options {
  std::string host = "127.0.0.1";
  /// 0 picks a free port.
  int port = 8000;
  caf::atom_value target = names::serving;
  /// A prediction that finds no serving actor waits for one until its deadline instead of
  /// failing `not_ready` at once: on a cluster node, whose serving may be on another node
  /// that was just lost (request_ledger.hpp).
  bool wait_for_target = false;
  /// Stamped on requests sent to serving on another node (request_ledger.hpp); null: the
  /// process's CAF node id, for a process that is no cluster node.
  std::shared_ptr<const sender_identity> identity;
  /// The model served, as it appears in /v2/models/{name}.
  std::string model = "model";
  std::uint32_t features = 784;
  /// Request bodies larger than this get 413.
  std::size_t body_bytes_max = 64u << 20;
  /// Requests handed to serving and not yet answered; beyond it 503 at once.
  std::size_t in_flight_max = 4096;
  /// Connections open at once; beyond it new ones are closed at once.
  std::size_t connections_max = 1024;
  /// How long serving may take when the request sets no "timeout" parameter (µs).
  std::chrono::milliseconds default_timeout{30'000};
  /// Threads running the event loop.
  int threads = 1;
  /// |feature| at most this (0: any finite value); messaging/feature_check.hpp.
  float feature_magnitude_max = 1e6f;
  /// The key the control routes need (`Authorization: Bearer <key>`); empty: they are refused.
  std::string control_key;
  /// When set, inference needs `Authorization: Bearer <token>`.
  std::string infer_token;
  /// PEM files of the certificate (chain) and its private key: both for HTTPS, or neither.
  std::string tls_certificate_file, tls_key_file;
  /// How long a connection may take to deliver a whole request (from its opening or its
  /// previous answer); beyond it the connection is closed.
  std::chrono::milliseconds request_timeout{10'000};
  /// How long a client may take to read an answer; beyond it the connection is closed.
  std::chrono::milliseconds write_timeout{30'000};
  /// Where its counters go, and what /metrics and /trace serve (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
};

class http_endpoint {
 public:
  /// Binds and starts serving; the error names the address.
  static result<std::unique_ptr<http_endpoint>> start(caf::actor_system& system, const http_endpoint_options& options);
  /// Stops accepting, gives requests in flight up to `grace` to be answered, then closes.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5'000));
  ~http_endpoint();

  int port() const;
  /// Requests answered (any status) and requests in flight.
  std::uint64_t answered() const;
  std::size_t in_flight() const;

  struct implementation;

 private:
  http_endpoint(std::shared_ptr<implementation> self, std::unique_ptr<boost::asio::io_context> io);
  std::shared_ptr<implementation> self_;
  std::unique_ptr<boost::asio::io_context> io_;
};

}  // namespace rml::messaging
