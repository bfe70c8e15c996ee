// The peer directory over real BASP connections on loopback: two actor systems in one
// process, as two nodes. A name placed on the other node is entered in the local registry as
// a proxy, found again after the remote component restarts, dropped when the placement
// brings it here, and a node that cannot be reached is said, not waited on.

#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>

#include <atomic>
#include <filesystem>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "tests/test_certificates.hpp"
#include "topologies/peer_directory.hpp"

namespace {
using namespace std::chrono_literals;
constexpr caf::atom_value registry_name = caf::atom("registry");

/// A node whose BASP runs over TLS with this certificate, key and CA.
std::unique_ptr<caf::actor_system> make_tls_node(caf::actor_system_config& config, const std::string& certificate, const std::string& key,
                                                 const std::string& ca) {
  config.load<caf::io::middleman>();
  config.load<caf::openssl::manager>();
  config.openssl_certificate = certificate;
  config.openssl_key = key;
  config.openssl_cafile = ca;
  config.set("logger.verbosity", caf::atom("quiet"));
  return std::make_unique<caf::actor_system>(config);
}

std::unique_ptr<caf::actor_system> make_node(caf::actor_system_config& config) {
  config.load<caf::io::middleman>();
  config.set("logger.verbosity", caf::atom("quiet"));
  config.set("middleman.heartbeat-interval", caf::timespan{200ms});
  return std::make_unique<caf::actor_system>(config);
}

/// An actor that answers x with x + `add`, registered under `name` as a component would be.
caf::actor start_adder(caf::actor_system& system, int add) {
  auto adder = system.spawn([add](caf::event_based_actor*) -> caf::behavior {
    return {[add](int x) { return x + add; }};
  });
  system.registry().erase(registry_name);
  system.registry().put(registry_name, adder);
  return adder;
}

/// Asks whatever `system`'s registry holds under the name for `x + add`; nothing if none answers.
std::optional<int> ask_registered(caf::actor_system& system, int x) {
  auto target = system.registry().get<caf::actor>(registry_name);
  if (!target) return std::nullopt;
  caf::scoped_actor self{system};
  std::optional<int> answer;
  self->request(target, 2s, x).receive([&](int y) { answer = y; }, [](caf::error&) {});
  return answer;
}

template <class Condition>
bool within(std::chrono::milliseconds limit, Condition condition) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return condition();
}
}  // namespace

