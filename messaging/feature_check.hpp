#pragma once
// The one check every feature value a client sends passes, at decode (ZeroMQ frames, KServe
// V2 bodies) and at ingest: finite, and within a magnitude bound. Finite values of 3e38 are
// as poisonous as NaN: one batch of them drove the online model's weights to NaN. The
// bound is a flag (`--feature-magnitude-max`) and a field of the topology's feature spec.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "compute/status.hpp"

namespace rml::messaging {

/// The default bound on |feature|: far above pixels (0..255) or standardised data, far
/// below what overflows float32 arithmetic in a layer (sums of 10^3 products).
inline constexpr float feature_magnitude_max_default = 1e6f;

/// Checks `values` (rows of `width` features): each finite and, when `magnitude_max` > 0,
/// within ±magnitude_max. The error (invalid_argument) starts with `what`, then names the
/// row (as `row_name`) and the feature: "predict request 7: row 2 feature 13 is NaN"; with
/// `row_name` null (a single row) only the feature: "batch 5: event 17: feature 3 is NaN".
status check_features(std::span<const float> values, std::uint32_t width, float magnitude_max, std::string_view what,
                      const char* row_name = "row");
/// The same for floats that may lie unaligned in a receive buffer (a feature_block's view).
status check_features(std::span<const std::byte> floats, std::uint32_t width, float magnitude_max, std::string_view what,
                      const char* row_name = "row");

}  // namespace rml::messaging
