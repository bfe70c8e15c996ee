// The registry: versions stored on disk and moving forward only, lookup by version,
// explicit rollback, pushes to subscribers, the validation gate, and reloading after a
// restart.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "actors/registry/registry.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/sequential.hpp"
#include "messaging/metrics_registry.hpp"
#include "messaging/trace.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
struct registry_fixture : test::actor_fixture {
  std::filesystem::path directory =
      std::filesystem::temp_directory_path() / ("rml_registry_test_" + std::to_string(::getpid()));
  std::vector<std::uint64_t> pushed;
  caf::actor subscriber;

  registry_fixture() {
    std::filesystem::remove_all(directory);
    auto* sink = &pushed;
    subscriber = hold(system->spawn([sink](caf::event_based_actor*) -> caf::behavior {
      return {[sink](model_snapshot& snapshot) { sink->push_back(snapshot.version); },
              // A rollback is told as such; recorded as its version's negative.
              [sink](rollback_atom, model_snapshot& snapshot) { sink->push_back(std::uint64_t(-std::int64_t(snapshot.version))); }};
    }));
  }
  ~registry_fixture() { std::filesystem::remove_all(directory); }

  actors::registry_actor start(double gate = 0) {
    actors::registry_options options;
    options.directory = directory.string();
    options.min_rolling_accuracy = gate;
    options.telemetry = telemetry;
    auto registry = hold(actors::spawn_registry(*system, options));
    caf::anon_send(registry, subscribe_atom::value, subscriber);
    scheduler->run();
    return registry;
  }
};
}  // namespace

TEST_CASE("the registry stores versions, moves forward only, and rolls back on request") {
  registry_fixture f;
  auto registry = f.start();
  REQUIRE(errc::not_ready == *rml_code(*f.ask<model_snapshot>(registry, latest_atom::value).second));
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(1)).first == 1);
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(2, "mlp", 2)).first == 2);
  REQUIRE(f.ask<model_snapshot>(registry, latest_atom::value).first->version == 2);
  REQUIRE(f.ask<model_snapshot>(registry, version_atom::value, std::uint64_t(1)).first->model_file ==
          test::make_snapshot(1).model_file);

  auto stale = f.ask<std::uint64_t>(registry, test::make_snapshot(2));
  REQUIRE(describe(*stale.second) == "snapshot version 2: versions only move forward, newest stored is 2");
  REQUIRE(*f.ask<std::uint64_t>(registry, rollback_atom::value, std::uint64_t(1)).first == 1);
  REQUIRE(f.ask<model_snapshot>(registry, latest_atom::value).first->version == 1);
  REQUIRE(rml_code(*f.ask<std::uint64_t>(registry, rollback_atom::value, std::uint64_t(9)).second) == errc::not_found);
  // Subscribed before any version: told of v1, v2, then the rollback to v1 (as a rollback).
  REQUIRE(f.pushed == std::vector<std::uint64_t>{1, 2, std::uint64_t(-1)});
}

TEST_CASE("subscribing again is one subscription: told the current version again, each new one once") {
  registry_fixture f;
  auto registry = f.start();
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(1)).first == 1);
  // A node re-resolving its registry subscribes its router again: told the current version
  // again, but each new version once.
  caf::anon_send(registry, subscribe_atom::value, f.subscriber);
  f.scheduler->run();
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(2)).first == 2);
  REQUIRE(f.pushed == std::vector<std::uint64_t>{1, 1, 2});

}

TEST_CASE("the registry refuses snapshots that fail the validation gate") {
  registry_fixture f;
  auto registry = f.start(0.9);
  auto low = f.ask<std::uint64_t>(registry, test::make_snapshot(1));
  REQUIRE(describe(*low.second).find("rolling accuracy below the gate") != std::string::npos);
  auto broken = test::make_snapshot(2);
  broken.model_file.resize(broken.model_file.size() / 2);
  broken.metrics["rolling_accuracy"] = 0.95;
  REQUIRE(rml_code(*f.ask<std::uint64_t>(registry, broken).second) == errc::truncated);
  REQUIRE(f.pushed.empty());
}

TEST_CASE("a restarted registry reloads its versions and the current one") {
  registry_fixture f;
  {
    auto registry = f.start();
    f.ask<std::uint64_t>(registry, test::make_snapshot(1));
    f.ask<std::uint64_t>(registry, test::make_snapshot(2));
    f.ask<std::uint64_t>(registry, rollback_atom::value, std::uint64_t(1));
    caf::anon_send_exit(registry, caf::exit_reason::kill);
    f.scheduler->run();
  }
  f.pushed.clear();
  auto registry = f.start();
  REQUIRE(f.ask<model_snapshot>(registry, latest_atom::value).first->version == 1);
  REQUIRE(f.pushed == std::vector<std::uint64_t>{1});
  // Forward only survives the restart too.
  REQUIRE(f.ask<std::uint64_t>(registry, test::make_snapshot(2)).second.has_value());
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(3)).first == 3);
}

