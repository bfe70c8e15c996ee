#include "compute/tensor.hpp"

#include <algorithm>
#include <cstring>
#include <new>

#include "compute/status.hpp"

namespace rml {

const char* to_string(device_kind device) {
  switch (device) {
    case device_kind::cpu:
      return "cpu";
    case device_kind::cuda:
      return "cuda";
  }
  return "unknown";
}

tensor_shape::tensor_shape(std::initializer_list<std::int64_t> dims)
    : tensor_shape(std::span<const std::int64_t>(dims.begin(), dims.size())) {}

tensor_shape::tensor_shape(std::span<const std::int64_t> dims) {
  RML_ASSERT(dims.size() <= std::size_t(tensor_rank_max), "a tensor has at most 4 dimensions");
  rank_ = int(dims.size());
  for (int axis = 0; axis < rank_; ++axis) {
    RML_ASSERT(dims[axis] >= 1, "every tensor dimension is at least 1");
    dims_[axis] = dims[axis];
  }
}

std::string tensor_shape::to_string() const {
  std::string text = "[";
  for (int axis = 0; axis < rank_; ++axis) {
    if (axis > 0) text += ", ";
    text += std::to_string(dims_[axis]);
  }
  return text + "]";
}

bool tensor_shape::operator==(const tensor_shape& other) const {
  return rank_ == other.rank_ && std::equal(dims_.begin(), dims_.begin() + rank_, other.dims_.begin());
}

void assert_same_shape(const tensor_shape& a, const tensor_shape& b, const char* what) {
  if (!(a == b)) {
    std::string message = std::string(what) + ": " + a.to_string() + " vs " + b.to_string();
    detail::assertion_failed("shapes equal", __FILE__, __LINE__, message.c_str());
  }
}

namespace {
constexpr std::align_val_t storage_alignment{64};

std::shared_ptr<float> allocate_floats(std::int64_t count) {
  RML_ASSERT(count > 0);
  void* memory = ::operator new(std::size_t(count) * sizeof(float), storage_alignment);
  return std::shared_ptr<float>(static_cast<float*>(memory), [](float* pointer) {
    ::operator delete(pointer, storage_alignment);
  });
}
}  // namespace

tensor tensor::empty(const tensor_shape& shape) {
  tensor result;
  result.storage_ = allocate_floats(shape.numel());
  result.data_ = result.storage_.get();
  result.shape_ = shape;
  return result;
}

tensor tensor::zeros(const tensor_shape& shape) { return filled(shape, 0.0f); }

tensor tensor::filled(const tensor_shape& shape, float value) {
  tensor result = empty(shape);
  result.fill(value);
  return result;
}

tensor tensor::from(std::span<const float> values, const tensor_shape& shape) {
  RML_ASSERT(std::int64_t(values.size()) == shape.numel(), "value count must match the shape");
  tensor result = empty(shape);
  std::memcpy(result.data_, values.data(), values.size() * sizeof(float));
  return result;
}

tensor tensor::adopt(std::shared_ptr<float> storage, const tensor_shape& shape, device_kind device) {
  RML_ASSERT(storage != nullptr);
  tensor result;
  result.storage_ = std::move(storage);
  result.data_ = result.storage_.get();
  result.shape_ = shape;
  result.device_ = device;
  return result;
}

tensor tensor::borrow(float* data, const tensor_shape& shape, device_kind device) {
  RML_ASSERT(data != nullptr);
  tensor result;
  result.data_ = data;
  result.shape_ = shape;
  result.device_ = device;
  return result;
}

tensor tensor::reshaped(const tensor_shape& shape) const {
  RML_ASSERT(defined());
  if (shape.numel() != numel()) {
    std::string message = "reshape " + shape_.to_string() + " to " + shape.to_string();
    detail::assertion_failed("same element count", __FILE__, __LINE__, message.c_str());
  }
  tensor result = *this;
  result.shape_ = shape;
  return result;
}

tensor tensor::rows(std::int64_t begin, std::int64_t end) const {
  RML_ASSERT(defined() && rank() >= 1);
  RML_ASSERT(0 <= begin && begin < end && end <= dim(0), "row range inside the tensor");
  std::array<std::int64_t, tensor_rank_max> dims{};
  std::copy(shape_.dims().begin(), shape_.dims().end(), dims.begin());
  std::int64_t row_size = numel() / dims[0];
  dims[0] = end - begin;
  tensor result = *this;
  result.data_ = data_ + begin * row_size;
  result.shape_ = tensor_shape(std::span<const std::int64_t>(dims.data(), std::size_t(rank())));
  return result;
}

tensor tensor::clone() const {
  RML_ASSERT(defined());
  RML_ASSERT(device_ == device_kind::cpu, "clone of a device tensor goes through its backend");
  return from(values(), shape_);
}

void tensor::fill(float value) {
  RML_ASSERT(defined() && device_ == device_kind::cpu);
  std::fill(data_, data_ + numel(), value);
}

void tensor::copy_from(const tensor& source) {
  assert_same_shape(shape_, source.shape_, "tensor::copy_from");
  RML_ASSERT(device_ == device_kind::cpu && source.device_ == device_kind::cpu,
             "a device tensor is copied through its backend");
  std::memcpy(data_, source.data_, std::size_t(numel()) * sizeof(float));
}

}  // namespace rml
