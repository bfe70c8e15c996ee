// The in-memory control plane and a real etcd (Debian's etcd-server, started by the test on
// loopback) answer the same operations the same way, down to the revision numbers: what
// membership, election and failover rely on holds on both, so the deterministic tests on the
// memory plane say something about a cluster on etcd. Then what only a real etcd can show:
// leases that expire in real time, watches that survive nothing being sent, an address that
// answers nothing.
#include <catch2/catch.hpp>

#include <map>
#include <mutex>
#include <thread>

#include "tests/topologies/etcd_process.hpp"
#include "topologies/membership.hpp"
#include "topologies/memory_control_plane.hpp"

using namespace rml;
using namespace rml::control;
using namespace std::chrono_literals;

namespace {

/// A fresh store in memory: revision 1, time 0.
struct memory_store {
  static constexpr bool real = false;
  std::chrono::milliseconds now{0};
  memory_control_plane memory{[this] { return now; }};
  control_plane& plane = memory;
  status compact(revision up_to) { return memory.compact(up_to); }
};

/// A fresh etcd: revision 1.
struct etcd_store {
  static constexpr bool real = true;
  test::etcd_process etcd;
  std::unique_ptr<etcd_control_plane> client = etcd.client();
  control_plane& plane = *client;
  status compact(revision up_to) { return client->compact(up_to); }
};

template <class Store>
struct fixture : Store {
  revision put(const std::string& key, const std::string& value, lease_id lease = 0) {
    auto done = this->plane.commit({{}, {operation::put(key, value, lease)}, {}});
    REQUIRE(done.ok());
    return done->at;
  }
  std::optional<key_value> get(const std::string& key, revision at = 0) {
    auto found = this->plane.range(key_range::single(key), at);
    REQUIRE(found.ok());
    if (found->empty()) return std::nullopt;
    return found->front();
  }
};

/// Waits up to 5 s for `done` (etcd delivers watches on another thread; memory at once).
template <class Done>
bool eventually(Done done) {
  const auto give_up = std::chrono::steady_clock::now() + 5s;
  while (!done()) {
    if (std::chrono::steady_clock::now() > give_up) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

/// What a watch callback saw, readable from the test's thread.
template <class T>
class seen {
 public:
  void add(T value) {
    std::lock_guard lock(mutex_);
    values_.push_back(std::move(value));
  }
  std::vector<T> now() {
    std::lock_guard lock(mutex_);
    return values_;
  }

 private:
  std::mutex mutex_;
  std::vector<T> values_;
};

}  // namespace

TEMPLATE_TEST_CASE("puts bump one revision each and keep create revision and version", "", memory_store, etcd_store) {
  fixture<TestType> f;
  REQUIRE(f.plane.current_revision().value() == 1);
  REQUIRE(f.put("a", "1") == 2);
  REQUIRE(f.put("b", "1") == 3);
  REQUIRE(f.put("a", "2") == 4);
  auto a = f.get("a");
  REQUIRE(a->value == "2");
  REQUIRE(a->create_revision == 2);
  REQUIRE(a->mod_revision == 4);
  REQUIRE(a->version == 2);
  // Deleted and put again: a new life, version from 1.
  REQUIRE(f.plane.commit({{}, {operation::erase(key_range::single("a"))}, {}})->at == 5);
  REQUIRE(!f.get("a"));
  REQUIRE(f.put("a", "3") == 6);
  REQUIRE(f.get("a")->create_revision == 6);
  REQUIRE(f.get("a")->version == 1);
  // A transaction that changes nothing leaves the revision alone.
  auto read = f.plane.commit({{}, {operation::get(key_range::single("b"))}, {}});
  REQUIRE(read->at == 6);
  REQUIRE(read->results[0].found.at(0).value == "1");
  // Keys and values are bytes.
  const std::string binary("\0\xff\x01 key", 7);
  f.put(binary, std::string("v\0v", 3));
  REQUIRE(f.get(binary)->value == std::string("v\0v", 3));
}

TEMPLATE_TEST_CASE("compares follow etcd: a missing key has version 0 and no value", "", memory_store, etcd_store) {
  fixture<TestType> f;
  f.put("k", "v");
  using field = compare::field;
  using is = compare::relation;
  auto holds = [&](compare condition) {
    auto done = f.plane.commit({{std::move(condition)}, {}, {}});
    REQUIRE(done.ok());
    return done->succeeded;
  };
  REQUIRE(holds(compare::absent("missing")));
  REQUIRE(!holds(compare::absent("k")));
  REQUIRE(holds(compare::on("k", field::version, is::equal, 1)));
  REQUIRE(holds(compare::on("k", field::mod_revision, is::greater, 1)));
  REQUIRE(holds(compare::on("k", field::create_revision, is::less, 3)));
  REQUIRE(holds(compare::on("missing", field::create_revision, is::equal, 0)));
  REQUIRE(holds(compare::on("k", field::lease, is::equal, 0)));
  REQUIRE(holds(compare::value_is("k", is::equal, "v")));
  REQUIRE(holds(compare::value_is("k", is::greater, "u")));
  REQUIRE(!holds(compare::value_is("missing", is::equal, "")));
  REQUIRE(!holds(compare::value_is("missing", is::not_equal, "v")));
}

TEMPLATE_TEST_CASE("a transaction runs one branch at one revision, or nothing", "", memory_store, etcd_store) {
  fixture<TestType> f;
  f.put("pointer", "3");
  // Compare-and-set moves the pointer forward; a stale writer's transaction takes the other branch.
  transaction forward{{compare::value_is("pointer", compare::relation::equal, "3")},
                      {operation::put("pointer", "4"), operation::put("log/4", "x")},
                      {operation::get(key_range::single("pointer"))}};
  auto first = f.plane.commit(forward);
  REQUIRE(first->succeeded);
  REQUIRE(f.get("pointer")->mod_revision == f.get("log/4")->mod_revision);
  auto second = f.plane.commit(forward);
  REQUIRE(!second->succeeded);
  REQUIRE(second->results.at(0).found.at(0).value == "4");
  // A put under a lease that does not exist fails the whole transaction: nothing applied.
  const revision before = f.plane.current_revision().value();
  auto refused = f.plane.commit({{}, {operation::put("x", "1"), operation::put("y", "1", 99)}, {}});
  REQUIRE(!refused);
  REQUIRE(refused.error().code() == errc::not_found);
  if constexpr (!TestType::real) REQUIRE(refused.error().message().find("lease 99 not found") != std::string::npos);
  else REQUIRE(refused.error().message().find("lease not found") != std::string::npos);
  REQUIRE(f.plane.current_revision().value() == before);
  REQUIRE(!f.get("x"));
  REQUIRE(!f.plane.commit({{}, {operation::put("x", "1"), operation::put("x", "2")}, {}}));
  // An erase reports how many keys it deleted.
  auto erased = f.plane.commit({{}, {operation::erase(key_range::prefix(""))}, {}});
  REQUIRE(erased->results.at(0).deleted == 2);
}

TEMPLATE_TEST_CASE("ranges read prefixes and past revisions until compacted", "", memory_store, etcd_store) {
  fixture<TestType> f;
  f.put("nodes/a", "1");  // 2
  f.put("nodes/b", "1");  // 3
  f.put("other", "1");    // 4
  f.put("nodes/a", "2");  // 5
  REQUIRE(f.plane.commit({{}, {operation::erase(key_range::single("nodes/b"))}, {}}).ok());  // 6
  auto now = f.plane.range(key_range::prefix("nodes/"));
  REQUIRE(now->size() == 1);
  REQUIRE(now->at(0).value == "2");
  auto then = f.plane.range(key_range::prefix("nodes/"), 3);
  REQUIRE(then->size() == 2);
  REQUIRE(then->at(0).value == "1");
  REQUIRE(then->at(1).key == "nodes/b");
  auto future = f.plane.range(key_range::prefix("nodes/"), 7);
  REQUIRE(!future);
  REQUIRE(future.error().code() == errc::not_found);
  REQUIRE(f.compact(5).ok());
  auto compacted = f.plane.range(key_range::prefix("nodes/"), 4);
  REQUIRE(!compacted);
  REQUIRE(compacted.error().code() == errc::not_found);
  if constexpr (!TestType::real) REQUIRE(compacted.error().message() == "revision 4 has been compacted (compacted up to 5)");
  else REQUIRE(compacted.error().message().find("compacted") != std::string::npos);
  REQUIRE(f.plane.range(key_range::prefix("nodes/"), 5)->size() == 2);  // b was erased at 6
  REQUIRE(f.plane.range(key_range::prefix("nodes/"), 6)->size() == 1);
  REQUIRE(f.get("other")->value == "1");
}

TEMPLATE_TEST_CASE("watches deliver every change in revision order, from the past, until cancelled", "", memory_store, etcd_store) {
  fixture<TestType> f;
  f.put("desired/a", "1");  // 2
  f.put("unrelated", "1");  // 3
  f.put("desired/b", "1");  // 4
  using change = std::pair<revision, std::string>;
  seen<change> changes;
  auto id = f.plane.watch(key_range::prefix("desired/"), 2, [&](const watch_response& r) {
    for (const auto& event : r.events) changes.add({event.kv.mod_revision, event.kv.key});
  });
  REQUIRE(id.ok());
  REQUIRE(eventually([&] { return changes.now().size() == 2; }));
  REQUIRE(changes.now() == std::vector<change>{{2, "desired/a"}, {4, "desired/b"}});
  f.put("desired/a", "2");  // 5
  REQUIRE(eventually([&] { return changes.now().size() == 3; }));
  REQUIRE(changes.now().back() == change{5, "desired/a"});
  // A watcher may write from its callback; its own write comes to it after what came before.
  seen<revision> order;
  REQUIRE(f.plane.watch(key_range::prefix("chain/"), 0, [&](const watch_response& r) {
    order.add(r.events.at(0).kv.mod_revision);
    if (r.events.at(0).kv.key == "chain/1") f.put("chain/2", "x");
  }).ok());
  f.put("chain/1", "x");
  REQUIRE(eventually([&] { return order.now().size() == 2; }));
  REQUIRE(order.now() == std::vector<revision>{6, 7});
  f.plane.cancel(*id);
  // An erase is an event with the erase's revision and version 0.
  seen<watch_event> erasures;
  auto erasing = f.plane.watch(key_range::single("desired/b"), 0, [&](const watch_response& r) {
    for (const auto& event : r.events) erasures.add(event);
  });
  REQUIRE(erasing.ok());
  REQUIRE(f.plane.commit({{}, {operation::erase(key_range::single("desired/b"))}, {}})->at == 8);
  REQUIRE(eventually([&] { return erasures.now().size() == 1; }));
  REQUIRE(erasures.now()[0].type == watch_event::kind::erase);
  REQUIRE(erasures.now()[0].kv.mod_revision == 8);
  REQUIRE(erasures.now()[0].kv.version == 0);
  f.plane.cancel(*erasing);
  // Cancelled watches hear nothing more.
  f.put("desired/c", "1");  // 9
  f.put("chain/3", "x");    // 10: the chain watch, still open, sees it after c was written
  REQUIRE(eventually([&] { return order.now().size() == 3; }));
  REQUIRE(changes.now().size() == 3);
  // From a compacted revision: cancelled once, with the compact revision to re-list from.
  REQUIRE(f.compact(6).ok());
  seen<watch_response> told;
  REQUIRE(f.plane.watch(key_range::prefix("desired/"), 3, [&](const watch_response& r) { told.add(r); }).ok());
  REQUIRE(eventually([&] { return told.now().size() == 1; }));
  REQUIRE(told.now()[0].cancelled);
  REQUIRE(told.now()[0].compact_revision == 6);
}

TEMPLATE_TEST_CASE("the oldest live candidate leads, a revoked leader's fenced write fails", "", memory_store, etcd_store) {
  fixture<TestType> f;
  election controllers(f.plane, "placement");
  auto lease_a = *f.plane.grant(10s);
  auto lease_b = *f.plane.grant(10s);
  seen<std::string> leaders;
  auto observing = controllers.observe([&](const std::optional<key_value>& leader) { leaders.add(leader ? leader->value : "none"); });
  REQUIRE(observing.ok());
  auto a = controllers.campaign(lease_a, "node-a");
  auto b = controllers.campaign(lease_b, "node-b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(*controllers.is_leader(*a));
  REQUIRE(!*controllers.is_leader(*b));
  REQUIRE(controllers.campaign(lease_a, "node-a")->create_revision == a->create_revision);  // re-entry
  REQUIRE(eventually([&] { return leaders.now().size() == 2; }));
  auto fenced = [&](const key_value& who, const std::string& value) {
    return f.plane.commit({{election::still_leader(who)}, {operation::put("desired/topology", value)}, {}})->succeeded;
  };
  REQUIRE(fenced(*a, "from-a"));
  // a's lease ends (its node stopped renewing, or left): b leads, a's writes are refused.
  REQUIRE(f.plane.revoke(lease_a).ok());
  REQUIRE(*controllers.is_leader(*b));
  REQUIRE(!fenced(*a, "stale-from-a"));
  REQUIRE(fenced(*b, "from-b"));
  REQUIRE(f.get("desired/topology")->value == "from-b");
  REQUIRE(eventually([&] { return leaders.now().size() == 3; }));
  REQUIRE(leaders.now() == std::vector<std::string>{"none", "node-a", "node-b"});
  REQUIRE(!controllers.campaign(lease_a, "node-a"));  // a candidate whose lease is gone cannot enter
  REQUIRE(!f.plane.revoke(lease_a));
  f.plane.cancel(*observing);
}

TEST_CASE("on etcd, a lease not kept alive expires in real time and takes its member key") {
  test::etcd_process etcd;
  auto plane = etcd.client();
  membership node(*plane);
  seen<std::size_t> sizes;
  auto following = node.follow([&](const std::vector<member>& members) { sizes.add(members.size()); });
  REQUIRE(following.ok());
  const auto start = std::chrono::steady_clock::now();
  const auto now = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start); };
  auto joined = node.join({"node-a", "127.0.0.1:4000", 2, 0, {{"zone", "a"}}}, 1000ms, now());
  REQUIRE(joined.ok());
  REQUIRE(joined->incarnation > 1);
  REQUIRE(eventually([&] { return !sizes.now().empty() && sizes.now().back() == 1; }));
  // Kept alive for 2 s: still a member.
  for (int beat = 0; beat < 6; ++beat) {
    std::this_thread::sleep_for(330ms);
    REQUIRE(node.renew(now()).ok());
  }
  REQUIRE(node.members()->size() == 1);
  REQUIRE(node.may_serve(now()));
  // Then not: etcd expires it (TTL 1 s, give it 5) and the key goes.
  REQUIRE(eventually([&] { return sizes.now().back() == 0; }));
  REQUIRE(node.members()->empty());
  REQUIRE(!node.renew(now()));
  REQUIRE(!node.may_serve(now()));
  // Joining again: a new incarnation.
  auto again = node.join({"node-a", "127.0.0.1:4000", 2, 0, {}}, 1000ms, now());
  REQUIRE(again.ok());
  REQUIRE(again->incarnation > joined->incarnation);
  plane->cancel(*following);
}

TEST_CASE("an etcd that does not answer is an error naming its address, bad endpoints are refused by name") {
  etcd_options options;
  options.endpoints = {"http://127.0.0.1:" + std::to_string(test::free_loopback_port())};
  options.request_timeout = 500ms;
  auto refused = etcd_control_plane::connect(options);
  REQUIRE(!refused);
  REQUIRE(refused.error().code() == errc::io_error);
  REQUIRE(refused.error().message().find(options.endpoints[0]) != std::string::npos);
  auto bad = parse_etcd_endpoints("http://127.0.0.1:2379,127.0.0.1:2380");
  REQUIRE(!bad);
  REQUIRE(bad.error().message() == "etcd endpoint '127.0.0.1:2380': expected http://HOST:PORT or https://HOST:PORT");
  REQUIRE(parse_etcd_endpoints("http://a:1,http://b:2").value() == std::vector<std::string>{"http://a:1", "http://b:2"});
  REQUIRE(!parse_etcd_endpoints("http://a"));
}

TEST_CASE("on etcd, a second endpoint that answers serves when the first does not") {
  test::etcd_process etcd;
  etcd_options options;
  options.endpoints = {"http://127.0.0.1:" + std::to_string(test::free_loopback_port()), etcd.url()};
  options.request_timeout = 500ms;
  auto plane = etcd_control_plane::connect(options);
  REQUIRE(plane.ok());
  auto done = (*plane)->commit({{}, {operation::put("k", "v")}, {}});
  REQUIRE(done.ok());
  REQUIRE(done->at == 2);
  // A watch dials the dead endpoint first, then the live one.
  seen<revision> changes;
  auto watching = (*plane)->watch(key_range::single("k"), 0, [&](const watch_response& r) { changes.add(r.events.at(0).kv.mod_revision); });
  REQUIRE(watching.ok());
  REQUIRE((*plane)->commit({{}, {operation::put("k", "w")}, {}}).ok());
  REQUIRE(eventually([&] { return changes.now() == std::vector<revision>{3}; }));
}

TEST_CASE("on an etcd that requires TLS client certificates, a client with its CA's certificate works and others are refused, saying why") {
  char pattern[] = "/tmp/rml-certs-XXXXXX";
  REQUIRE(::mkdtemp(pattern) != nullptr);
  const test::test_certificates certificates(pattern);
  test::etcd_process etcd(&certificates);
  REQUIRE(etcd.url().rfind("https://127.0.0.1:", 0) == 0);
  // Trusted both ways: everything works, watches included.
  auto plane = etcd.client();
  REQUIRE(plane->commit({{}, {operation::put("k", "v")}, {}})->at == 2);
  seen<revision> changes;
  auto watching = plane->watch(key_range::single("k"), 0, [&](const watch_response& r) { changes.add(r.events.at(0).kv.mod_revision); });
  REQUIRE(watching.ok());
  REQUIRE(plane->commit({{}, {operation::put("k", "w")}, {}}).ok());
  REQUIRE(eventually([&] { return changes.now() == std::vector<revision>{3}; }));

  auto refused = [&](etcd_options options) {
    options.request_timeout = 2s;
    auto connected = etcd_control_plane::connect(options);
    REQUIRE(!connected);
    return connected.error();
  };
  // No client certificate: etcd refuses the connection.
  auto anonymous = etcd.client_options();
  anonymous.cert_file.clear();
  anonymous.key_file.clear();
  const auto no_certificate = refused(anonymous);
  REQUIRE(no_certificate.message().find(etcd.url()) == 0);
  REQUIRE(no_certificate.message().find("bad certificate") != std::string::npos);
  // A certificate from another CA: refused too.
  auto intruder = etcd.client_options();
  intruder.cert_file = certificates.other_cert();
  intruder.key_file = certificates.other_key();
  REQUIRE(refused(intruder).message().find(etcd.url()) == 0);
  // Trusting another CA: this client refuses etcd's certificate, and says so.
  auto distrustful = etcd.client_options();
  distrustful.ca_file = certificates.other_ca();
  const auto untrusted = refused(distrustful);
  REQUIRE(untrusted.code() == errc::unauthorized);
  REQUIRE(untrusted.message().find("TLS handshake failed") != std::string::npos);
  REQUIRE(untrusted.message().find("etcd's certificate:") != std::string::npos);
  // Plain HTTP to a TLS port gets nothing it can use.
  auto plain = etcd.client_options();
  plain.endpoints = {"http" + etcd.url().substr(5)};
  plain.ca_file = plain.cert_file = plain.key_file = "";
  (void)refused(plain);
  // Files that do not exist are named.
  auto missing = etcd.client_options();
  missing.ca_file = "/nonexistent/ca.crt";
  REQUIRE(refused(missing).message() == "etcd TLS: CA file '/nonexistent/ca.crt': no such file");
  plane->cancel(*watching);
  std::error_code ignored;
  std::filesystem::remove_all(pattern, ignored);
}
