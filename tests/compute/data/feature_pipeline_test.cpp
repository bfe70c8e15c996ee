// The feature pipeline: each transform's arithmetic, running standardisation, state that
// round-trips exactly (serving applies what training learned), and spec errors.
#include <catch2/catch.hpp>

#include <cmath>

#include "compute/data/feature_pipeline.hpp"
#include "tests/compute/reference.hpp"

using namespace rml;

TEST_CASE("scale and clip apply in order") {
  auto pipeline = data::feature_pipeline::from_spec("scale(0.5); clip(-1, 2)", 3);
  REQUIRE(pipeline.ok());
  tensor rows = tensor::from(std::vector<float>{1, -4, 10, 2, 0, 3}, {2, 3});
  pipeline->apply(rows);
  REQUIRE(std::vector<float>(rows.values().begin(), rows.values().end()) == std::vector<float>{0.5f, -1, 2, 1, 0, 1.5f});
  REQUIRE(pipeline->spec() == "scale(0.5); clip(-1,2)");
  REQUIRE(pipeline->state().empty());
}

TEST_CASE("standardize learns running statistics and round-trips them") {
  auto generator = test::seeded_generator();
  const std::int64_t rows = 500, columns = 4;
  const auto raw = test::random_values(generator, std::size_t(rows * columns), 0, 255);
  tensor batch = test::to_tensor(raw, {rows, columns});
  auto training = data::feature_pipeline::from_spec("scale(0.00392156862745098); standardize", columns);
  REQUIRE(training.ok());
  // Observe in two halves: the running statistics equal those of the whole.
  training->observe(batch.rows(0, 200));
  training->observe(batch.rows(200, rows));
  tensor features = batch.clone();
  training->apply(features);
  for (std::int64_t column = 0; column < columns; ++column) {
    double sum = 0, squares = 0;
    for (std::int64_t row = 0; row < rows; ++row) sum += features.data()[row * columns + column];
    const double mean = sum / rows;
    for (std::int64_t row = 0; row < rows; ++row) squares += std::pow(features.data()[row * columns + column] - mean, 2);
    REQUIRE(mean == Approx(0).margin(1e-4));
    REQUIRE(squares / rows == Approx(1).epsilon(1e-3));
  }
  // Serving rebuilds the pipeline from spec and state and computes the same features.
  auto serving = data::feature_pipeline::from_spec(training->spec(), columns);
  REQUIRE(serving->restore(training->state()).ok());
  tensor served = batch.clone();
  serving->apply(served);
  test::require_close(served, test::to_double(features), 1e-5, "served features");
}

TEST_CASE("bad pipeline specs and states are refused with the transform named") {
  REQUIRE(data::feature_pipeline::from_spec("scale(x)", 2).error().message() ==
          "feature transform 'scale(x)': argument 'x' is not a finite number");
  REQUIRE(data::feature_pipeline::from_spec("normalize", 2).error().message() ==
          "feature transform 'normalize': unknown transform 'normalize' (known: scale, standardize, clip)");
  REQUIRE(data::feature_pipeline::from_spec("clip(2,1)", 2).error().message() ==
          "feature transform 'clip(2,1)': low must be below high");
  REQUIRE(data::feature_pipeline::from_spec("standardize; standardize", 2).error().code() == errc::parse_error);
  auto pipeline = data::feature_pipeline::from_spec("standardize", 2);
  REQUIRE(pipeline->restore(std::vector<float>{1, 2, 3}).error().code() == errc::corrupted);
}
