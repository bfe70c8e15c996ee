#include "messaging/feature_check.hpp"

#include <cfloat>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace rml::messaging {

namespace {

/// `value_at(index)` reads the index-th float: one loop serves aligned and unaligned floats.
template <class ValueAt>
status check_each(std::size_t count, ValueAt value_at, std::uint32_t width, float magnitude_max, std::string_view what,
                  const char* row_name) {
  const float bound = magnitude_max > 0 ? magnitude_max : FLT_MAX;  // infinity fails both
  for (std::size_t index = 0; index < count; ++index) {
    const float value = value_at(index);
    // One comparison for the common case: NaN fails it as well as a value beyond the bound.
    if (std::fabs(value) <= bound) continue;
    const std::string row = row_name == nullptr ? "" : std::string(row_name) + " " + std::to_string(width ? index / width : 0) + " ";
    const std::string where = std::string(what) + ": " + row + "feature " + std::to_string(width ? index % width : index);
    if (std::isnan(value)) return error(errc::invalid_argument, where + " is NaN");
    if (std::isinf(value)) return error(errc::invalid_argument, where + " is infinite");
    char text[64];
    std::snprintf(text, sizeof(text), " is %g, beyond the bound of ±%g", double(value), double(magnitude_max));
    return error(errc::invalid_argument, where + text);
  }
  return {};
}

}  // namespace

status check_features(std::span<const float> values, std::uint32_t width, float magnitude_max, std::string_view what,
                      const char* row_name) {
  return check_each(values.size(), [values](std::size_t index) { return values[index]; }, width, magnitude_max, what, row_name);
}

status check_features(std::span<const std::byte> floats, std::uint32_t width, float magnitude_max, std::string_view what,
                      const char* row_name) {
  const std::byte* first = floats.data();
  const auto value_at = [first](std::size_t index) {
    float value;
    std::memcpy(&value, first + index * sizeof(float), sizeof(float));
    return value;
  };
  return check_each(floats.size() / sizeof(float), value_at, width, magnitude_max, what, row_name);
}

}  // namespace rml::messaging
