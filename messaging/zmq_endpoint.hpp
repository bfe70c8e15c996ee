#pragma once
// A ZeroMQ endpoint: a ROUTER socket on its own thread that decodes frames (messaging/
// wire.hpp), refuses malformed ones at once with an error frame, and hands the rest to the
// actor registered under a name (serving or ingest) through a bounded number of requests in
// flight; answers and errors come back as frames to the client that asked. Many clients,
// pipelined requests: replies carry the request or batch id. Predict requests are held by
// the endpoint's request ledger (messaging/request_ledger.hpp), an actor: it takes each
// receive burst from the socket thread, keeps every request until it is answered (its
// holder watched, its deadline kept with one timer) and hands the answers back with their
// clients' routes; the socket thread keeps only what sending needs (per-client bounds and
// queues).
//
// The socket thread blocks in zmq::poll on the socket and an eventfd the reply path signals:
// no busy polling. Requests beyond the in-flight bound, or beyond one client's own bound, get
// an `overloaded` error frame at once, so memory stays bounded under any offered load. The
// target is looked up by name for every request, so a restarted serving replica or ingest
// actor is found.
//
// No answer is dropped silently: the ROUTER socket is ZMQ_ROUTER_MANDATORY, so a send to a
// client whose pipe is full fails visibly instead of being discarded (ZeroMQ's default past
// its high-water mark); such answers wait in that client's queue here and go out as it
// reads. A request stays in its client's in-flight count until its answer is handed to
// ZeroMQ, so one client's queue holds at most its bound of computed answers; refusals queue
// behind them up to 16 times the bound, beyond which a client that keeps sending without
// reading loses refusals (counted). Answers for a client that has disconnected are counted
// as undeliverable. A frame over the size limit is answered
// with an error naming its request; only one over the hard cap (twice the limit) makes
// libzmq drop the connection before rml sees it.

#include <caf/actor_system.hpp>

#include <atomic>
#include <memory>
#include <string>

#include "compute/status.hpp"
#include "messaging/at_most_once.hpp"
#include "messaging/telemetry.hpp"
#include "messaging/wire.hpp"

namespace rml::messaging {

enum class endpoint_role : std::uint8_t { predict, ingest };

struct zmq_endpoint_options {
  endpoint_role role = endpoint_role::predict;
  /// ZeroMQ address to bind: 127.0.0.1 unless told otherwise; port 0 picks a free one.
  std::string bind = "tcp://127.0.0.1:5556";
  /// Registered name of the actor that answers (messaging/atoms.hpp names).
  caf::atom_value target = caf::atom("serving");
  /// A prediction that finds no serving actor waits for one until its deadline instead of
  /// failing `not_ready` at once: on a cluster node, whose serving may be on another node
  /// that was just lost (request_ledger.hpp).
  bool wait_for_target = false;
  /// Stamped on requests sent to serving on another node (request_ledger.hpp); null: the
  /// process's CAF node id, for a process that is no cluster node.
  std::shared_ptr<const sender_identity> identity;
  /// Features every row (predict) or event (ingest) must have.
  std::uint32_t features = 784;
  /// Requests handed to the target and not yet answered; beyond it, `overloaded` at once.
  std::size_t in_flight_max = 1024;
  /// Requests one client (one connected peer) may have admitted and not yet answered;
  /// beyond it, `overloaded` at once. The socket's send high-water mark is set above it.
  std::size_t client_in_flight_max = 1000;
  /// How long the target may take when the client gave no timeout.
  std::chrono::milliseconds default_timeout{30'000};
  wire::frame_limits limits;
  /// Where its counters go (messaging/telemetry.hpp).
  messaging::telemetry telemetry;
};

/// Counters of an endpoint, readable from any thread.
struct endpoint_counters {
  std::atomic<std::uint64_t> frames{0};
  std::atomic<std::uint64_t> malformed{0};
  std::atomic<std::uint64_t> overloaded{0};
  std::atomic<std::uint64_t> answered{0};
  std::atomic<std::uint64_t> failed{0};
  /// Answers for clients that had disconnected by the time they were ready.
  std::atomic<std::uint64_t> undeliverable{0};
  /// Refusals not sent because their client kept sending without reading: 16 times its
  /// in-flight bound of answers were already queued for it.
  std::atomic<std::uint64_t> refusals_dropped{0};
};

class zmq_endpoint {
 public:
  /// Binds and starts the socket thread; the error names the address.
  static result<std::unique_ptr<zmq_endpoint>> start(caf::actor_system& system, const zmq_endpoint_options& options);
  /// Stops the thread and closes the socket; requests in flight are answered by nobody.
  ~zmq_endpoint();

  /// The address actually bound ("tcp://127.0.0.1:40123").
  const std::string& address() const;
  const endpoint_counters& counters() const;

  struct implementation;

 private:
  explicit zmq_endpoint(std::unique_ptr<implementation> self);
  std::unique_ptr<implementation> self_;
};

}  // namespace rml::messaging
