// IDX reader (the MNIST container format: a 4-byte magic with the element type and rank,
// big-endian dimension sizes, then the data). zlib's gz* functions read gzipped and plain
// files alike.
#include <zlib.h>

#include <cstdlib>
#include <memory>

#include "compute/data/dataset.hpp"

namespace rml::data {
namespace {
constexpr std::uint8_t idx_type_ubyte = 0x08;
constexpr std::int64_t idx_elements_max = std::int64_t(1) << 32;

struct gz_closer {
  void operator()(gzFile_s* file) const { gzclose(file); }
};

error idx_error(errc code, const std::string& path, const std::string& reason) {
  return error(code, path + ": " + reason);
}

/// Reads exactly `size` bytes; false on a short read.
bool read_exact(gzFile file, void* destination, std::size_t size) {
  auto* bytes = static_cast<unsigned char*>(destination);
  while (size > 0) {
    const unsigned chunk = unsigned(std::min<std::size_t>(size, 1u << 30));
    const int got = gzread(file, bytes, chunk);
    if (got <= 0) return false;
    bytes += got;
    size -= std::size_t(got);
  }
  return true;
}
}  // namespace

result<idx_array> read_idx(const std::string& path) {
  std::unique_ptr<gzFile_s, gz_closer> file(gzopen(path.c_str(), "rb"));
  if (!file) return idx_error(errc::io_error, path, "cannot open");
  unsigned char magic[4];
  if (!read_exact(file.get(), magic, 4)) {
    return idx_error(errc::truncated, path, "shorter than the 4-byte IDX magic");
  }
  if (magic[0] != 0 || magic[1] != 0) {
    return idx_error(errc::foreign_format, path, "not an IDX file (magic does not start with 00 00)");
  }
  if (magic[2] != idx_type_ubyte) {
    return idx_error(errc::foreign_format, path,
                     "IDX element type 0x" + std::to_string(magic[2]) +
                         " not supported (only unsigned bytes, 0x08)");
  }
  const int rank = magic[3];
  if (rank < 1 || rank > 3) {
    return idx_error(errc::foreign_format, path,
                     "IDX rank " + std::to_string(rank) + " not supported (1 to 3)");
  }
  idx_array array;
  std::int64_t count = 1;
  for (int axis = 0; axis < rank; ++axis) {
    unsigned char size[4];
    if (!read_exact(file.get(), size, 4)) {
      return idx_error(errc::truncated, path, "ends inside the dimension sizes");
    }
    const std::int64_t dimension = (std::int64_t(size[0]) << 24) | (size[1] << 16) | (size[2] << 8) | size[3];
    if (dimension < 1) {
      return idx_error(errc::corrupted, path, "dimension " + std::to_string(axis) + " is 0");
    }
    array.dims.push_back(dimension);
    count *= dimension;
    if (count > idx_elements_max) return idx_error(errc::corrupted, path, "more than 2^32 elements");
  }
  array.values.resize(std::size_t(count));
  if (!read_exact(file.get(), array.values.data(), array.values.size())) {
    return idx_error(errc::truncated, path,
                     "ends before its " + std::to_string(count) + " elements");
  }
  return array;
}

result<dataset> read_idx_dataset(const std::string& images_path, const std::string& labels_path,
                                 float scale) {
  RML_ASSERT(scale > 0);
  auto images = read_idx(images_path);
  if (!images) return images.error();
  auto labels = read_idx(labels_path);
  if (!labels) return labels.error();
  if (images->dims.size() < 2) {
    return idx_error(errc::invalid_argument, images_path, "images need at least 2 dimensions");
  }
  if (labels->dims.size() != 1) {
    return idx_error(errc::invalid_argument, labels_path, "labels must have 1 dimension");
  }
  const std::int64_t rows = images->dims[0];
  if (labels->dims[0] != rows) {
    return error(errc::invalid_argument, images_path + " holds " + std::to_string(rows) +
                                             " images but " + labels_path + " holds " +
                                             std::to_string(labels->dims[0]) + " labels");
  }
  const std::int64_t features = std::int64_t(images->values.size()) / rows;
  dataset result;
  result.source = images_path;
  result.features = tensor::empty({rows, features});
  float* output = result.features.data();
  const float inverse = 1.0f / scale;
  for (std::size_t index = 0; index < images->values.size(); ++index) output[index] = float(images->values[index]) * inverse;
  result.labels.assign(labels->values.begin(), labels->values.end());
  for (std::int32_t label : result.labels) result.classes = std::max(result.classes, label + 1);
  return result;
}

std::string default_fashion_mnist_directory() {
  const char* configured = std::getenv("RML_FASHION_MNIST_DIR");
  return configured != nullptr && configured[0] != '\0' ? configured
                                                         : "/usr/share/datasets/fashion-mnist";
}

result<dataset> load_fashion_mnist(const std::string& directory, split part, float scale) {
  const std::string prefix = directory + (part == split::train ? "/train" : "/t10k");
  auto loaded = read_idx_dataset(prefix + "-images-idx3-ubyte.gz", prefix + "-labels-idx1-ubyte.gz", scale);
  if (!loaded) {
    return error(loaded.error().code(),
                 loaded.error().message() +
                     " (Fashion-MNIST comes from Debian's dataset-fashion-mnist; scripts/setup.sh installs it)");
  }
  if (loaded->classes > 10) {
    return error(errc::corrupted, prefix + "-labels-idx1-ubyte.gz: label " +
                                      std::to_string(loaded->classes - 1) +
                                      " outside Fashion-MNIST's 10 classes");
  }
  loaded->classes = 10;
  return loaded;
}

}  // namespace rml::data
