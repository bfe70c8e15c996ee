#pragma once
// How components on different nodes find each other. Every component finds its peers by
// name in its actor system's registry (messaging/atoms.hpp names) and keeps doing so in a
// cluster: a peer placed on another node is entered there as a proxy, so no component knows
// whether its trainer or registry is local or remote.
//
// Each node publishes a *node directory* on its BASP port: it answers a name with the actor
// registered under it on that node (local actors only, never a proxy of a third node). A
// node's *peer resolver* is told where each name it does not run lives (the placement's
// node address); it connects to that node, asks its directory, enters the proxy in the
// local registry and monitors it. A name several nodes run (serving replicas) has them all
// as candidates, this node's preferred first: when the candidates change and another comes
// first, the name moves to it (a serving replica added takes the work of the nodes that
// prefer it). When the proxy goes down (the remote component restarted, or its node was
// lost: BASP kills a lost node's proxies at once) the entry is erased and the name resolved
// again at once, on another candidate first: predictions forwarded to a lost node's serving
// move to a surviving one without waiting for its lease to expire.
//
// Everything is asynchronous with a timeout (the middleman actor's connect, the directory's
// answer): CAF's blocking `remote_lookup` waits up to five minutes on a node that went
// silent, and the node's lease renewals must never wait on a peer.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace rml::topologies {

/// The actor a node publishes on its BASP port; asked (get_atom, name) it answers the
/// strong_actor_ptr registered locally under the name (null when none is, or only a proxy;
/// for serving, also while it is not ready: no model yet, or draining).
caf::actor spawn_node_directory(caf::actor_system& system);

/// Publishes `directory` on host:port (0: any free); returns the port. With `tls` over CAF's
/// OpenSSL module (the system must have loaded caf::openssl::manager with a certificate, its
/// key and a CA: peers must present a certificate that CA signed, both ways).
caf::expected<std::uint16_t> publish_node_directory(const caf::actor& directory, std::uint16_t port, const std::string& host, bool tls);

/// Works around CAF 0.17.6's OpenSSL module: after a failed handshake it leaves OpenSSL's
/// per-thread error queue filled (the only code that drains it is a log statement Debian's
/// build compiles out), and SSL_get_error() then reports the next read of *any* connection
/// on the multiplexer thread as a failure, dropping healthy peers. This clears the queue on
/// that thread every `period`, which narrows the window without closing it. What it finds
/// there is the reason a handshake failed — this node refused a peer's certificate
/// ("certificate verify failed"), or the peer refused this node's ("tlsv1 alert unknown
/// ca": it trusts another CA), or a connection cut mid-record — and it is logged on stderr as
/// "rml node NODE: TLS with a peer failed (a refused handshake, or a connection cut):
/// REASON" (one line a second at most, with a count of the ones not shown): CAF itself says
/// nothing of it. Returns the actor doing it (exit it to stop).
caf::actor spawn_tls_error_queue_sweeper(caf::actor_system& system, std::chrono::milliseconds period, std::string node_name);

struct peer_resolver_options {
  /// How long a connect or a directory's answer may take before the name is tried again.
  std::chrono::milliseconds timeout{2000};
  /// How often unresolved names are tried.
  std::chrono::milliseconds retry{250};
  /// Connect over TLS (caf::openssl::manager loaded): the peers publish with `tls` too.
  bool tls = false;
  /// Called in the resolver's context each time a name gets a (new) remote actor: the name,
  /// the node's address, the actor.
  std::function<void(caf::actor_system&, caf::atom_value, const std::string&, const caf::actor&)> resolved;
  /// Called once per failure streak of a name (the first failure after a success or a new
  /// address): name, address, why.
  std::function<void(caf::atom_value, const std::string&, const std::string&)> failed;
};

/// The resolver. Messages:
///   (put_atom, atom_value name, std::string host_ports)  resolve `name` on one of these nodes
///                                                        (comma-separated, preferred first);
///                                                        when its actor goes down, another
///                                                        is tried at once
///   (delete_atom, atom_value name)                      stop: the name runs here (or nowhere)
///   (get_atom, atom_value name) -> std::string          the address `name` is resolved to, "" if not
caf::actor spawn_peer_resolver(caf::actor_system& system, peer_resolver_options options = {});

}  // namespace rml::topologies
