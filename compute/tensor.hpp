#pragma once
// Tensor: f32, up to 4 dimensions, contiguous row-major, with shared or borrowed storage
// and a device tag. Copying a tensor shares its storage (like a shared_ptr); clone() copies
// the data. A borrowed tensor points at memory someone else owns and must outlive it.

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>

#include "compute/assert.hpp"

namespace rml {

enum class device_kind : std::uint8_t { cpu, cuda };
const char* to_string(device_kind device);

inline constexpr int tensor_rank_max = 4;

/// The dimensions of a tensor, outermost first. Every dimension is ≥ 1.
class tensor_shape {
 public:
  tensor_shape() = default;
  tensor_shape(std::initializer_list<std::int64_t> dims);
  tensor_shape(std::span<const std::int64_t> dims);

  int rank() const { return rank_; }
  std::int64_t operator[](int axis) const {
    RML_ASSERT(axis >= 0 && axis < rank_);
    return dims_[axis];
  }
  std::int64_t numel() const {
    std::int64_t count = rank_ == 0 ? 0 : 1;
    for (int axis = 0; axis < rank_; ++axis) count *= dims_[axis];
    return count;
  }
  std::span<const std::int64_t> dims() const { return {dims_.data(), std::size_t(rank_)}; }
  /// "[64, 1, 28, 28]".
  std::string to_string() const;
  bool operator==(const tensor_shape& other) const;

 private:
  std::array<std::int64_t, tensor_rank_max> dims_{};
  int rank_ = 0;
};

class tensor {
 public:
  /// An undefined tensor: no shape, no storage.
  tensor() = default;

  /// Fresh storage, uninitialised (64-byte aligned, for vector kernels).
  static tensor empty(const tensor_shape& shape);
  static tensor zeros(const tensor_shape& shape);
  static tensor filled(const tensor_shape& shape, float value);
  /// Copies `values`; asserts values.size() == shape.numel().
  static tensor from(std::span<const float> values, const tensor_shape& shape);
  /// Takes shared ownership of storage a backend allocated (device memory from its pool,
  /// say); the deleter of `storage` returns it.
  static tensor adopt(std::shared_ptr<float> storage, const tensor_shape& shape, device_kind device);
  /// Views memory owned elsewhere; the caller keeps it alive while the tensor is used.
  static tensor borrow(float* data, const tensor_shape& shape,
                       device_kind device = device_kind::cpu);

  bool defined() const { return data_ != nullptr; }
  const tensor_shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  std::int64_t dim(int axis) const { return shape_[axis]; }
  std::int64_t numel() const { return shape_.numel(); }
  device_kind device() const { return device_; }
  /// Whether this tensor owns (a share of) its storage rather than borrowing it.
  bool owns_storage() const { return storage_ != nullptr; }

  float* data() { return data_; }
  const float* data() const { return data_; }
  std::span<float> values() { return {data_, std::size_t(numel())}; }
  std::span<const float> values() const { return {data_, std::size_t(numel())}; }

  /// The same storage seen with another shape of the same element count.
  tensor reshaped(const tensor_shape& shape) const;
  /// Rows [begin, end) of the outermost dimension, sharing storage.
  tensor rows(std::int64_t begin, std::int64_t end) const;
  /// A deep copy with its own storage.
  tensor clone() const;
  void fill(float value);
  void copy_from(const tensor& source);

 private:
  std::shared_ptr<float> storage_;
  float* data_ = nullptr;
  tensor_shape shape_;
  device_kind device_ = device_kind::cpu;
};

/// Asserts that two shapes are equal, naming both when they are not: for shapes that
/// only a bug can make disagree. Where user input decides a shape, return an error instead.
void assert_same_shape(const tensor_shape& a, const tensor_shape& b, const char* what);

}  // namespace rml
