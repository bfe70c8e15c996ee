#include "compute/data/feature_pipeline.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cmath>

namespace rml::data {
namespace {
constexpr float standardize_epsilon = 1e-6f;

std::string_view trim(std::string_view text) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  return text;
}

error spec_error(std::string_view item, const std::string& reason) {
  return error(errc::parse_error, "feature transform '" + std::string(item) + "': " + reason);
}

/// Splits "name(a,b)" into name and float arguments.
result<std::pair<std::string, std::vector<float>>> parse_call(std::string_view item) {
  const std::size_t open = item.find('(');
  std::pair<std::string, std::vector<float>> call{std::string(trim(item.substr(0, open))), {}};
  if (open == std::string_view::npos) return call;
  if (item.back() != ')') return spec_error(item, "missing ')'");
  std::string_view rest = item.substr(open + 1, item.size() - open - 2);
  while (!rest.empty()) {
    const std::size_t comma = rest.find(',');
    const std::string_view field = trim(rest.substr(0, comma));
    float value = 0;
    auto [end, failure] = std::from_chars(field.data(), field.data() + field.size(), value);
    if (failure != std::errc() || end != field.data() + field.size() || !std::isfinite(value)) {
      return spec_error(item, "argument '" + std::string(field) + "' is not a finite number");
    }
    call.second.push_back(value);
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return call;
}
}  // namespace

result<feature_pipeline> feature_pipeline::from_spec(std::string_view spec, std::int64_t feature_count) {
  if (feature_count < 1) return error(errc::invalid_argument, "feature pipeline: feature count must be >= 1");
  feature_pipeline pipeline;
  pipeline.feature_count_ = feature_count;
  bool standardizes = false;
  while (!trim(spec).empty()) {
    const std::size_t separator = spec.find(';');
    const std::string_view item = trim(spec.substr(0, separator));
    spec = separator == std::string_view::npos ? std::string_view() : spec.substr(separator + 1);
    auto call = parse_call(item);
    if (!call) return call.error();
    const auto& [name, arguments] = *call;
    auto expect = [&](std::size_t count) -> status {
      if (arguments.size() == count) return {};
      return spec_error(item, "expects " + std::to_string(count) + " arguments, got " + std::to_string(arguments.size()));
    };
    if (name == "scale") {
      if (auto ok = expect(1); !ok) return ok.error();
      pipeline.transforms_.push_back({kind::scale, arguments[0], 0});
    } else if (name == "standardize") {
      if (auto ok = expect(0); !ok) return ok.error();
      if (standardizes) return spec_error(item, "a pipeline standardizes at most once");
      standardizes = true;
      pipeline.transforms_.push_back({kind::standardize, 0, 0});
    } else if (name == "clip") {
      if (auto ok = expect(2); !ok) return ok.error();
      if (!(arguments[0] < arguments[1])) return spec_error(item, "low must be below high");
      pipeline.transforms_.push_back({kind::clip, arguments[0], arguments[1]});
    } else {
      return spec_error(item, "unknown transform '" + name + "' (known: scale, standardize, clip)");
    }
  }
  if (standardizes) {
    pipeline.mean_.assign(std::size_t(feature_count), 0.0);
    pipeline.squares_.assign(std::size_t(feature_count), 0.0);
  }
  return pipeline;
}

std::string feature_pipeline::spec() const {
  std::string text;
  char number[32];
  for (const transform& step : transforms_) {
    if (!text.empty()) text += "; ";
    switch (step.type) {
      case kind::scale:
        std::snprintf(number, sizeof(number), "%.9g", double(step.first));
        text += std::string("scale(") + number + ")";
        break;
      case kind::standardize:
        text += "standardize";
        break;
      case kind::clip: {
        char high[32];
        std::snprintf(number, sizeof(number), "%.9g", double(step.first));
        std::snprintf(high, sizeof(high), "%.9g", double(step.second));
        text += std::string("clip(") + number + "," + high + ")";
        break;
      }
    }
  }
  return text;
}

void feature_pipeline::apply_row(float* row, std::size_t end) const {
  for (std::size_t index = 0; index < end; ++index) {
    const transform& step = transforms_[index];
    switch (step.type) {
      case kind::scale:
        for (std::int64_t column = 0; column < feature_count_; ++column) row[column] *= step.first;
        break;
      case kind::standardize:
        for (std::int64_t column = 0; column < feature_count_; ++column) {
          const double variance = observed_rows_ > 1 ? squares_[std::size_t(column)] / observed_rows_ : 1.0;
          row[column] = float((row[column] - mean_[std::size_t(column)]) / std::sqrt(variance + standardize_epsilon));
        }
        break;
      case kind::clip:
        for (std::int64_t column = 0; column < feature_count_; ++column) row[column] = std::clamp(row[column], step.first, step.second);
        break;
    }
  }
}

void feature_pipeline::observe(const tensor& raw_rows) {
  if (mean_.empty()) return;
  RML_ASSERT(raw_rows.rank() == 2 && raw_rows.dim(1) == feature_count_, "rows of the pipeline's feature count");
  std::size_t standardize_at = 0;
  while (transforms_[standardize_at].type != kind::standardize) ++standardize_at;
  std::vector<float> row(static_cast<std::size_t>(feature_count_));
  for (std::int64_t index = 0; index < raw_rows.dim(0); ++index) {
    std::copy_n(raw_rows.data() + index * feature_count_, feature_count_, row.begin());
    apply_row(row.data(), standardize_at);
    observed_rows_ += 1;
    for (std::size_t column = 0; column < row.size(); ++column) {
      const double delta = row[column] - mean_[column];
      mean_[column] += delta / observed_rows_;
      squares_[column] += delta * (row[column] - mean_[column]);
    }
  }
}

void feature_pipeline::apply(tensor& rows) const {
  RML_ASSERT(rows.rank() == 2 && rows.dim(1) == feature_count_, "rows of the pipeline's feature count");
  for (std::int64_t index = 0; index < rows.dim(0); ++index) apply_row(rows.data() + index * feature_count_, transforms_.size());
}

std::vector<float> feature_pipeline::state() const {
  if (mean_.empty()) return {};
  // Counts above 2^24 lose precision in a float; the count travels as two floats.
  std::vector<float> saved{float(std::floor(observed_rows_ / 16777216.0)), float(std::fmod(observed_rows_, 16777216.0))};
  for (double value : mean_) saved.push_back(float(value));
  for (double value : squares_) saved.push_back(float(value));
  return saved;
}

status feature_pipeline::restore(std::span<const float> saved) {
  const std::size_t expected = mean_.empty() ? 0 : 2 + 2 * mean_.size();
  if (saved.size() != expected) {
    return error(errc::corrupted, "feature pipeline '" + spec() + "': state holds " + std::to_string(saved.size()) +
                                      " values, expected " + std::to_string(expected));
  }
  if (expected == 0) return {};
  observed_rows_ = double(saved[0]) * 16777216.0 + double(saved[1]);
  for (std::size_t column = 0; column < mean_.size(); ++column) {
    mean_[column] = saved[2 + column];
    squares_[column] = saved[2 + mean_.size() + column];
  }
  return {};
}

}  // namespace rml::data
