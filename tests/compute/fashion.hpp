#pragma once
// Fashion-MNIST for the training tests, loaded once per test executable; a missing or
// broken dataset fails the test that asked, naming the file.
#include <catch2/catch.hpp>

#include "compute/data/dataset.hpp"

namespace rml::test {

inline const data::dataset& fashion(data::split part) {
  static auto train = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::train);
  static auto test = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::test);
  auto& chosen = part == data::split::train ? train : test;
  if (!chosen.ok()) FAIL(chosen.error().message());
  return *chosen;
}

}  // namespace rml::test
