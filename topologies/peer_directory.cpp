#include "topologies/peer_directory.hpp"

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/io/middleman_actor.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <openssl/err.h>

#include "messaging/atoms.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <map>
#include <vector>
#include <set>

namespace rml::topologies {
namespace {

// Suspicions are timed on the actor clock (DESIGN.md contract 5): virtual in a simulation.
using clock_point = caf::actor_clock::time_point;

struct wanted_name {
  /// The nodes that run the name, in the placement's order of preference.
  std::vector<std::string> candidates;
  /// The one being tried (or last tried).
  std::string address;
  /// The node `proxy` is on ("" while unresolved): kept until another candidate preferred
  /// now answers, so a name never goes unresolved while it moves (make before break).
  std::string proxy_address;
  /// Candidates that failed or whose actor went down recently: tried after the others.
  std::map<std::string, clock_point> suspect_until;
  /// The remote actor entered in the registry; null while unresolved.
  caf::actor proxy;
  bool pending = false;
  /// Told its failure since the last success or address change.
  bool failure_told = false;
  /// Bumped on every address change: an answer to an older attempt is ignored.
  std::uint64_t attempt = 0;
};

void unregister(caf::actor_system& system, caf::atom_value name, const caf::actor& proxy);

struct resolver_state {
  peer_resolver_options options;
  std::map<caf::atom_value, wanted_name> names;
  caf::actor_system* system = nullptr;
  // Leaving, the resolver takes its proxies out of the registry (the state goes before the
  // actor's attached functors run, so here).
  ~resolver_state() {
    if (system == nullptr) return;
    for (auto& [name, wanted] : names) unregister(*system, name, wanted.proxy);
  }
  static inline const char* name = "rml.peer_resolver";
};

using resolver_pointer = caf::stateful_actor<resolver_state>*;

/// Erases `name` from the registry if it still holds `proxy` (a local component that has
/// registered under it since keeps its entry).
void unregister(caf::actor_system& system, caf::atom_value name, const caf::actor& proxy) {
  if (!proxy) return;
  auto entered = system.registry().get(name);
  if (entered && entered == caf::actor_cast<caf::strong_actor_ptr>(proxy)) system.registry().erase(name);
}

void fail(resolver_pointer self, caf::atom_value name, std::uint64_t attempt, const std::string& why) {
  auto found = self->state.names.find(name);
  if (found == self->state.names.end() || found->second.attempt != attempt) return;
  found->second.pending = false;
  // Another candidate is tried next, this one again a little later.
  found->second.suspect_until[found->second.address] = self->clock().now() + self->state.options.timeout;
  if (found->second.failure_told) return;
  found->second.failure_told = true;
  if (self->state.options.failed) self->state.options.failed(name, found->second.address, why);
}

void enter(resolver_pointer self, caf::atom_value name, std::uint64_t attempt, caf::strong_actor_ptr remote) {
  auto found = self->state.names.find(name);
  if (found == self->state.names.end() || found->second.attempt != attempt) return;
  auto& wanted = found->second;
  wanted.pending = false;
  if (!remote) return fail(self, name, attempt, "no component named " + caf::to_string(name) + " runs there (yet)");
  auto& system = self->system();
  unregister(system, name, wanted.proxy);
  if (wanted.proxy) self->demonitor(wanted.proxy);
  wanted.proxy = caf::actor_cast<caf::actor>(remote);
  wanted.proxy_address = wanted.address;
  wanted.failure_told = false;
  // CAF 0.17's registry keeps the first entry under a name: erase before putting.
  system.registry().erase(name);
  system.registry().put(name, remote);
  self->monitor(wanted.proxy);
  if (self->state.options.resolved) self->state.options.resolved(system, name, wanted.address, wanted.proxy);
}

/// The first candidate not suspected now (or, all suspected, the one whose suspicion ends first).
std::string choose(wanted_name& wanted, clock_point now) {
  std::string best;
  auto best_until = clock_point::max();
  for (const auto& candidate : wanted.candidates) {
    auto suspect = wanted.suspect_until.find(candidate);
    if (suspect == wanted.suspect_until.end() || suspect->second <= now) return candidate;
    if (suspect->second < best_until) best = candidate, best_until = suspect->second;
  }
  return best;
}

void resolve(resolver_pointer self, caf::atom_value name) {
  auto& wanted = self->state.names.at(name);
  const auto chosen = choose(wanted, self->clock().now());
  if (chosen != wanted.address) {
    wanted.address = chosen;
    wanted.failure_told = false;
    ++wanted.attempt;
  }
  const auto colon = wanted.address.rfind(':');
  unsigned long port = 0;
  try {
    port = colon == std::string::npos ? 0 : std::stoul(wanted.address.substr(colon + 1));
  } catch (const std::exception&) {
    port = 0;
  }
  const auto attempt = wanted.attempt;
  if (colon == std::string::npos || port == 0 || port > 65535) {
    return fail(self, name, attempt, "'" + wanted.address + "' is not HOST:PORT");
  }
  wanted.pending = true;
  const auto timeout = self->state.options.timeout;
  auto middleman = self->state.options.tls ? self->system().openssl_manager().actor_handle() : self->system().middleman().actor_handle();
  self->request(middleman, timeout, caf::connect_atom::value, wanted.address.substr(0, colon), std::uint16_t(port))
      .then(
          [self, name, attempt, timeout](const caf::node_id&, caf::strong_actor_ptr& directory, const std::set<std::string>&) {
            if (!directory) return fail(self, name, attempt, "the node publishes no directory on that port");
            self->request(caf::actor_cast<caf::actor>(directory), timeout, caf::get_atom::value, name)
                .then([self, name, attempt](caf::strong_actor_ptr& remote) { enter(self, name, attempt, std::move(remote)); },
                      [self, name, attempt](caf::error& failure) { fail(self, name, attempt, self->system().render(failure)); });
          },
          [self, name, attempt](caf::error& failure) { fail(self, name, attempt, self->system().render(failure)); });
}

void tick(resolver_pointer self) {
  for (auto& [name, wanted] : self->state.names) {
    // Unresolved, or another candidate is preferred now (added, or no longer suspected).
    if (!wanted.pending && !wanted.candidates.empty() && (!wanted.proxy || choose(wanted, self->clock().now()) != wanted.proxy_address)) resolve(self, name);
  }
  self->delayed_send(self, self->state.options.retry, caf::tick_atom::value);
}

caf::behavior peer_resolver(resolver_pointer self, peer_resolver_options options) {
  self->state.options = std::move(options);
  self->set_down_handler([self](caf::down_msg& down) {
    for (auto& [name, wanted] : self->state.names) {
      if (!wanted.proxy || wanted.proxy.address() != down.source) continue;
      unregister(self->system(), name, wanted.proxy);
      wanted.proxy = nullptr;
      const auto lost = std::exchange(wanted.proxy_address, std::string());
      // Its node may be gone (BASP kills a lost node's proxies at once): another node that
      // runs it is tried now, this one after the others. A restarted component on a live
      // node is found again there when no other node runs it.
      wanted.suspect_until[lost] = self->clock().now() + self->state.options.timeout;
      if (!wanted.pending) resolve(self, name);  // another candidate, or this one again once it is back
    }
  });
  self->state.system = &self->system();
  self->send(self, caf::tick_atom::value);
  return {
      [self](caf::tick_atom) { tick(self); },
      [self](caf::put_atom, caf::atom_value name, std::string& addresses) {
        std::vector<std::string> candidates;
        for (std::size_t begin = 0; begin <= addresses.size();) {
          const auto comma = std::min(addresses.find(',', begin), addresses.size());
          if (comma > begin) candidates.push_back(addresses.substr(begin, comma - begin));
          begin = comma + 1;
        }
        auto& wanted = self->state.names[name];
        if (wanted.candidates == candidates) return;
        wanted.candidates = std::move(candidates);
        std::erase_if(wanted.suspect_until, [&](const auto& entry) {
          return std::find(wanted.candidates.begin(), wanted.candidates.end(), entry.first) == wanted.candidates.end();
        });
        const bool still_there = std::find(wanted.candidates.begin(), wanted.candidates.end(), wanted.proxy_address) != wanted.candidates.end();
        if (wanted.proxy && still_there) {
          // Keep it; a replica added ahead of it in this node's order takes this node's work
          // once it answers (it stays registered meanwhile).
          if (!wanted.pending && choose(wanted, self->clock().now()) != wanted.proxy_address) resolve(self, name);
          return;
        }
        unregister(self->system(), name, wanted.proxy);
        if (wanted.proxy) self->demonitor(wanted.proxy);
        wanted.proxy = nullptr;
        wanted.proxy_address.clear();
        wanted.address.clear();
        wanted.pending = false;
        ++wanted.attempt;
        if (!wanted.candidates.empty()) resolve(self, name);
      },
      [self](caf::delete_atom, caf::atom_value name) {
        auto found = self->state.names.find(name);
        if (found == self->state.names.end()) return;
        unregister(self->system(), name, found->second.proxy);
        if (found->second.proxy) self->demonitor(found->second.proxy);
        self->state.names.erase(found);
      },
      [self](caf::get_atom, caf::atom_value name) -> std::string {
        auto found = self->state.names.find(name);
        return found != self->state.names.end() && found->second.proxy ? found->second.proxy_address : std::string();
      },
  };
}

}  // namespace

caf::actor spawn_node_directory(caf::actor_system& system) {
  return system.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {
        [self](caf::get_atom, caf::atom_value name) -> caf::result<caf::strong_actor_ptr> {
          auto found = self->system().registry().get(name);
          // Only what runs on this node: a proxy here would send the asker round a third node.
          if (!found || found->node() != self->system().node()) return caf::strong_actor_ptr();
          if (name != messaging::names::serving) return found;
          // Serving only once it admits requests (a model loaded, not draining): a replica
          // just started would otherwise take a node's predictions to answer them not_ready.
          auto promise = self->make_response_promise<caf::strong_actor_ptr>();
          self->request(caf::actor_cast<caf::actor>(found), std::chrono::seconds(1), messaging::info_atom::value)
              .then([promise, found](const messaging::serving_info& info) mutable { promise.deliver(info.ready && !info.draining ? found : nullptr); },
                    [promise](caf::error&) mutable { promise.deliver(caf::strong_actor_ptr()); });
          return promise;
        },
    };
  });
}

