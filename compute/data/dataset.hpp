#pragma once
// Labelled datasets and their readers. Readers refuse malformed input with an error naming
// the file, the line or record where it can, and the reason; they never crash on it.

#include <cstdint>
#include <string>
#include <vector>

#include "compute/status.hpp"
#include "compute/tensor.hpp"

namespace rml::data {

/// Rows of features with one class label each.
struct dataset {
  /// [rows, features], one sample per row.
  tensor features;
  /// One label per row, each in [0, classes).
  std::vector<std::int32_t> labels;
  std::int32_t classes = 0;
  /// Where it came from, for messages.
  std::string source;

  std::int64_t rows() const { return std::int64_t(labels.size()); }
  std::int64_t feature_count() const { return features.defined() ? features.dim(1) : 0; }
};

/// An IDX array (the MNIST format) of unsigned bytes; gzip-compressed or not.
struct idx_array {
  std::vector<std::int64_t> dims;
  std::vector<std::uint8_t> values;
};
result<idx_array> read_idx(const std::string& path);

/// Images (IDX, N×rows×cols) and labels (IDX, N) as a dataset; pixels are divided by
/// `scale` (255 gives [0, 1]).
result<dataset> read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                 float scale = 255.0f);

enum class split : std::uint8_t { train, test };
/// Fashion-MNIST from its four gzipped IDX files in `directory` (Debian's
/// dataset-fashion-mnist installs them under /usr/share/datasets/fashion-mnist).
/// Pixels are divided by `scale` (255: [0, 1]; 1: raw bytes, for a pipeline that scales).
result<dataset> load_fashion_mnist(const std::string& directory, split part, float scale = 255.0f);
/// $RML_FASHION_MNIST_DIR if set, else Debian's location.
std::string default_fashion_mnist_directory();

/// A CSV file with a header row, numeric columns and an integer label column named
/// `label_column`; every other column is a feature.
result<dataset> read_csv(const std::string& path, const std::string& label_column);

}  // namespace rml::data
