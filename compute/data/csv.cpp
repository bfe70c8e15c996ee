// CSV reader for numeric tables. Hand-written rather than a library: the format accepted is
// deliberately narrow (a header row, comma-separated numbers, no quoting inside numeric
// fields), and every refusal must name file, line and column, which a generic parser would
// make us reconstruct.
#include <charconv>
#include <cmath>
#include <fstream>

#include "compute/data/dataset.hpp"

namespace rml::data {
namespace {
constexpr std::size_t csv_line_bytes_max = 1 << 24;
constexpr std::int32_t csv_classes_max = 1 << 20;

std::vector<std::string_view> split_fields(std::string_view line) {
  std::vector<std::string_view> fields;
  while (true) {
    const std::size_t comma = line.find(',');
    std::string_view field = line.substr(0, comma);
    while (!field.empty() && (field.front() == ' ' || field.front() == '\t')) field.remove_prefix(1);
    while (!field.empty() && (field.back() == ' ' || field.back() == '\t')) field.remove_suffix(1);
    if (field.size() >= 2 && field.front() == '"' && field.back() == '"') {
      field = field.substr(1, field.size() - 2);
    }
    fields.push_back(field);
    if (comma == std::string_view::npos) return fields;
    line.remove_prefix(comma + 1);
  }
}

error csv_error(const std::string& path, std::int64_t line, const std::string& reason) {
  return error(errc::parse_error, path + ":" + std::to_string(line) + ": " + reason);
}
}  // namespace

result<dataset> read_csv(const std::string& path, const std::string& label_column) {
  std::ifstream input(path);
  if (!input) return error(errc::io_error, path + ": cannot open");
  std::string line;
  std::int64_t line_number = 0;
  auto next_line = [&]() {
    while (std::getline(input, line)) {
      ++line_number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (!line.empty()) return true;
    }
    return false;
  };
  if (!next_line()) return csv_error(path, 1, "empty file, expected a header row");
  const std::vector<std::string_view> header = split_fields(line);
  std::vector<std::string> names(header.begin(), header.end());
  std::size_t label_index = names.size();
  for (std::size_t index = 0; index < names.size(); ++index) {
    if (names[index] == label_column) label_index = index;
  }
  if (label_index == names.size()) {
    return csv_error(path, line_number, "no column named '" + label_column + "' in the header");
  }
  if (names.size() < 2) return csv_error(path, line_number, "need at least one feature column");
  const std::int64_t features = std::int64_t(names.size()) - 1;

  std::vector<float> values;
  dataset result;
  result.source = path;
  while (next_line()) {
    if (line.size() > csv_line_bytes_max) {
      return csv_error(path, line_number, "line longer than " + std::to_string(csv_line_bytes_max) + " bytes");
    }
    const std::vector<std::string_view> fields = split_fields(line);
    if (fields.size() != names.size()) {
      return csv_error(path, line_number, "expected " + std::to_string(names.size()) +
                                              " fields, got " + std::to_string(fields.size()));
    }
    for (std::size_t index = 0; index < fields.size(); ++index) {
      const std::string_view field = fields[index];
      const char* end = field.data() + field.size();
      if (index == label_index) {
        std::int64_t label = 0;
        auto [stop, failure] = std::from_chars(field.data(), end, label);
        if (failure != std::errc() || stop != end || label < 0 || label >= csv_classes_max) {
          return csv_error(path, line_number,
                           "column '" + names[index] + "': label '" + std::string(field) +
                               "' is not an integer in [0, " + std::to_string(csv_classes_max) + ")");
        }
        result.labels.push_back(std::int32_t(label));
        result.classes = std::max(result.classes, std::int32_t(label) + 1);
        continue;
      }
      float number = 0.0f;
      auto [stop, failure] = std::from_chars(field.data(), end, number);
      if (field.empty() || failure != std::errc() || stop != end) {
        return csv_error(path, line_number,
                         "column '" + names[index] + "': '" + std::string(field) + "' is not a number");
      }
      if (!std::isfinite(number)) {
        return csv_error(path, line_number,
                         "column '" + names[index] + "': '" + std::string(field) + "' is not finite");
      }
      values.push_back(number);
    }
  }
  if (input.bad()) return error(errc::io_error, path + ": read failed");
  if (result.labels.empty()) return csv_error(path, line_number + 1, "no data rows after the header");
  result.features = tensor::from(values, {result.rows(), features});
  return result;
}

}  // namespace rml::data
