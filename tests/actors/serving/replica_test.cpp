// A serving replica: exactly one answer per request — a prediction computed through the
// snapshot's feature pipeline and model, or an explicit error (no model, bad input naming
// row and feature, deadline passed) — and versions swapped between requests.
#include <numeric>

#include "actors/serving/replica.hpp"
#include "compute/data/feature_pipeline.hpp"
#include "compute/model_file.hpp"
#include "compute/nn/sequential.hpp"
#include "messaging/errors.hpp"
#include "tests/actor_fixture.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
predict_request make_request(std::uint64_t id, std::uint32_t rows, float value = 0.25f, std::uint32_t top_k = 3) {
  predict_request request;
  request.request_id = id;
  request.rows = rows;
  request.top_k = top_k;
  request.features.values().assign(std::size_t(rows) * 784, value);
  for (std::size_t index = 0; index < request.features.values().size(); ++index) request.features.values()[index] = float(index % 255);
  return request;
}
}  // namespace

TEST_CASE("a replica answers with the model and pipeline of the snapshot it was sent") {
  test::actor_fixture f;
  auto replica = f.hold(actors::spawn_serving_replica(*f.system, {}));
  auto early = f.ask<predict_reply>(replica, make_request(1, 1));
  REQUIRE(rml_code(*early.second) == errc::not_ready);

  caf::anon_send(replica, test::make_snapshot(1));
  auto request = make_request(2, 2);
  auto answer = f.ask<predict_reply>(replica, request);
  REQUIRE(answer.first.has_value());
  const predict_reply& reply = *answer.first;
  REQUIRE(reply.request_id == 2);
  REQUIRE(reply.model_version == 1);
  REQUIRE(reply.classes == 10);
  REQUIRE(reply.top_classes.size() == 6);

  // The same computation by hand: pipeline, then the model, then softmax.
  auto model = nn::make_architecture("mlp");
  model->initialize(1);
  auto pipeline = data::feature_pipeline::from_spec("scale(0.5)", 784);
  tensor features = tensor::from(request.features.values(), {2, 784});
  pipeline->apply(features);
  auto compute = make_cpu_backend({1});
  tape recorder(*compute, tape::mode::inference);
  tensor expected = tensor::empty({2, 10});
  compute->softmax_forward(recorder.value(model->forward(recorder, recorder.input(features))), expected);
  for (std::size_t index = 0; index < 20; ++index) REQUIRE(reply.probabilities.values[index] == Approx(expected.data()[index]).epsilon(1e-5));
  for (std::uint32_t row = 0; row < 2; ++row) {
    const float* p = reply.probabilities.values.data() + row * 10;
    REQUIRE(std::accumulate(p, p + 10, 0.0) == Approx(1.0).epsilon(1e-5));
    const auto* top = reply.top_classes.data() + row * 3;
    REQUIRE(top[0] == std::max_element(p, p + 10) - p);
    REQUIRE(p[top[0]] >= p[top[1]]);
    REQUIRE(p[top[1]] >= p[top[2]]);
  }
}

TEST_CASE("a replica swaps versions between requests") {
  test::actor_fixture f;
  auto replica = f.hold(actors::spawn_serving_replica(*f.system, {}));
  caf::anon_send(replica, test::make_snapshot(1, "mlp", 1));
  REQUIRE(f.ask<predict_reply>(replica, make_request(1, 1)).first->model_version == 1);
  caf::anon_send(replica, test::make_snapshot(2, "mlp", 2));
  const auto second = f.ask<predict_reply>(replica, make_request(2, 1));
  REQUIRE(second.first->model_version == 2);
  // A broken snapshot leaves the replica serving what it had.
  auto broken = test::make_snapshot(3);
  broken.model_file.resize(10);
  caf::anon_send(replica, broken);
  REQUIRE(f.ask<predict_reply>(replica, make_request(3, 1)).first->model_version == 2);
}

TEST_CASE("bad requests and passed deadlines get explicit errors naming what was wrong") {
  test::actor_fixture f;
  auto replica = f.hold(actors::spawn_serving_replica(*f.system, {}));
  caf::anon_send(replica, test::make_snapshot(1));

  auto short_request = make_request(5, 2);
  short_request.features.values().resize(1000);
  auto wrong = f.ask<predict_reply>(replica, short_request);
  REQUIRE(rml_code(*wrong.second) == errc::shape_mismatch);
  REQUIRE(describe(*wrong.second) == "request 5: 1000 values for 2 rows of 784 features");

  auto nan_request = make_request(6, 2);
  nan_request.features.values()[784 + 17] = std::nanf("");
  REQUIRE(describe(*f.ask<predict_reply>(replica, nan_request).second) == "request 6: row 1 feature 17 is not finite");

  auto empty = make_request(7, 1);
  empty.rows = 0;
  REQUIRE(rml_code(*f.ask<predict_reply>(replica, empty).second) == errc::invalid_argument);

  f.scheduler->advance_time(caf::timespan(std::chrono::milliseconds(5)));
  auto late = make_request(8, 1);
  late.deadline_us = actors::actor_clock_us(*f.system) - 1;
  auto expired = f.ask<predict_reply>(replica, late);
  REQUIRE(rml_code(*expired.second) == errc::deadline_exceeded);
  auto in_time = make_request(9, 1);
  in_time.deadline_us = actors::actor_clock_us(*f.system) + 1000;
  REQUIRE(f.ask<predict_reply>(replica, in_time).first.has_value());
}

TEST_CASE("a replica never answers NaN: a model that computes it answers an error, one with NaN weights is not loaded") {
  test::actor_fixture f;
  auto replica = f.hold(actors::spawn_serving_replica(*f.system, {}));
  // Finite weights that overflow on these inputs: the logits are infinite, softmax is NaN.
  auto overflowing = test::make_snapshot(1, "mlp", 1, "scale(0.5)", [](nn::sequential& model) {
    for (parameter* each : model.parameters()) {
      for (float& value : each->value.values()) value = 1e30f;
    }
  });
  caf::anon_send(replica, overflowing);
  auto answer = f.ask<predict_reply>(replica, make_request(3, 2));
  REQUIRE(rml_code(*answer.second) == errc::non_finite);
  REQUIRE(describe(*answer.second) == "request 3: model version 1 answered a non-finite probability for row 0");

  // A version it cannot load is refused, and the registry told (for the operator).
  std::vector<model_refused> told;
  auto registry = f.hold(f.system->spawn([&told](caf::event_based_actor*) -> caf::behavior {
    return {[&told](model_refused& refused) { told.push_back(refused); }};
  }));
  f.system->registry().put(names::registry, registry);
  auto poisoned = test::make_snapshot(2, "mlp", 1, "scale(0.5)", [](nn::sequential& model) { model.parameters()[1]->value.data()[0] = INFINITY; });
  caf::anon_send(replica, poisoned);
  // Still version 1: the poisoned version was refused at load.
  REQUIRE(describe(*f.ask<predict_reply>(replica, make_request(4, 1)).second).find("model version 1") != std::string::npos);
  f.scheduler->run();
  f.system->registry().erase(names::registry);
  REQUIRE(told.size() == 1);
  REQUIRE(told[0].version == 2);
  REQUIRE(told[0].component == "serving/model/main");
  REQUIRE(told[0].reason.find("not finite") != std::string::npos);
}
