#pragma once
// Operating errors as values (STYLE.md, second tier): an error code with one doc line per
// value and a message that names the input and what was wrong. compute/ knows nothing of
// actors, so it carries its own small error type; the actor layers convert it to
// caf::error where a message crosses an actor boundary.

#include <cstdint>
#include <string>
#include <utility>
#include <variant>

#include "compute/assert.hpp"

namespace rml {

enum class errc : std::uint8_t {
  /// An argument is outside what the function accepts.
  invalid_argument = 1,
  /// Tensor shapes do not fit together.
  shape_mismatch,
  /// A file could not be opened, read or written.
  io_error,
  /// Input ended before the data its header promised.
  truncated,
  /// Stored bytes do not match their checksum or contradict each other.
  corrupted,
  /// Input is not in the expected format at all (wrong magic number).
  foreign_format,
  /// Input was written by a format version this build does not know.
  unsupported_version,
  /// Text input could not be parsed.
  parse_error,
  /// A supervisor's children failed more often than its restart intensity allows.
  restart_intensity_exceeded,
  /// A bounded queue is full: the request is refused at once rather than queued.
  overloaded,
  /// A request's deadline passed before it could be answered.
  deadline_exceeded,
  /// The component cannot answer yet (no model published, not started).
  not_ready,
  /// The thing asked for does not exist (a model version never published).
  not_found,
  /// The request lacks the key or token the endpoint requires, or carries a wrong one.
  unauthorized,
  /// A computation produced NaN or infinity (a model or an update that went numerically bad).
  non_finite,
  /// A compute device failed (a CUDA, cuBLAS or cuDNN call); the message names the call.
  device_error,
};

/// The name of an error code, for messages and logs.
const char* to_string(errc code);

/// An operating error: what kind, and a message naming the input and what was wrong.
class error {
 public:
  error(errc code, std::string message) : code_(code), message_(std::move(message)) {}
  errc code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  errc code_;
  std::string message_;
};

/// A value of type T or an error. Reading the value of an error (or the error of a value)
/// is a bug and asserts.
template <class T>
class [[nodiscard]] result {
 public:
  result(T value) : state_(std::move(value)) {}
  result(rml::error failure) : state_(std::move(failure)) {}

  bool ok() const { return state_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    RML_ASSERT(ok(), "value() of a failed result");
    return std::get<0>(state_);
  }
  const T& value() const& {
    RML_ASSERT(ok(), "value() of a failed result");
    return std::get<0>(state_);
  }
  T&& value() && {
    RML_ASSERT(ok(), "value() of a failed result");
    return std::get<0>(std::move(state_));
  }
  const rml::error& error() const {
    RML_ASSERT(!ok(), "error() of a successful result");
    return std::get<1>(state_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, rml::error> state_;
};

/// Success or an error, for operations without a value.
class [[nodiscard]] status {
 public:
  status() = default;
  status(rml::error failure) : failure_(std::move(failure)), failed_(true) {}
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const rml::error& error() const {
    RML_ASSERT(failed_, "error() of a successful status");
    return failure_;
  }

 private:
  rml::error failure_{errc::invalid_argument, {}};
  bool failed_ = false;
};

}  // namespace rml
