#pragma once
// The control plane on a real etcd (v3.4, Debian's etcd-server), through the JSON gateway
// that etcd serves on its client port (/v3/kv/*, /v3/lease/*, /v3/watch).
//
// Why the gateway and not gRPC: it is the same server's same gRPC handlers (etcd translates
// each JSON request into the gRPC call in-process), so compare, transaction, lease and watch
// semantics are etcd's exactly; 64-bit numbers travel as decimal strings (no precision lost);
// it needs no generated code (gRPC and the gogo-annotated .proto files would add protoc,
// grpc_cpp_plugin and several -dev packages to the build). What it costs: JSON instead of
// protobuf on the wire, one HTTP round trip per lease renewal, one connection per watch. A
// control plane does a few calls per node per second, so neither matters here.
//
// Delivery guarantees: a unary call whose request could not be sent is retried on the next
// endpoint; one that was sent and got no answer is an io_error and is not retried (a
// transaction must not run twice: the caller re-reads and decides). Watches run on a thread
// each and resume after a lost connection from the revision after the last one delivered,
// so no revision is skipped or repeated; a resume from a compacted revision delivers
// `cancelled` with the compact revision, as etcd does.
//
// TLS: https:// endpoints verify etcd's certificate against a CA (and that it names the
// host), and present a client certificate when one is given (etcd's --client-cert-auth).
//
// Thread-safe: unary calls share one connection under a mutex; watch callbacks run on their
// watch's thread (a callback may call the plane, and may cancel its own watch).

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "topologies/control_plane.hpp"

namespace rml::control {

struct etcd_options {
  /// Client URLs, "http://host:port" or "https://host:port" (tried in order).
  std::vector<std::string> endpoints{"http://127.0.0.1:2379"};
  /// For https:// endpoints: the CA etcd's certificate must chain to (empty: the system's),
  /// and this client's certificate and key (PEM), for an etcd that requires client
  /// certificates (--client-cert-auth). etcd's certificate must name the endpoint's host.
  std::string ca_file, cert_file, key_file;
  /// Each unary call's limit (connect, send, answer).
  std::chrono::milliseconds request_timeout{5000};
  /// How long a watch waits before connecting again after losing its connection.
  std::chrono::milliseconds watch_retry{200};
};

/// "http://a:1,https://b:2" (etcdctl's --endpoints) as endpoints; the error names the URL.
result<std::vector<std::string>> parse_etcd_endpoints(const std::string& text);

class etcd_control_plane final : public control_plane {
 public:
  /// Connects and reads the current revision, so a wrong address fails here, naming it.
  static result<std::unique_ptr<etcd_control_plane>> connect(const etcd_options& options);
  ~etcd_control_plane() override;

  /// etcd's leases live whole seconds: `ttl` is rounded up to one.
  result<lease_id> grant(std::chrono::milliseconds ttl) override;
  result<std::chrono::milliseconds> keep_alive(lease_id lease) override;
  status revoke(lease_id lease) override;
  result<transaction_result> commit(const transaction& request) override;
  result<std::vector<key_value>> range(const key_range& keys, revision at = 0) override;
  result<revision> current_revision() override;
  result<watch_id> watch(const key_range& keys, revision from, watch_callback deliver) override;
  void cancel(watch_id watch) override;

  /// Forgets history before `up_to` (etcd's compaction), for tests of re-listing.
  status compact(revision up_to);

  struct implementation;

 private:
  explicit etcd_control_plane(std::unique_ptr<implementation> self);
  std::unique_ptr<implementation> self_;
};

}  // namespace rml::control
