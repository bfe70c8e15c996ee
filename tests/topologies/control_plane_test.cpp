// The in-memory control plane on its virtual clock: leases that expire in virtual time and
// take their keys in one revision, leader election through lease expiry with its fence, and
// random operations against a plain model at every past revision. What it shares with a
// real etcd (revisions, compares, transactions, ranges, compaction, watches) is tested on
// both in control_plane_conformance_test.cpp.
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

TEST_CASE("the oldest live candidate leads, its fence fails once it is deposed") {
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
    const revision next = f.plane.current_revision().value() + 1;
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
    REQUIRE(f.plane.current_revision().value() == next);
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
