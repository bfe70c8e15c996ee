// The compute actor: model versions loaded onto its device and held by their senders, rows
// of several senders that arrived together run as one batch with each sender answered its
// own rows, errors that name what was wrong, and replicas that compute through it (and
// load again onto a restarted one). On the CPU here; the same actor owns a GPU in `rml run
// --device cuda`.
#include <caf/all.hpp>

#include "actors/compute/compute_actor.hpp"
#include "actors/serving/replica.hpp"
#include "messaging/errors.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
actors::compute_options on_cpu() {
  actors::compute_options options;
  options.device = device_kind::cpu;
  return options;
}

compute_request rows_of(std::uint64_t version, std::uint32_t rows, float first) {
  compute_request request{"mlp", version, rows, {}};
  request.features.values.resize(std::size_t(rows) * 784);
  for (std::size_t index = 0; index < request.features.values.size(); ++index) {
    request.features.values[index] = first + float(index % 97) / 97.0f;
  }
  return request;
}

/// Probabilities of `request`'s rows through the snapshot's model alone (no pipeline: the
/// compute actor gets rows already through it).
std::vector<float> expected_probabilities(const model_snapshot& snapshot, const compute_request& request) {
  auto bundle = decode_model(std::as_bytes(std::span(snapshot.model_file)), "expected");
  auto compute = make_cpu_backend({1});
  tape recorder(*compute, tape::mode::inference);
  tensor features = tensor::from(request.features.values, {std::int64_t(request.rows), 784});
  tensor result = tensor::empty({std::int64_t(request.rows), 10});
  compute->softmax_forward(recorder.value(bundle->model.forward(recorder, recorder.input(features))), result);
  return {result.values().begin(), result.values().end()};
}

/// An actor that loads `snapshot` onto `device` and holds it while it lives (and passes a
/// compute_release it is sent on to the device).
caf::actor holder(caf::actor_system& system, actors::compute_actor device, model_snapshot snapshot) {
  return system.spawn([device, snapshot](caf::event_based_actor* self) -> caf::behavior {
    self->request(device, caf::infinite, compute_load{"mlp", snapshot}).then([](std::uint64_t) {});
    return {[self, device](compute_release& release) { self->send(device, release); }};
  });
}
}  // namespace

TEST_CASE("a compute actor runs the rows several senders sent together as one batch, each answered its own") {
  test::actor_fixture f;
  auto device = f.hold(actors::spawn_compute_actor(*f.system, on_cpu()));
  const auto snapshot = test::make_snapshot(1);
  f.hold(holder(*f.system, device, snapshot));

  // Three senders, their requests in the mailbox together before the actor runs.
  std::vector<compute_request> requests{rows_of(1, 1, 0.0f), rows_of(1, 3, 0.5f), rows_of(1, 2, 1.0f)};
  std::vector<std::optional<compute_reply>> replies(requests.size());
  for (std::size_t index = 0; index < requests.size(); ++index) {
    f.hold(f.system->spawn([&, index](caf::event_based_actor* self) {
      self->request(device, caf::infinite, requests[index]).then([&, index](compute_reply& reply) { replies[index] = reply; });
    }));
  }
  f.scheduler->run();
  for (std::size_t index = 0; index < requests.size(); ++index) {
    CAPTURE(index);
    REQUIRE(replies[index].has_value());
    REQUIRE(replies[index]->rows == requests[index].rows);
    REQUIRE(replies[index]->classes == 10);
    const auto expected = expected_probabilities(snapshot, requests[index]);
    REQUIRE(replies[index]->probabilities.values.size() == expected.size());
    for (std::size_t value = 0; value < expected.size(); ++value) {
      REQUIRE(replies[index]->probabilities.values[value] == Approx(expected[value]).epsilon(1e-5));
    }
  }
  const auto status = f.ask<compute_status>(device, status_atom::value).first;
  REQUIRE(status->requests == 3);
  REQUIRE(status->batches == 1);
  REQUIRE(status->rows == 6);
  REQUIRE(status->models == 1);
  REQUIRE(status->device.find("cpu") != std::string::npos);
}

TEST_CASE("a compute actor splits a large gathering into passes of at most batch_rows_max rows") {
  test::actor_fixture f;
  auto options = on_cpu();
  options.batch_rows_max = 4;
  auto device = f.hold(actors::spawn_compute_actor(*f.system, options));
  f.hold(holder(*f.system, device, test::make_snapshot(1)));
  int answered = 0;
  for (std::uint32_t rows : {3u, 2u, 2u, 6u}) {
    f.hold(f.system->spawn([&, rows](caf::event_based_actor* self) {
      self->request(device, caf::infinite, rows_of(1, rows, 0.1f)).then([&, rows](compute_reply& reply) { answered += reply.rows == rows; });
    }));
  }
  f.scheduler->run();
  REQUIRE(answered == 4);
  // 3 | 2+2 | 6 (one request larger than the bound runs alone).
  REQUIRE(f.ask<compute_status>(device, status_atom::value).first->batches == 3);
}