TEST_CASE("a peer's component is found on its node, again after it restarts, and let go when it moves here") {
  std::atomic<int> resolutions{0};  // before the nodes: counted until the resolver stops
  caf::actor_system_config config_a, config_b;
  auto node_a = make_node(config_a);
  auto node_b = make_node(config_b);
  auto directory = rml::topologies::spawn_node_directory(*node_a);
  auto port = node_a->middleman().publish(directory, 0, "127.0.0.1", true);
  REQUIRE(port);
  const std::string address = "127.0.0.1:" + std::to_string(*port);
  auto adder = start_adder(*node_a, 1);

  rml::topologies::peer_resolver_options options;
  options.resolved = [&](caf::actor_system&, caf::atom_value name, const std::string& where, const caf::actor& remote) {
    CHECK(name == registry_name);
    CHECK(where == address);
    CHECK(remote.node() != node_b->node());
    ++resolutions;
  };
  auto resolver = rml::topologies::spawn_peer_resolver(*node_b, options);
  caf::anon_send(resolver, caf::put_atom::value, registry_name, address);
  REQUIRE(within(5s, [&] { return ask_registered(*node_b, 41) == 42; }));
  CHECK(resolutions == 1);
  CHECK(node_b->registry().get(registry_name)->node() == node_a->node());

  // The component restarts on its node: the proxy goes down, the new instance is found.
  caf::anon_send_exit(adder, caf::exit_reason::kill);
  adder = start_adder(*node_a, 10);
  REQUIRE(within(5s, [&] { return ask_registered(*node_b, 1) == 11; }));
  CHECK(resolutions == 2);

  // The placement brings it here: the proxy leaves the registry.
  caf::anon_send(resolver, caf::delete_atom::value, registry_name);
  REQUIRE(within(2s, [&] { return !node_b->registry().get(registry_name); }));

  caf::anon_send_exit(resolver, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(adder, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(directory, caf::exit_reason::user_shutdown);
}

TEST_CASE("the directory answers only what runs on its node, and an unreachable node is said without blocking") {
  // Declared before the nodes: the resolver may still tell a failure while its node stops.
  std::mutex mutex;
  std::vector<std::string> failures;
  caf::actor_system_config config_a, config_b;
  auto node_a = make_node(config_a);
  auto node_b = make_node(config_b);
  auto directory_a = rml::topologies::spawn_node_directory(*node_a);
  auto port_a = node_a->middleman().publish(directory_a, 0, "127.0.0.1", true);
  REQUIRE(port_a);
  auto directory_b = rml::topologies::spawn_node_directory(*node_b);
  auto port_b = node_b->middleman().publish(directory_b, 0, "127.0.0.1", true);
  REQUIRE(port_b);
  auto adder = start_adder(*node_a, 1);

  rml::topologies::peer_resolver_options options;
  options.timeout = 1s;
  options.failed = [&](caf::atom_value, const std::string& where, const std::string& why) {
    std::lock_guard lock(mutex);
    failures.push_back(where + ": " + why);
  };
  auto resolver_b = rml::topologies::spawn_peer_resolver(*node_b, options);
  caf::anon_send(resolver_b, caf::put_atom::value, registry_name, "127.0.0.1:" + std::to_string(*port_a));
  REQUIRE(within(5s, [&] { return ask_registered(*node_b, 1) == 2; }));

  // B holds a proxy of A's component under the name; B's directory does not pass it on.
  caf::scoped_actor asker{*node_a};
  caf::strong_actor_ptr answered;
  bool replied = false;
  auto directory_b_from_a = node_a->middleman().remote_actor("127.0.0.1", *port_b);
  REQUIRE(directory_b_from_a);
  asker->request(*directory_b_from_a, 2s, caf::get_atom::value, registry_name)
      .receive([&](caf::strong_actor_ptr& found) { answered = found, replied = true; }, [](caf::error&) {});
  CHECK(replied);
  CHECK(!answered);

  // Nothing listens on the port: said once, and the resolver keeps answering meanwhile.
  constexpr caf::atom_value monitor_name = caf::atom("monitor");
  caf::anon_send(resolver_b, caf::put_atom::value, monitor_name, std::string("127.0.0.1:1"));
  REQUIRE(within(5s, [&] {
    std::lock_guard lock(mutex);
    return !failures.empty();
  }));
  {
    std::lock_guard lock(mutex);
    CHECK(failures.front().rfind("127.0.0.1:1: ", 0) == 0);
  }
  caf::scoped_actor self{*node_b};
  std::string where = "unanswered";
  self->request(resolver_b, 1s, caf::get_atom::value, monitor_name).receive([&](std::string& at) { where = at; }, [](caf::error&) {});
  CHECK(where.empty());
  std::this_thread::sleep_for(600ms);  // more retries: still told once
  {
    std::lock_guard lock(mutex);
    CHECK(failures.size() == 1);
  }
  // A name nobody runs on a node that answers: said too.
  constexpr caf::atom_value trainer_name = caf::atom("trainer");
  caf::anon_send(resolver_b, caf::put_atom::value, trainer_name, "127.0.0.1:" + std::to_string(*port_a));
  REQUIRE(within(5s, [&] {
    std::lock_guard lock(mutex);
    return failures.size() == 2;
  }));
  {
    std::lock_guard lock(mutex);
    CHECK(failures.back().find("no component named trainer runs there") != std::string::npos);
  }

  for (auto* actor : {&resolver_b, &adder, &directory_a, &directory_b}) caf::anon_send_exit(*actor, caf::exit_reason::user_shutdown);
}

TEST_CASE("a name several nodes run moves to the one preferred when it is added, and to another at once when its node is lost") {
  caf::actor_system_config config_a, config_b, config_c;
  auto node_a = make_node(config_a);
  auto node_b = make_node(config_b);
  auto node_c = make_node(config_c);
  auto directory_a = rml::topologies::spawn_node_directory(*node_a);
  auto port_a = node_a->middleman().publish(directory_a, 0, "127.0.0.1", true);
  auto directory_c = rml::topologies::spawn_node_directory(*node_c);
  auto port_c = node_c->middleman().publish(directory_c, 0, "127.0.0.1", true);
  REQUIRE(port_a);
  REQUIRE(port_c);
  auto adder_a = start_adder(*node_a, 1);
  auto adder_c = start_adder(*node_c, 100);

  auto resolver = rml::topologies::spawn_peer_resolver(*node_b);
  const std::string on_a = "127.0.0.1:" + std::to_string(*port_a), on_c = "127.0.0.1:" + std::to_string(*port_c);
  caf::anon_send(resolver, caf::put_atom::value, registry_name, on_c);
  REQUIRE(within(5s, [&] { return ask_registered(*node_b, 1) == 101; }));
  // A replica added ahead in this node's order takes its work.
  caf::anon_send(resolver, caf::put_atom::value, registry_name, on_a + "," + on_c);
  REQUIRE(within(5s, [&] { return ask_registered(*node_b, 1) == 2; }));  // the first preferred

  // Node a goes away (its actors stop, its system shuts down, its connections close); the
  // candidates are not changed (its lease has not expired yet): node c takes over at once.
  const auto lost_at = std::chrono::steady_clock::now();
  caf::anon_send_exit(adder_a, caf::exit_reason::kill);
  caf::anon_send_exit(directory_a, caf::exit_reason::kill);
  adder_a = nullptr;
  directory_a = nullptr;
  node_a.reset();
  REQUIRE(within(3s, [&] { return ask_registered(*node_b, 1) == 101; }));
  CHECK(std::chrono::steady_clock::now() - lost_at < 1500ms);
  caf::scoped_actor self{*node_b};
  std::string where;
  self->request(resolver, 1s, caf::get_atom::value, registry_name).receive([&](std::string& at) { where = at; }, [](caf::error&) {});
  CHECK(where == on_c);

  for (auto* actor : {&resolver}) caf::anon_send_exit(*actor, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(adder_c, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(directory_c, caf::exit_reason::user_shutdown);
}

TEST_CASE("over TLS a node with a certificate of the cluster's CA finds its peers, and one without is refused, saying so") {
  char pattern[] = "/tmp/rml-peer-tls-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const rml::test::test_certificates certificates(pattern);
  std::mutex mutex;
  std::vector<std::string> intruder_failures, plain_failures;
  caf::actor_system_config config_a, config_b, config_intruder, config_plain;
  auto node_a = make_tls_node(config_a, certificates.client_cert(), certificates.client_key(), certificates.ca());
  auto node_b = make_tls_node(config_b, certificates.client_cert(), certificates.client_key(), certificates.ca());
  // Its own CA signed its certificate, and it trusts only that one.
  auto intruder = make_tls_node(config_intruder, certificates.other_cert(), certificates.other_key(), certificates.other_ca());
  auto plain = make_node(config_plain);
  auto directory = rml::topologies::spawn_node_directory(*node_a);
  auto port = rml::topologies::publish_node_directory(directory, 0, "127.0.0.1", true);
  REQUIRE(port);
  const std::string address = "127.0.0.1:" + std::to_string(*port);
  auto adder = start_adder(*node_a, 1);

  rml::topologies::peer_resolver_options tls_options;
  tls_options.tls = true;
  tls_options.timeout = 1s;
  auto resolver_b = rml::topologies::spawn_peer_resolver(*node_b, tls_options);
  caf::anon_send(resolver_b, caf::put_atom::value, registry_name, address);
  REQUIRE(within(10s, [&] { return ask_registered(*node_b, 41) == 42; }));

  auto told = [&](std::vector<std::string>& into) {
    return [&mutex, &into](caf::atom_value, const std::string&, const std::string& why) {
      std::lock_guard lock(mutex);
      into.push_back(why);
    };
  };
  auto intruder_options = tls_options;
  intruder_options.failed = told(intruder_failures);
  auto resolver_intruder = rml::topologies::spawn_peer_resolver(*intruder, intruder_options);
  caf::anon_send(resolver_intruder, caf::put_atom::value, registry_name, address);
  rml::topologies::peer_resolver_options plain_options;
  plain_options.timeout = 1s;
  plain_options.failed = told(plain_failures);
  auto resolver_plain = rml::topologies::spawn_peer_resolver(*plain, plain_options);
  caf::anon_send(resolver_plain, caf::put_atom::value, registry_name, address);
  REQUIRE(within(10s, [&] {
    std::lock_guard lock(mutex);
    return !intruder_failures.empty() && !plain_failures.empty();
  }));
  std::this_thread::sleep_for(500ms);
  CHECK(!intruder->registry().get(registry_name));
  CHECK(!plain->registry().get(registry_name));
  // CAF 0.17.6's OpenSSL module leaves OpenSSL's per-thread error queue dirty after a failed
  // handshake, so node a's next TLS read fails and drops b's connection too (docs/
  // topologies.md). Once the refused ones stop trying, b's resolver finds it again.
  caf::anon_send_exit(resolver_intruder, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(resolver_plain, caf::exit_reason::user_shutdown);
  CHECK(within(10s, [&] { return ask_registered(*node_b, 1) == 2; }));

  for (auto* actor : {&resolver_b, &resolver_intruder, &resolver_plain, &adder, &directory}) {
    caf::anon_send_exit(*actor, caf::exit_reason::user_shutdown);
  }
  std::filesystem::remove_all(pattern);
}
