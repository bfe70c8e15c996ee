// The in-memory control plane keeps etcd's v3 semantics on a virtual clock: revisions,
// versions, compares, transactions all-or-nothing, reads at past revisions, compaction,
// leases that expire in virtual time and take their keys in one revision, ordered watches
// from the past, and leader election by lowest create revision with its fence.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "topologies/memory_control_plane.hpp"

using namespace rml;
using namespace rml::control;
using namespace std::chrono_literals;

namespace {
struct fixture {
  std::chrono::milliseconds now{0};
  memory_control_plane plane{[this] { return now; }};

  revision put(const std::string& key, const std::string& value, lease_id lease = 0) {
    auto done = plane.commit({{}, {operation::put(key, value, lease)}, {}});
    REQUIRE(done.ok());
    return done->at;
  }
  std::optional<key_value> get(const std::string& key, revision at = 0) {
    auto found = plane.range(key_range::single(key), at);
    REQUIRE(found.ok());
    if (found->empty()) return std::nullopt;
    return found->front();
  }
};
}  // namespace

TEST_CASE("puts bump one revision each and keep create revision and version") {
  fixture f;
  REQUIRE(f.plane.current_revision() == 1);
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
}

TEST_CASE("compares follow etcd: a missing key has version 0 and no value") {
  fixture f;
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
  REQUIRE(holds(compare::value_is("k", is::equal, "v")));
  REQUIRE(holds(compare::value_is("k", is::greater, "u")));
  REQUIRE(!holds(compare::value_is("missing", is::equal, "")));
  REQUIRE(!holds(compare::value_is("missing", is::not_equal, "v")));
}

TEST_CASE("a transaction runs one branch at one revision, or nothing") {
  fixture f;
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
  const revision before = f.plane.current_revision();
  auto refused = f.plane.commit({{}, {operation::put("x", "1"), operation::put("y", "1", 99)}, {}});
  REQUIRE(!refused);
  REQUIRE(refused.error().code() == errc::not_found);
  REQUIRE(refused.error().message().find("lease 99 not found") != std::string::npos);
  REQUIRE(f.plane.current_revision() == before);
  REQUIRE(!f.get("x"));
  REQUIRE(!f.plane.commit({{}, {operation::put("x", "1"), operation::put("x", "2")}, {}}));
}

TEST_CASE("ranges read prefixes and past revisions until compacted") {
  fixture f;
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
  REQUIRE(!f.plane.range(key_range::prefix("nodes/"), 7));  // the future
  REQUIRE(f.plane.compact(5).ok());
  auto compacted = f.plane.range(key_range::prefix("nodes/"), 4);
  REQUIRE(!compacted);
  REQUIRE(compacted.error().message() == "revision 4 has been compacted (compacted up to 5)");
  REQUIRE(f.plane.range(key_range::prefix("nodes/"), 5)->size() == 2);  // b was erased at 6
  REQUIRE(f.plane.range(key_range::prefix("nodes/"), 6)->size() == 1);
  REQUIRE(f.get("other")->value == "1");
}

TEST_CASE("a lease expires in virtual time and takes its keys in one revision") {
  fixture f;
  auto lease = f.plane.grant(3000ms);
  REQUIRE(lease.ok());
  f.put("members/a", "addr-a", *lease);
  f.put("members/b", "addr-b", *lease);
  f.put("config", "kept");
  std::vector<watch_response> seen;
  REQUIRE(f.plane.watch(key_range::prefix("members/"), 0, [&](const watch_response& r) { seen.push_back(r); }).ok());
  f.now = 2000ms;
  REQUIRE(*f.plane.keep_alive(*lease) == 3000ms);  // deadline now 5000 ms
  f.now = 4999ms;
  f.plane.tick();
  REQUIRE(f.get("members/a"));
  f.now = 5000ms;
  f.plane.tick();
  REQUIRE(!f.get("members/a"));
  REQUIRE(!f.get("members/b"));
  REQUIRE(f.get("config")->value == "kept");
  REQUIRE(seen.size() == 1);  // one revision, both deletions
  REQUIRE(seen[0].events.size() == 2);
  REQUIRE(seen[0].events[0].type == watch_event::kind::erase);
  REQUIRE(seen[0].events[0].kv.mod_revision == seen[0].events[1].kv.mod_revision);
  auto late = f.plane.keep_alive(*lease);
  REQUIRE(!late);
  REQUIRE(late.error().code() == errc::not_found);
  REQUIRE(f.plane.live_leases() == 0);
  // Revoked: the same, at once.
  auto second = f.plane.grant(1000ms);
  f.put("members/c", "addr-c", *second);
  REQUIRE(f.plane.revoke(*second).ok());
  REQUIRE(!f.get("members/c"));
  REQUIRE(!f.plane.revoke(*second));
  REQUIRE(!f.plane.grant(0ms));
}