TEST_CASE("a snapshot stored before snapshots carried an input reference still loads, without one") {
  registry_fixture f;
  auto with_reference = test::make_snapshot(2);
  with_reference.reference = {100, {1, 1}, {0.5f, 0.25f}, {0.5, 0.5, 0.9, 0.1}};
  {
    auto registry = f.start();
    f.ask<std::uint64_t>(registry, test::make_snapshot(1));
    f.ask<std::uint64_t>(registry, with_reference);
    caf::anon_send_exit(registry, caf::exit_reason::kill);
    f.scheduler->run();
  }
  // Version 1 rewritten as rml wrote it before: the fields up to log_offset, nothing after.
  auto old = test::make_snapshot(1);
  std::vector<char> bytes;
  caf::binary_serializer sink{nullptr, bytes};
  REQUIRE_FALSE(sink(old.version, old.parent_version, old.model_file, old.feature_pipeline, old.feature_state, old.metrics, old.log_offset));
  std::ofstream(f.directory / "v1.snapshot", std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
  auto registry = f.start();
  auto first = f.ask<model_snapshot>(registry, version_atom::value, std::uint64_t(1)).first;
  REQUIRE(first);
  CHECK(first->model_file == old.model_file);
  CHECK(first->reference.empty());
  auto second = f.ask<model_snapshot>(registry, version_atom::value, std::uint64_t(2)).first;
  REQUIRE(second);
  CHECK(second->reference == with_reference.reference);
}

TEST_CASE("a snapshot sent without a version gets the next one, above every stored version") {
  registry_fixture f;
  auto registry = f.start();
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(0)).first == 1);
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(5)).first == 5);
  // As when `rml run` published its final model between two of the trainer's: still forward.
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(0)).first == 6);
  REQUIRE(f.pushed == std::vector<std::uint64_t>{1, 5, 6});
}

TEST_CASE("the gate refuses non-finite weights or metrics and a drop in accuracy below the current version's") {
  registry_fixture f;
  auto registry = f.start();
  REQUIRE(*f.ask<std::uint64_t>(registry, test::make_snapshot(0)).first == 1);  // rolling accuracy 0.8
  auto poisoned = test::make_snapshot(0, "mlp", 1, "scale(0.5)", [](nn::sequential& model) { model.parameters()[0]->value.data()[7] = std::nanf(""); });
  auto refused = f.ask<std::uint64_t>(registry, poisoned);
  REQUIRE(rml_code(*refused.second) == errc::non_finite);
  REQUIRE(describe(*refused.second).find("snapshot version 2: weight 7 of ") == 0);
  auto nan_metric = test::make_snapshot(0);
  nan_metric.metrics["rolling_loss"] = std::nan("");
  REQUIRE(describe(*f.ask<std::uint64_t>(registry, nan_metric).second) == "snapshot version 2: metric rolling_loss is not finite");
  auto worse = test::make_snapshot(0);
  worse.metrics["rolling_accuracy"] = 0.6;
  REQUIRE(describe(*f.ask<std::uint64_t>(registry, worse).second) ==
          "snapshot version 2: rolling accuracy 0.6000 is more than 0.1000 below the current version's 0.8000");
  auto close = test::make_snapshot(0);
  close.metrics["rolling_accuracy"] = 0.75;
  REQUIRE(*f.ask<std::uint64_t>(registry, close).first == 2);
  REQUIRE(f.pushed == std::vector<std::uint64_t>{1, 2});
}

TEST_CASE("a version a component cannot load is counted and traced by the registry") {
  registry_fixture f;
  auto registry = f.start();
  auto& refusals = f.telemetry.metrics->get_counter("rml_models_refused_total", "Published model versions a component could not load",
                                                           {{"component", "serving/test/main"}});
  caf::anon_send(registry, model_refused{7, "serving/test/main", "model version 7: weight 1 of linear is not finite"});
  f.scheduler->run();
  REQUIRE(refusals.value() == 1);
  REQUIRE(f.traced("registry", "model_refused") == 1);
  REQUIRE(f.telemetry.trace->recent(1).front().detail.find("version=7") != std::string::npos);
}