TEST_CASE("a compute actor's errors name the model version and what was wrong") {
  test::actor_fixture f;
  auto device = f.hold(actors::spawn_compute_actor(*f.system, on_cpu()));
  auto missing = f.ask<compute_reply>(device, rows_of(7, 1, 0.0f));
  REQUIRE(rml_code(*missing.second) == errc::not_ready);
  REQUIRE(describe(*missing.second) == "model 'mlp' version 7 is not on this compute actor's device (send compute_load first)");

  // A load's version is held while its sender lives: an asker that ends lets it go.
  REQUIRE(f.ask<std::uint64_t>(device, compute_load{"mlp", test::make_snapshot(1)}).first == 1u);
  REQUIRE(f.ask<compute_status>(device, status_atom::value).first->models == 0);
  f.hold(holder(*f.system, device, test::make_snapshot(1)));
  auto short_rows = rows_of(1, 2, 0.0f);
  short_rows.features.values.resize(100);
  auto wrong = f.ask<compute_reply>(device, short_rows);
  REQUIRE(rml_code(*wrong.second) == errc::shape_mismatch);
  REQUIRE(describe(*wrong.second) == "model 'mlp' version 1: 100 values for 2 rows of 784 features");

  auto broken = test::make_snapshot(2);
  broken.model_file.resize(10);
  auto refused = f.ask<std::uint64_t>(device, compute_load{"mlp", broken});
  REQUIRE(refused.second.has_value());
  REQUIRE(describe(*refused.second).find("model 'mlp' version 2") != std::string::npos);
  REQUIRE(f.ask<compute_status>(device, status_atom::value).first->models == 1);
}

TEST_CASE("a model version leaves the device when no sender holds it any more") {
  test::actor_fixture f;
  auto device = f.hold(actors::spawn_compute_actor(*f.system, on_cpu()));
  auto models = [&] { return f.ask<compute_status>(device, status_atom::value).first->models; };
  auto first = holder(*f.system, device, test::make_snapshot(1));
  auto second = holder(*f.system, device, test::make_snapshot(1));
  auto third = holder(*f.system, device, test::make_snapshot(2));
  f.scheduler->run();
  REQUIRE(models() == 2);
  caf::anon_send(first, compute_release{"mlp", 1});
  f.scheduler->run();
  REQUIRE(models() == 2);  // the second still holds version 1
  caf::anon_send_exit(second, caf::exit_reason::user_shutdown);
  f.scheduler->run();
  REQUIRE(models() == 1);  // a holder that went down holds nothing
  caf::anon_send_exit(third, caf::exit_reason::kill);
  f.scheduler->run();
  REQUIRE(models() == 0);
  REQUIRE(rml_code(*f.ask<compute_reply>(device, rows_of(2, 1, 0.0f)).second) == errc::not_ready);
  caf::anon_send_exit(first, caf::exit_reason::user_shutdown);
}

TEST_CASE("replicas compute through the registered compute actor, and load again onto a restarted one") {
  test::actor_fixture f;
  auto register_device = [&] {
    auto device = f.hold(actors::spawn_compute_actor(*f.system, on_cpu()));
    f.system->registry().erase(names::compute);
    f.system->registry().put(names::compute, caf::actor_cast<caf::actor>(device));
    return device;
  };
  auto device = register_device();
  actors::serving_options shared;
  shared.shared_device = true;
  auto first = f.hold(actors::spawn_serving_replica(*f.system, shared));
  auto second = f.hold(actors::spawn_serving_replica(*f.system, shared));
  auto alone = f.hold(actors::spawn_serving_replica(*f.system, {}));
  for (const auto& replica : {first, second, alone}) caf::anon_send(replica, test::make_snapshot(1));
  f.scheduler->run();

  predict_request request;
  request.request_id = 4;
  request.rows = 2;
  request.top_k = 2;
  request.features.values().resize(2 * 784);
  for (std::size_t index = 0; index < request.features.values().size(); ++index) request.features.values()[index] = float(index % 255);
  const auto expected = f.ask<predict_reply>(alone, request).first;
  REQUIRE(expected.has_value());
  for (const auto& replica : {first, second}) {
    const auto answer = f.ask<predict_reply>(replica, request).first;
    REQUIRE(answer.has_value());
    REQUIRE(answer->request_id == 4);
    REQUIRE(answer->model_version == 1);
    REQUIRE(answer->top_classes == expected->top_classes);
    for (std::size_t index = 0; index < expected->probabilities.values.size(); ++index) {
      REQUIRE(answer->probabilities.values[index] == Approx(expected->probabilities.values[index]).epsilon(1e-5));
    }
  }
  auto status = f.ask<compute_status>(device, status_atom::value).first;
  REQUIRE(status->requests == 2);
  REQUIRE(status->models == 1);  // one copy on the device for both replicas

  // A new version: loaded, the old one released.
  for (const auto& replica : {first, second}) caf::anon_send(replica, test::make_snapshot(2, "mlp", 2));
  f.scheduler->run();
  REQUIRE(f.ask<predict_reply>(first, request).first->model_version == 2);
  REQUIRE(f.ask<compute_status>(device, status_atom::value).first->models == 1);

  // The compute actor goes; a fresh one is registered (as its supervisor does): the replicas
  // load onto it before their next request.
  caf::anon_send_exit(device, caf::exit_reason::kill);
  f.scheduler->run();
  auto restarted = register_device();
  for (const auto& replica : {first, second}) {
    const auto answer = f.ask<predict_reply>(replica, request).first;
    REQUIRE(answer.has_value());
    REQUIRE(answer->model_version == 2);
  }
  status = f.ask<compute_status>(restarted, status_atom::value).first;
  REQUIRE(status->requests == 2);
  REQUIRE(status->models == 1);
  f.system->registry().erase(names::compute);
}
