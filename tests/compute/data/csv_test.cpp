// CSV reader: numeric tables with a named label column; malformed input refused with file,
// line, column and reason.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "compute/data/dataset.hpp"

using namespace rml;

namespace {
std::string write_csv(const std::string& name, const std::string& text) {
  const std::string path = (std::filesystem::temp_directory_path() /
                            ("rml_csv_test_" + std::to_string(::getpid()) + "_" + name + ".csv")).string();
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("a CSV file with a header and a named label column is read") {
  const std::string path = write_csv("good", "a, label ,b\r\n1.5,2,-3\n\n0,0,1e-3\n");
  auto data = data::read_csv(path, "label");
  REQUIRE(data.ok());
  REQUIRE(data->features.shape() == tensor_shape{2, 2});
  REQUIRE(data->features.data()[1] == -3.0f);
  REQUIRE(data->features.data()[3] == Approx(1e-3f));
  REQUIRE(data->labels == std::vector<std::int32_t>{2, 0});
  REQUIRE(data->classes == 3);
  std::filesystem::remove(path);
}

TEST_CASE("malformed CSV input is refused with file, line and reason") {
  struct bad_case {
    const char* text;
    const char* reason;
  };
  const bad_case cases[] = {
      {"", ":1: empty file, expected a header row"},
      {"x,y\n1,2\n", ":1: no column named 'label' in the header"},
      {"x,label\n1,2\n3\n", ":3: expected 2 fields, got 1"},
      {"x,label\n1,2\nabc,1\n", ":3: column 'x': 'abc' is not a number"},
      {"x,label\n1,2\n,1\n", ":3: column 'x': '' is not a number"},
      {"x,label\nnan,1\n", ":2: column 'x': 'nan' is not finite"},
      {"x,label\n1,-1\n", ":2: column 'label': label '-1' is not an integer in [0, 1048576)"},
      {"x,label\n1,2.5\n", ":2: column 'label': label '2.5' is not an integer in [0, 1048576)"},
      {"x,label\n", ":2: no data rows after the header"},
  };
  int index = 0;
  for (const bad_case& bad : cases) {
    const std::string path = write_csv("bad" + std::to_string(index++), bad.text);
    auto data = data::read_csv(path, "label");
    REQUIRE_FALSE(data.ok());
    REQUIRE(data.error().message() == path + bad.reason);
    std::filesystem::remove(path);
  }
  REQUIRE(data::read_csv("/nonexistent.csv", "label").error().code() == errc::io_error);
}
