#pragma once
// Shared by the actor tests: an actor system under CAF's deterministic test_coordinator, and
// a way to ask an actor something and get the answer (or error) back in the test body.

#include <catch2/catch.hpp>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include <functional>

#include <optional>

#include "compute/model_file.hpp"
#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/telemetry.hpp"

namespace rml::test {

struct actor_fixture {
  caf::actor_system_config config;
  std::unique_ptr<caf::actor_system> system;
  caf::scheduler::test_coordinator* scheduler = nullptr;
  /// CAF destroys actors nobody references: the test holds the ones it spawns.
  std::vector<caf::actor> keep_alive;
  /// The test node's metrics and trace, handed to the components under test.
  messaging::telemetry telemetry;

  actor_fixture() {
    config.set("scheduler.policy", caf::atom("testing"));
    config.set("logger.verbosity", caf::atom("quiet"));
    messaging::register_messaging(config);
    system = std::make_unique<caf::actor_system>(config);
    scheduler = &dynamic_cast<caf::scheduler::test_coordinator&>(system->scheduler());
  }
  ~actor_fixture() {
    for (auto& actor : keep_alive) caf::anon_send_exit(actor, caf::exit_reason::kill);
    scheduler->run();
  }

  /// Trace events of `component` of `kind` recorded so far.
  std::size_t traced(const std::string& component, const std::string& kind) const {
    std::size_t count = 0;
    for (const auto& event : telemetry.trace->recent(messaging::trace_log::ring_events_max)) {
      count += event.component == component && event.kind == kind;
    }
    return count;
  }

  template <class Handle>
  Handle hold(Handle handle) {
    keep_alive.push_back(caf::actor_cast<caf::actor>(handle));
    return handle;
  }

  /// Sends `request` to `target` from a client actor and runs until it is answered
  /// (advancing virtual time in 1 ms steps, up to 1 s, while it waits).
  template <class Reply, class Handle, class... Ts>
  std::pair<std::optional<Reply>, std::optional<caf::error>> ask(const Handle& target, Ts... request) {
    std::optional<Reply> reply;
    std::optional<caf::error> failure;
    auto client = system->spawn([&, target](caf::event_based_actor* self) {
      self->request(target, caf::infinite, request...)
          .then([&](Reply& answer) { reply = std::move(answer); }, [&](caf::error& e) { failure = std::move(e); });
    });
    keep_alive.push_back(client);
    scheduler->run();
    // Answers that wait on a timer (a batch's queue delay) come once virtual time moves.
    for (int step = 0; step < 1000 && !reply && !failure; ++step) {
      scheduler->advance_time(caf::timespan(std::chrono::milliseconds(1)));
      scheduler->run();
    }
    REQUIRE((reply.has_value() || failure.has_value()));
    return {std::move(reply), std::move(failure)};
  }
};

/// A snapshot of a freshly initialised model: `architecture`, weights from `seed`, then
/// changed by `change` when given (a test's poisoned or overflowing weights).
inline messaging::model_snapshot make_snapshot(std::uint64_t version, const char* architecture = "mlp",
                                               std::uint64_t seed = 1, const std::string& pipeline = "scale(0.5)",
                                               const std::function<void(nn::sequential&)>& change = {}) {
  auto model = nn::make_architecture(architecture);
  model->initialize(seed);
  if (change) change(*model);
  messaging::model_snapshot snapshot;
  snapshot.version = version;
  snapshot.parent_version = version - 1;
  const auto file = encode_model(*model, {});
  snapshot.model_file.assign(reinterpret_cast<const char*>(file.data()), reinterpret_cast<const char*>(file.data()) + file.size());
  snapshot.feature_pipeline = pipeline;
  snapshot.metrics = {{"rolling_accuracy", 0.8}};
  return snapshot;
}

}  // namespace rml::test