caf::actor spawn_tls_error_queue_sweeper(caf::actor_system& system, std::chrono::milliseconds period, std::string node_name) {
  // Touched only on the multiplexer thread (inside what is posted there).
  struct refusals {
    std::string node;
    std::chrono::steady_clock::time_point last_said{};
    std::uint64_t unsaid = 0;
  };
  auto said = std::make_shared<refusals>(refusals{std::move(node_name)});
  return system.spawn([period, said](caf::event_based_actor* self) -> caf::behavior {
    self->send(self, caf::tick_atom::value);
    return {[self, period, said](caf::tick_atom) {
      self->system().middleman().backend().post([said] {
        std::string reasons;
        for (unsigned long code = ERR_get_error(); code != 0; code = ERR_get_error()) {
          char reason[256];
          ERR_error_string_n(code, reason, sizeof reason);
          if (reasons.find(reason) == std::string::npos) reasons += (reasons.empty() ? "" : "; ") + std::string(reason);
        }
        if (reasons.empty()) return;
        const auto now = std::chrono::steady_clock::now();
        if (now - said->last_said < std::chrono::seconds(1)) {
          ++said->unsaid;
          return;
        }
        std::fprintf(stderr, "rml node %s: TLS with a peer failed (a refused handshake, or a connection cut): %s%s\n", said->node.c_str(), reasons.c_str(),
                     said->unsaid ? (" (and " + std::to_string(said->unsaid) + " more since the last said)").c_str() : "");
        said->last_said = now;
        said->unsaid = 0;
      });
      self->delayed_send(self, period, caf::tick_atom::value);
    }};
  });
}

caf::expected<std::uint16_t> publish_node_directory(const caf::actor& directory, std::uint16_t port, const std::string& host, bool tls) {
  if (tls) return caf::openssl::publish(directory, port, host.c_str(), true);
  return directory.home_system().middleman().publish(directory, port, host.c_str(), true);
}

caf::actor spawn_peer_resolver(caf::actor_system& system, peer_resolver_options options) {
  return system.spawn(peer_resolver, std::move(options));
}

}  // namespace rml::topologies
