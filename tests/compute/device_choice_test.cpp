// Choosing a backend: "cuda" gives the GPU where there is one, else the CPU with a notice
// that says why; an unknown device name is an error naming it.
#include <catch2/catch.hpp>

#include "compute/device_choice.hpp"

using namespace rml;

TEST_CASE("a device name is parsed or refused with the choices") {
  REQUIRE(*parse_device("cpu") == device_kind::cpu);
  REQUIRE(*parse_device("cuda") == device_kind::cuda);
  auto refused = parse_device("tpu");
  REQUIRE(!refused);
  REQUIRE(refused.error().message() == "device 'tpu' is not one of cpu, cuda");
}

TEST_CASE("asking for cuda gives the GPU or the CPU with a notice saying why") {
  auto chosen = make_backend({.device = device_kind::cuda, .cpu_threads = 1});
  REQUIRE(chosen.compute != nullptr);
  if (chosen.compute->device() == device_kind::cuda) {
    REQUIRE(built_with_cuda());
    REQUIRE(chosen.notice.empty());
    return;
  }
  INFO(chosen.notice);
  REQUIRE(chosen.notice.find("computing on the CPU instead") != std::string::npos);
  if (!built_with_cuda()) REQUIRE(chosen.notice.find("built without the CUDA backend") != std::string::npos);
  // The stand-in computes: a linear layer on it gives x·wᵀ.
  tensor x = tensor::from(std::vector<float>{1, 2}, {1, 2}), w = tensor::from(std::vector<float>{3, 4}, {1, 2});
  tensor y = chosen.compute->allocate({1, 1});
  chosen.compute->linear_forward(x, w, tensor(), y);
  REQUIRE(y.data()[0] == 11.0f);
}

TEST_CASE("asking for the cpu gives the cpu, with no notice") {
  auto chosen = make_backend({.device = device_kind::cpu, .cpu_threads = 1});
  REQUIRE(chosen.compute->device() == device_kind::cpu);
  REQUIRE(chosen.notice.empty());
}
