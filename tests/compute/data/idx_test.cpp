// IDX reader: plain and gzipped files it writes itself, the real Fashion-MNIST files, and
// every malformed case refused with the file and the reason.
#include <catch2/catch.hpp>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "compute/data/dataset.hpp"

using namespace rml;

namespace {
std::string temporary_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("rml_idx_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

std::vector<unsigned char> idx_bytes(std::vector<std::uint32_t> dims, const std::vector<unsigned char>& values,
                                     unsigned char type = 0x08) {
  std::vector<unsigned char> bytes = {0, 0, type, static_cast<unsigned char>(dims.size())};
  for (std::uint32_t d : dims) {
    for (int shift = 24; shift >= 0; shift -= 8) bytes.push_back(static_cast<unsigned char>(d >> shift));
  }
  bytes.insert(bytes.end(), values.begin(), values.end());
  return bytes;
}

void write_plain(const std::string& path, const std::vector<unsigned char>& bytes) {
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

void write_gzip(const std::string& path, const std::vector<unsigned char>& bytes) {
  gzFile file = gzopen(path.c_str(), "wb");
  REQUIRE(file != nullptr);
  REQUIRE(gzwrite(file, bytes.data(), unsigned(bytes.size())) == int(bytes.size()));
  gzclose(file);
}
}  // namespace

TEST_CASE("IDX files are read whether gzipped or not") {
  const std::vector<unsigned char> pixels = {0, 255, 51, 102, 0, 0, 0, 255};
  const auto images = idx_bytes({2, 2, 2}, pixels);
  const auto labels = idx_bytes({2}, {3, 7});
  const std::string plain_images = temporary_path("images"), gz_labels = temporary_path("labels.gz");
  write_plain(plain_images, images);
  write_gzip(gz_labels, labels);
  auto data = data::read_idx_dataset(plain_images, gz_labels);
  REQUIRE(data.ok());
  REQUIRE(data->features.shape() == tensor_shape{2, 4});
  REQUIRE(data->features.data()[1] == 1.0f);
  REQUIRE(data->features.data()[2] == Approx(0.2f));
  REQUIRE(data->labels == std::vector<std::int32_t>{3, 7});
  REQUIRE(data->classes == 8);
  std::filesystem::remove(plain_images);
  std::filesystem::remove(gz_labels);
}

TEST_CASE("malformed IDX files are refused with the file and the reason") {
  const std::string path = temporary_path("bad.gz");
  SECTION("missing") {
    REQUIRE(data::read_idx(temporary_path("absent")).error().code() == errc::io_error);
  }
  SECTION("truncated data") {
    write_gzip(path, idx_bytes({3, 2, 2}, {1, 2, 3, 4, 5}));
    auto read = data::read_idx(path);
    REQUIRE(read.error().code() == errc::truncated);
    REQUIRE(read.error().message() == path + ": ends before its 12 elements");
  }
  SECTION("truncated header") {
    write_plain(path, {0, 0, 8});
    REQUIRE(data::read_idx(path).error().code() == errc::truncated);
  }
  SECTION("foreign magic") {
    write_plain(path, {'P', 'K', 3, 4, 0, 0, 0, 0});
    REQUIRE(data::read_idx(path).error().code() == errc::foreign_format);
  }
  SECTION("unsupported element type") {
    write_plain(path, idx_bytes({1}, {0, 0, 0, 0}, 0x0D));
    REQUIRE(data::read_idx(path).error().message().find("not supported") != std::string::npos);
  }
  SECTION("images and labels disagree on the count") {
    const std::string labels = temporary_path("labels");
    write_plain(path, idx_bytes({2, 1, 1}, {1, 2}));
    write_plain(labels, idx_bytes({3}, {1, 2, 3}));
    auto read = data::read_idx_dataset(path, labels);
    REQUIRE(read.error().message() == path + " holds 2 images but " + labels + " holds 3 labels");
    std::filesystem::remove(labels);
  }
  std::filesystem::remove(path);
}

TEST_CASE("Fashion-MNIST loads from Debian's dataset-fashion-mnist") {
  auto train = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::train);
  REQUIRE(train.ok());
  REQUIRE(train->rows() == 60000);
  REQUIRE(train->feature_count() == 784);
  REQUIRE(train->classes == 10);
  auto test = data::load_fashion_mnist(data::default_fashion_mnist_directory(), data::split::test);
  REQUIRE(test.ok());
  REQUIRE(test->rows() == 10000);
  float largest = 0;
  for (float pixel : test->features.values()) largest = std::max(largest, pixel);
  REQUIRE(largest == 1.0f);
}
