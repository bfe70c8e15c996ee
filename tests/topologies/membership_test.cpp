// Membership on the in-memory control plane, in virtual time: members join under leases,
// a node that stops renewing stops serving before its lease can expire and then drops out,
// a name is never held twice, and a node that rejoins has a new incarnation.
#include <catch2/catch.hpp>

#include "topologies/memory_control_plane.hpp"
#include "topologies/membership.hpp"

using namespace rml;
using namespace rml::control;
using namespace std::chrono_literals;

TEST_CASE("a member record round-trips, and a malformed one is refused naming the field") {
  member_info info{"gpu-1", "10.0.0.7:4242", 16, 1, {{"gpu", "h200"}, {"zone", "a"}}};
  const std::string text = encode_member(info);
  REQUIRE(text == "address=10.0.0.7:4242;cores=16;gpus=1;labels=gpu:h200,zone:a");
  REQUIRE(*decode_member("gpu-1", text) == info);
  REQUIRE(decode_member("n", "address=h:1;cores=x").error().message() == "member n: cores 'x' is not a count");
  REQUIRE(decode_member("n", "cores=2").error().message() == "member n: no address");
  REQUIRE(decode_member("n", "address=h:1;colour=red").error().message() == "member n: unknown field 'colour'");
  REQUIRE(decode_member("n", "address=h:1;labels=novalue").error().message() == "member n: label 'novalue' is not key:value");
}

TEST_CASE("members join, are listed and followed, and drop out when their lease expires") {
  std::chrono::milliseconds now{0};
  memory_control_plane plane{[&] { return now; }};
  membership a(plane), b(plane);
  std::vector<std::vector<std::string>> views;
  membership observer(plane);
  REQUIRE(observer.follow([&](const std::vector<member>& members) {
    std::vector<std::string> names;
    for (const auto& each : members) names.push_back(each.info.name);
    views.push_back(names);
  }).ok());
  auto joined_a = a.join({"a", "127.0.0.1:7001", 2, 0, {}}, 3000ms, now);
  auto joined_b = b.join({"b", "127.0.0.1:7002", 2, 1, {{"gpu", "1"}}}, 3000ms, now);
  REQUIRE(joined_a.ok());
  REQUIRE(joined_b.ok());
  REQUIRE(joined_b->incarnation > joined_a->incarnation);
  auto listed = observer.members();
  REQUIRE(listed->size() == 2);
  REQUIRE(listed->at(1).info.labels.at("gpu") == "1");
  // The name is held: a second node calling itself "a" is refused while a lives.
  membership impostor(plane);
  auto refused = impostor.join({"a", "127.0.0.1:7003", 1, 0, {}}, 3000ms, now);
  REQUIRE(!refused);
  REQUIRE(refused.error().message().find("member name a is held by a live member") == 0);
  // b keeps renewing; a cannot reach the control plane after t = 0.
  for (now = 1000ms; now <= 4000ms; now += 1000ms) {
    REQUIRE(b.renew(now).ok());
    plane.tick();
    if (now == 1000ms) REQUIRE(a.may_serve(now));
    if (now == 2000ms) REQUIRE(!a.may_serve(now));  // two thirds of the TTL without a renewal: a stops serving
    REQUIRE(b.may_serve(now));
  }
  // a's lease expired at 3000 ms: it is no member, and its late renewal says so.
  auto names = views.back();
  REQUIRE(names == std::vector<std::string>{"b"});
  auto late = a.renew(now);
  REQUIRE(!late);
  REQUIRE(late.error().message().find("member a (incarnation " + std::to_string(joined_a->incarnation) + ") lost its lease") == 0);
  REQUIRE(!a.may_serve(now));
  // a restarted under its name rejoins with a new incarnation.
  auto rejoined = a.join({"a", "127.0.0.1:7001", 2, 0, {}}, 3000ms, now);
  REQUIRE(rejoined.ok());
  REQUIRE(rejoined->incarnation > joined_a->incarnation);
  REQUIRE(views.back() == std::vector<std::string>{"a", "b"});
  REQUIRE(b.leave().ok());
  REQUIRE(views.back() == std::vector<std::string>{"a"});
  REQUIRE(!b.may_serve(now));
}
