// The at-most-once filter every cross-node request passes: each (sender, incarnation, id)
// admitted once; past deadlines, older incarnations of a sender and stale controller epochs
// refused; memory bounded by the deadline window.
#include <catch2/catch.hpp>

#include "messaging/at_most_once.hpp"

using namespace rml::messaging;

TEST_CASE("a request is admitted once, duplicates, late ones and ones from an older world are dropped") {
  at_most_once_filter filter;
  const request_envelope first{"node-a", 10, 1, 1'000, 5};
  REQUIRE(filter.admit(first, 100) == delivery_verdict::admit);
  REQUIRE(filter.admit(first, 200) == delivery_verdict::duplicate);  // a retry that arrives twice
  REQUIRE(filter.admit({"node-b", 10, 1, 1'000, 5}, 200) == delivery_verdict::admit);  // ids are per sender
  REQUIRE(filter.admit({"node-a", 10, 2, 150, 5}, 200) == delivery_verdict::expired);
  REQUIRE(filter.admit({"node-a", 10, 3, 0, 5}, 200) == delivery_verdict::no_deadline);
  // A controller epoch above: what was sent under the old one is stale from now on.
  REQUIRE(filter.admit({"node-b", 10, 2, 1'000, 7}, 200) == delivery_verdict::admit);
  REQUIRE(filter.highest_epoch() == 7);
  REQUIRE(filter.admit({"node-a", 10, 4, 1'000, 5}, 200) == delivery_verdict::stale_epoch);
  // node-a restarted: its new incarnation starts afresh; its predecessor is refused.
  REQUIRE(filter.admit({"node-a", 11, 1, 1'000, 7}, 300) == delivery_verdict::admit);
  REQUIRE(filter.admit({"node-a", 10, 9, 1'000, 7}, 300) == delivery_verdict::older_incarnation);
  REQUIRE(filter.admit({"node-a", 11, 1, 1'000, 7}, 300) == delivery_verdict::duplicate);
  REQUIRE(std::string(to_string(delivery_verdict::stale_epoch)) == "stale_epoch");
}

TEST_CASE("ids are forgotten once their deadline passes, so memory follows the deadline window") {
  at_most_once_filter filter;
  for (std::uint64_t id = 1; id <= 1'000; ++id) REQUIRE(filter.admit({"node-a", 1, id, std::int64_t(id) * 10, 1}, 0) == delivery_verdict::admit);
  REQUIRE(filter.remembered() == 1'000);
  REQUIRE(filter.admit({"node-a", 1, 5'000, 20'000, 1}, 5'005) == delivery_verdict::admit);
  REQUIRE(filter.remembered() == 501);  // ids 501..1000 and 5000: the rest are past their deadline
  // A copy of a forgotten id is still refused: its deadline has passed.
  REQUIRE(filter.admit({"node-a", 1, 3, 30, 1}, 5'005) == delivery_verdict::expired);
  REQUIRE(filter.admit({"node-a", 1, 5'000, 20'000, 1}, 30'000) == delivery_verdict::expired);
  REQUIRE(filter.admit({"node-a", 1, 6'000, 40'000, 1}, 30'000) == delivery_verdict::admit);
  REQUIRE(filter.remembered() == 1);
}
