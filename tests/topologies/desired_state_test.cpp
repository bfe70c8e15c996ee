// Desired state is written only by the leading controller, fenced by its epoch, and a model's
// version pointer only moves forward, even across a change of controller.
#include <map>
#include <catch2/catch.hpp>

#include "topologies/desired_state.hpp"
#include "topologies/memory_control_plane.hpp"

using namespace rml;
using namespace rml::control;
using namespace std::chrono_literals;

TEST_CASE("only the leading controller writes desired state, and the version pointer only moves forward") {
  std::chrono::milliseconds now{0};
  memory_control_plane plane{[&] { return now; }};
  election controllers(plane, "placement");
  desired_state desired(plane);
  auto lease_a = *plane.grant(2000ms), lease_b = *plane.grant(2000ms);
  auto a = *controllers.campaign(lease_a, "node-a");
  auto b = *controllers.campaign(lease_b, "node-b");

  REQUIRE(desired.write(a, "topology", "v1").ok());
  REQUIRE(**desired.read("topology") == "v1");
  REQUIRE(!desired.read("placement")->has_value());
  REQUIRE(*desired.model_pointer("mlp") == 0);
  REQUIRE(*desired.advance_model(a, "mlp", 3) == 3);
  REQUIRE(*desired.advance_model(a, "mlp", 3) == 3);  // the same again: no-op
  auto back = desired.advance_model(a, "mlp", 2);
  REQUIRE(!back);
  REQUIRE(back.error().message() == "model pointer of mlp is at version 3; 2 would move it back");

  // a is partitioned away (stops renewing); b renews and takes over at 2 s.
  now = 1500ms;
  REQUIRE(plane.keep_alive(lease_b).ok());
  now = 2000ms;
  plane.tick();
  REQUIRE(*controllers.is_leader(b));
  auto stale = desired.write(a, "topology", "v2-from-a");
  REQUIRE(!stale);
  REQUIRE(stale.error().code() == errc::unauthorized);
  REQUIRE(stale.error().message() == "controller " + a.key + " (epoch " + std::to_string(a.create_revision) +
                                         ") no longer leads: its write is refused");
  REQUIRE(!desired.advance_model(a, "mlp", 9));
  REQUIRE(*desired.model_pointer("mlp") == 3);
  REQUIRE(*desired.advance_model(b, "mlp", 4) == 4);
  REQUIRE(!desired.advance_model(b, "mlp", 1));
  REQUIRE(**desired.read("topology") == "v1");
  REQUIRE(*desired.advance_model(b, "lenet", 2) == 2);
  REQUIRE(*desired.model_pointers() == std::map<std::string, std::uint64_t>{{"lenet", 2}, {"mlp", 4}});
}