TEST_CASE("watches deliver every change in revision order, from the past, until cancelled") {
  fixture f;
  f.put("desired/a", "1");  // 2
  f.put("unrelated", "1");  // 3
  f.put("desired/b", "1");  // 4
  std::vector<std::pair<revision, std::string>> seen;
  auto id = f.plane.watch(key_range::prefix("desired/"), 2, [&](const watch_response& r) {
    for (const auto& event : r.events) seen.push_back({event.kv.mod_revision, event.kv.key});
  });
  REQUIRE(id.ok());
  REQUIRE(seen == std::vector<std::pair<revision, std::string>>{{2, "desired/a"}, {4, "desired/b"}});
  f.put("desired/a", "2");  // 5
  REQUIRE(seen.back() == std::pair<revision, std::string>{5, "desired/a"});
  // A watcher's own writes, made inside its callback, come after what was already queued.
  std::vector<revision> order;
  REQUIRE(f.plane.watch(key_range::prefix("chain/"), 0, [&](const watch_response& r) {
    order.push_back(r.events.at(0).kv.mod_revision);
    if (order.size() == 1) f.put("chain/2", "x");
  }).ok());
  f.put("chain/1", "x");
  REQUIRE(order == std::vector<revision>{6, 7});
  f.plane.cancel(*id);
  f.put("desired/c", "1");
  REQUIRE(seen.back().second == "desired/a");
  // From a compacted revision: cancelled once, with the compact revision to re-list from.
  REQUIRE(f.plane.compact(6).ok());
  watch_response told;
  REQUIRE(f.plane.watch(key_range::prefix("desired/"), 3, [&](const watch_response& r) { told = r; }).ok());
  REQUIRE(told.cancelled);
  REQUIRE(told.compact_revision == 6);
}

TEST_CASE("the oldest live candidate leads; its fence fails once it is deposed") {
  fixture f;
  election controllers(f.plane, "placement");
  auto lease_a = *f.plane.grant(2000ms);
  auto lease_b = *f.plane.grant(2000ms);
  std::vector<std::string> leaders;
  REQUIRE(controllers.observe([&](const std::optional<key_value>& leader) {
    leaders.push_back(leader ? leader->value : "none");
  }).ok());
  auto a = controllers.campaign(lease_a, "node-a");
  auto b = controllers.campaign(lease_b, "node-b");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(*controllers.is_leader(*a));
  REQUIRE(!*controllers.is_leader(*b));
  REQUIRE(controllers.campaign(lease_a, "node-a")->create_revision == a->create_revision);  // re-entry
  // The leader's epoch-fenced write of desired state goes through.
  auto fenced = [&](const key_value& who, const std::string& value) {
    return f.plane.commit({{election::still_leader(who)}, {operation::put("desired/topology", value)}, {}})->succeeded;
  };
  REQUIRE(fenced(*a, "from-a"));
  // node-a stops renewing; node-b keeps its lease. At 2 s a's lease is gone and b leads.
  f.now = 1500ms;
  REQUIRE(f.plane.keep_alive(lease_b).ok());
  f.now = 2000ms;
  f.plane.tick();
  REQUIRE(*controllers.is_leader(*b));
  REQUIRE(!fenced(*a, "stale-from-a"));  // a deposed controller's write fails
  REQUIRE(fenced(*b, "from-b"));
  REQUIRE(f.get("desired/topology")->value == "from-b");
  REQUIRE(leaders == std::vector<std::string>{"none", "node-a", "node-b"});
  REQUIRE(controllers.resign(*b).ok());
  REQUIRE(!controllers.leader()->has_value());
  REQUIRE(leaders.back() == "none");
  // A candidate whose lease is gone cannot enter.
  REQUIRE(!controllers.campaign(lease_a, "node-a"));
}

TEST_CASE("random operations agree with a plain model, now and at every past revision") {
  fixture f;
  std::mt19937_64 generator(Catch::rngSeed());
  // The model: the whole store after each revision.
  std::map<revision, std::map<std::string, key_value>> snapshots{{1, {}}};
  std::map<std::string, key_value> model;
  const std::vector<std::string> keys{"a", "b", "c/1", "c/2", "d"};
  for (int step = 0; step < 400; ++step) {
    const std::string& key = keys[generator() % keys.size()];
    const revision next = f.plane.current_revision() + 1;
    if (generator() % 3 == 0) {
      const bool present = model.count(key) > 0;
      auto done = f.plane.commit({{}, {operation::erase(key_range::single(key))}, {}});
      REQUIRE(done.ok());
      REQUIRE(done->results.at(0).deleted == (present ? 1 : 0));
      if (!present) continue;
      model.erase(key);
    } else {
      const std::string value = std::to_string(generator() % 1000);
      // Compare-and-set on the version the model holds: must always succeed.
      const std::int64_t version = model.count(key) ? model[key].version : 0;
      auto done = f.plane.commit({{compare::on(key, compare::field::version, compare::relation::equal, version)},
                                  {operation::put(key, value)}, {}});
      REQUIRE(done->succeeded);
      key_value& entry = model[key];
      if (entry.version == 0) entry = {key, value, next, next, 1, 0};
      else entry = {key, value, entry.create_revision, next, entry.version + 1, 0};
    }
    REQUIRE(f.plane.current_revision() == next);
    snapshots[next] = model;
  }
  for (const auto& [at, expected] : snapshots) {
    auto found = f.plane.range(key_range::prefix(""), at);
    REQUIRE(found.ok());
    std::map<std::string, key_value> actual;
    for (const auto& kv : *found) actual[kv.key] = kv;
    CAPTURE(at);
    REQUIRE(actual == expected);
  }
  auto prefixed = f.plane.range(key_range::prefix("c/"));
  REQUIRE(std::int64_t(prefixed->size()) == std::int64_t(model.count("c/1") + model.count("c/2")));
}
