// The model file: exact round trips, and every damaged input refused with the right error
// (truncated at every length, any flipped byte, foreign files, newer versions).
#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "compute/model_file.hpp"

using namespace rml;

namespace {
nn::sequential trained_like_model() {
  auto model = nn::make_architecture("lenet");
  REQUIRE(model.ok());
  model->initialize(99);
  return std::move(model.value());
}

std::vector<float> all_weights(nn::sequential& model) {
  std::vector<float> weights;
  for (parameter* p : model.parameters()) weights.insert(weights.end(), p->value.values().begin(), p->value.values().end());
  return weights;
}

std::filesystem::path temporary_path(const std::string& name) {
  return std::filesystem::temp_directory_path() / ("rml_model_file_test_" + std::to_string(::getpid()) + "_" + name);
}
}  // namespace

TEST_CASE("a model file round-trips architecture, weights and metadata exactly") {
  nn::sequential model = trained_like_model();
  const model_metadata metadata{{"epochs", "1"}, {"note", "ünïcode and spaces"}};
  const auto path = temporary_path("roundtrip.rml");
  REQUIRE(save_model(path.string(), model, metadata).ok());
  auto loaded = load_model(path.string());
  REQUIRE(loaded.ok());
  REQUIRE(loaded->model.spec() == model.spec());
  REQUIRE(loaded->metadata == metadata);
  REQUIRE(all_weights(loaded->model) == all_weights(model));
  // Encoding is deterministic: the same model gives the same bytes.
  REQUIRE(encode_model(loaded->model, metadata) == encode_model(model, metadata));
  std::filesystem::remove(path);
}

TEST_CASE("a truncated model file is refused as truncated at every length") {
  nn::sequential model = std::move(nn::make_architecture("mlp").value());
  model.initialize(1);
  const auto bytes = encode_model(model, {{"k", "v"}});
  // Every cut inside the header and a spread of cuts through the payload.
  for (std::size_t length = 0; length < bytes.size(); length += (length < 64 ? 1 : 4099)) {
    CAPTURE(length);
    auto decoded = decode_model(std::span(bytes.data(), length), "cut.rml");
    REQUIRE_FALSE(decoded.ok());
    REQUIRE(decoded.error().code() == errc::truncated);
    REQUIRE(decoded.error().message().find("cut.rml") != std::string::npos);
  }
}

TEST_CASE("a model file with any flipped byte is refused") {
  nn::sequential model = std::move(nn::make_architecture("mlp").value());
  model.initialize(2);
  const auto original = encode_model(model, {});
  for (std::size_t position : {std::size_t(9), std::size_t(12), std::size_t(20), std::size_t(30), original.size() / 2,
                               original.size() - 9, original.size() - 1}) {
    CAPTURE(position);
    auto bytes = original;
    bytes[position] ^= std::byte{0x40};
    auto decoded = decode_model(bytes, "flipped.rml");
    REQUIRE_FALSE(decoded.ok());
    const errc code = decoded.error().code();
    // A flip in the version field reads as a version this build does not know; a flip in
    // the size field as a truncated or over-long file; anywhere else as a checksum mismatch.
    REQUIRE((code == errc::corrupted || code == errc::unsupported_version || code == errc::truncated));
    if (position >= 24) REQUIRE(code == errc::corrupted);
  }
  SECTION("trailing bytes are refused as corrupted") {
    auto bytes = original;
    bytes.push_back(std::byte{0});
    REQUIRE(decode_model(bytes, "long.rml").error().code() == errc::corrupted);
  }
}

TEST_CASE("a foreign file and a newer format version are refused with what they are") {
  const std::string text = "PK\x03\x04 this is a zip file, not a model";
  std::vector<std::byte> foreign(text.size());
  std::memcpy(foreign.data(), text.data(), text.size());
  auto decoded = decode_model(foreign, "archive.zip");
  REQUIRE(decoded.error().code() == errc::foreign_format);
  REQUIRE(decoded.error().message() == "archive.zip: not an rml model file (wrong magic)");

  nn::sequential model = std::move(nn::make_architecture("mlp").value());
  model.initialize(3);
  auto bytes = encode_model(model, {});
  const std::uint32_t future = model_format_version + 1;
  std::memcpy(bytes.data() + 8, &future, 4);
  auto newer = decode_model(bytes, "future.rml");
  REQUIRE(newer.error().code() == errc::unsupported_version);
  REQUIRE(newer.error().message().find("version 2") != std::string::npos);
}

TEST_CASE("a missing model file is an io error naming the path") {
  auto loaded = load_model("/nonexistent/model.rml");
  REQUIRE(loaded.error().code() == errc::io_error);
  REQUIRE(loaded.error().message() == "/nonexistent/model.rml: cannot open");
}
