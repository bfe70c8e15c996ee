#include "messaging/feature_check.hpp"

#include <cfloat>
#include <cmath>
#include <cstdio>

namespace rml::messaging {

status check_features(std::span<const float> values, std::uint32_t width, float magnitude_max, std::string_view what,
                      const char* row_name) {
  const float bound = magnitude_max > 0 ? magnitude_max : FLT_MAX;  // infinity fails both
  for (std::size_t index = 0; index < values.size(); ++index) {
    // One comparison for the common case: NaN fails it as well as a value beyond the bound.
    if (std::fabs(values[index]) <= bound) continue;
    const float value = values[index];
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

}  // namespace rml::messaging
