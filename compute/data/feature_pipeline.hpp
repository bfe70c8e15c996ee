#pragma once
// The feature pipeline: transforms applied to raw feature rows before the model sees them.
// The same object runs in training (which also updates its statistics) and in serving
// (which only applies them); its spec and state travel inside every model snapshot, so the
// pipeline that trained a model is the one that serves it (no training/serving skew).
//
// Spec: transforms separated by ';', applied in order:
//   scale(f)        x · f                  (Fashion-MNIST pixels: scale(0.00392156862745098))
//   standardize     (x − mean) / √(var + 1e-6), per feature, from running statistics
//   clip(lo,hi)     min(max(x, lo), hi)

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compute/status.hpp"
#include "compute/tensor.hpp"

namespace rml::data {

class feature_pipeline {
 public:
  /// Builds a pipeline for rows of `feature_count` features; the error names the transform.
  static result<feature_pipeline> from_spec(std::string_view spec, std::int64_t feature_count);

  std::string spec() const;
  std::int64_t feature_count() const { return feature_count_; }

  /// Updates running statistics (standardize) from raw rows [N, feature_count], each row
  /// seen through the transforms before the standardize step. Training calls it; serving never.
  void observe(const tensor& raw_rows);
  /// Applies every transform to rows [N, feature_count], in place.
  void apply(tensor& rows) const;

  /// The statistics, flattened, for snapshots and checkpoints; restore() takes them back.
  std::vector<float> state() const;
  status restore(std::span<const float> saved);

 private:
  enum class kind : std::uint8_t { scale, standardize, clip };
  struct transform {
    kind type;
    float first = 0, second = 0;
  };
  /// Applies the transforms before index `end` to one row.
  void apply_row(float* row, std::size_t end) const;

  std::vector<transform> transforms_;
  std::int64_t feature_count_ = 0;
  // Welford running statistics of the standardize step (one per pipeline at most).
  double observed_rows_ = 0;
  std::vector<double> mean_, squares_;
};

}  // namespace rml::data
