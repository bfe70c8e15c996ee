#include "messaging/wire.hpp"

#include "compute/assert.hpp"
#include "messaging/feature_check.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

// GCC 12 reports impossible out-of-bounds writes for memcpy into a grown vector when it
// inlines encode_error (its -Warray-bounds / -Wstringop-overflow false positives with
// std::string sources); the bounds are checked in append().
#pragma GCC diagnostic ignored "-Warray-bounds"
#pragma GCC diagnostic ignored "-Wstringop-overflow"

namespace rml::messaging::wire {
namespace {
static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");

class frame_writer {
 public:
  explicit frame_writer(frame_kind kind, std::uint16_t extra = 0) {
    put(std::uint8_t(kind));
    put(format_version);
    put(extra);
  }
  template <class T>
  void put(const T& value) {
    append(&value, sizeof(T));
  }
  template <class T>
  void put_array(std::span<const T> values) {
    append(values.data(), values.size_bytes());
  }
  std::vector<std::byte> take() {
    out_.resize(size_);
    return std::move(out_);
  }

 private:
  // Grows by doubling and copies with memcpy: vector::insert of a few bytes trips GCC 12's
  // false -Wstringop-overflow / -Warray-bounds reports.
  void append(const void* data, std::size_t bytes) {
    if (bytes == 0) return;
    if (size_ + bytes > out_.size()) out_.resize(std::max<std::size_t>(64, 2 * (size_ + bytes)));
    std::memcpy(out_.data() + size_, data, bytes);
    size_ += bytes;
  }
  std::vector<std::byte> out_;
  std::size_t size_ = 0;
};

class frame_reader {
 public:
  frame_reader(std::span<const std::byte> frame, const char* what) : frame_(frame), what_(what) {}
  template <class T>
  bool get(T& value) {
    if (frame_.size() - offset_ < sizeof(T)) return false;
    std::memcpy(&value, frame_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return true;
  }
  template <class T>
  bool get_array(std::vector<T>& values, std::size_t count) {
    if ((frame_.size() - offset_) / sizeof(T) < count) return false;
    values.resize(count);
    if (count == 0) return true;  // memcpy from or to a null pointer is undefined even for 0 bytes
    std::memcpy(values.data(), frame_.data() + offset_, count * sizeof(T));
    offset_ += count * sizeof(T);
    return true;
  }
  /// The next `bytes` bytes, in place; the caller checked that they are there.
  std::span<const std::byte> take(std::size_t bytes) {
    const auto taken = frame_.subspan(offset_, bytes);
    offset_ += bytes;
    return taken;
  }
  std::size_t remaining() const { return frame_.size() - offset_; }
  /// A frame of fixed size ends with its last field: bytes after it are refused.
  status trailing() const {
    if (remaining() == 0) return {};
    return refuse(std::to_string(remaining()) + " bytes after the last field");
  }
  error refuse(const std::string& reason) const { return error(errc::invalid_argument, std::string(what_) + ": " + reason); }
  error short_frame(const char* field) const {
    return error(errc::truncated, std::string(what_) + ": frame of " + std::to_string(frame_.size()) +
                                      " bytes ends inside " + field);
  }

 private:
  std::span<const std::byte> frame_;
  const char* what_;
  std::size_t offset_ = 0;
};

/// Reads and checks the 4-byte header.
status read_header(frame_reader& reader, frame_kind expected, std::uint16_t* extra = nullptr) {
  std::uint8_t kind = 0, version = 0;
  std::uint16_t field = 0;
  if (!reader.get(kind) || !reader.get(version) || !reader.get(field)) return reader.short_frame("the header");
  if (version != format_version) {
    return error(errc::unsupported_version, "frame format version " + std::to_string(version) + ", this server speaks " +
                                                std::to_string(format_version));
  }
  if (kind != std::uint8_t(expected)) {
    return reader.refuse("frame kind " + std::to_string(kind) + ", expected " + std::to_string(std::uint8_t(expected)));
  }
  if (extra != nullptr) *extra = field;
  else if (field != 0) return reader.refuse("header bytes 2-3 are reserved and must be 0, got " + std::to_string(field));
  return {};
}

}  // namespace

result<frame_kind> peek_kind(std::span<const std::byte> frame) {
  if (frame.size() < 4) return error(errc::truncated, "frame of " + std::to_string(frame.size()) + " bytes: shorter than the 4-byte header");
  if (std::uint8_t(frame[1]) != format_version) {
    return error(errc::unsupported_version, "frame format version " + std::to_string(std::uint8_t(frame[1])) +
                                                ", this server speaks " + std::to_string(format_version));
  }
  return frame_kind(std::uint8_t(frame[0]));
}

std::uint64_t peek_request_id(std::span<const std::byte> frame) {
  // Offsets of the id by kind (docs/protocol.md): predict request 16, ingest request and
  // feedback 4.
  std::size_t offset = 0;
  if (frame.size() >= 4 && std::uint8_t(frame[1]) == format_version) {
    switch (frame_kind(std::uint8_t(frame[0]))) {
      case frame_kind::predict_request:
        offset = 16;
        break;
      case frame_kind::ingest_request:
      case frame_kind::feedback:
        offset = 4;
        break;
      default:
        return 0;
    }
  }
  std::uint64_t id = 0;
  if (offset == 0 || frame.size() < offset + sizeof(id)) return 0;
  std::memcpy(&id, frame.data() + offset, sizeof(id));
  return id;
}

std::vector<std::byte> encode_predict_request(const predict_request& request, std::uint32_t features, std::uint32_t timeout_ms) {
  frame_writer out(frame_kind::predict_request);
  out.put(request.rows);
  out.put(features);
  out.put(request.top_k);
  out.put(request.request_id);
  out.put(timeout_ms);
  out.put(request.model_version);
  out.put_array(request.features.bytes());
  return out.take();
}

result<predict_frame> decode_predict_request(std::span<const std::byte> frame, const frame_limits& limits,
                                             std::shared_ptr<const void> keeper) {
  frame_reader in(frame, "predict request");
  if (frame.size() > limits.frame_bytes_max) return in.refuse("frame of " + std::to_string(frame.size()) + " bytes exceeds the limit");
  if (auto header = read_header(in, frame_kind::predict_request); !header) return header.error();
  predict_frame decoded;
  auto& request = decoded.request;
  if (!in.get(request.rows) || !in.get(decoded.features) || !in.get(request.top_k) || !in.get(request.request_id) ||
      !in.get(decoded.timeout_ms) || !in.get(request.model_version)) {
    return in.short_frame("the fixed fields");
  }
  // Made only for an error: a string per request would cost an allocation on every one.
  const auto which = [&] { return "predict request " + std::to_string(request.request_id); };
  if (request.rows < 1 || request.rows > limits.rows_max) {
    return error(errc::invalid_argument, which() + ": rows must be in [1, " + std::to_string(limits.rows_max) + "], got " +
                                             std::to_string(request.rows));
  }
  if (decoded.features < 1 || decoded.features > limits.features_max) {
    return error(errc::invalid_argument, which() + ": features must be in [1, " + std::to_string(limits.features_max) + "], got " +
                                             std::to_string(decoded.features));
  }
  const std::size_t count = std::size_t(request.rows) * decoded.features;
  if (in.remaining() != count * sizeof(float)) {
    return error(in.remaining() < count * sizeof(float) ? errc::truncated : errc::invalid_argument,
                 "predict request " + std::to_string(request.request_id) + ": " + std::to_string(in.remaining()) +
                     " bytes of features, expected " + std::to_string(count * sizeof(float)) + " (" +
                     std::to_string(request.rows) + " rows × " + std::to_string(decoded.features) + " floats)");
  }
  const auto floats = in.take(count * sizeof(float));
  char what[48];
  std::snprintf(what, sizeof(what), "predict request %llu", (unsigned long long)request.request_id);
  if (auto checked = check_features(floats, decoded.features, limits.feature_magnitude_max, what); !checked) return checked.error();
  if (keeper != nullptr) {
    request.features = feature_block::view_of(std::move(keeper), floats);
  } else {
    std::vector<float> values(count);
    std::memcpy(values.data(), floats.data(), floats.size());
    request.features = feature_block(std::move(values));
  }
  return decoded;
}

std::vector<std::byte> encode_predict_reply(const predict_reply& reply) {
  for (float value : reply.probabilities.values) RML_ASSERT(std::isfinite(value), "serving answers only finite probabilities");
  frame_writer out(frame_kind::predict_reply);
  out.put(reply.request_id);
  out.put(reply.model_version);
  out.put(reply.rows);
  out.put(reply.classes);
  const std::uint32_t top_k = reply.rows == 0 ? 0 : std::uint32_t(reply.top_classes.size() / reply.rows);
  out.put(top_k);
  out.put_array(std::span<const float>(reply.probabilities.values));
  out.put_array(std::span<const std::int32_t>(reply.top_classes));
  return out.take();
}

result<predict_reply> decode_predict_reply(std::span<const std::byte> frame) {
  frame_reader in(frame, "predict reply");
  if (auto header = read_header(in, frame_kind::predict_reply); !header) return header.error();
  predict_reply reply;
  std::uint32_t top_k = 0;
  if (!in.get(reply.request_id) || !in.get(reply.model_version) || !in.get(reply.rows) || !in.get(reply.classes) ||
      !in.get(top_k)) {
    return in.short_frame("the fixed fields");
  }
  const std::uint64_t probabilities = std::uint64_t(reply.rows) * reply.classes;
  const std::uint64_t tops = std::uint64_t(reply.rows) * top_k;
  if (in.remaining() != probabilities * 4 + tops * 4) return in.refuse("payload size does not match rows, classes and top_k");
  in.get_array(reply.probabilities.values, std::size_t(probabilities));
  in.get_array(reply.top_classes, std::size_t(tops));
  return reply;
}

std::vector<std::byte> encode_ingest_request(const event_batch& batch, std::uint32_t features) {
  frame_writer out(frame_kind::ingest_request);
  out.put(batch.batch_id);
  out.put(std::uint32_t(batch.events.size()));
  out.put(features);
  for (const event& fact : batch.events) {
    out.put(fact.id);
    out.put(fact.timestamp_us);
    out.put(fact.label);
    out.put_array(std::span<const float>(fact.features.values));
  }
  return out.take();
}

result<event_batch> decode_ingest_request(std::span<const std::byte> frame, const frame_limits& limits) {
  frame_reader in(frame, "ingest request");
  if (frame.size() > limits.frame_bytes_max) return in.refuse("frame of " + std::to_string(frame.size()) + " bytes exceeds the limit");
  if (auto header = read_header(in, frame_kind::ingest_request); !header) return header.error();
  event_batch batch;
  std::uint32_t count = 0, features = 0;
  if (!in.get(batch.batch_id) || !in.get(count) || !in.get(features)) return in.short_frame("the fixed fields");
  const std::string which = "ingest batch " + std::to_string(batch.batch_id);
  if (count < 1 || count > limits.events_max) {
    return error(errc::invalid_argument, which + ": events must be in [1, " + std::to_string(limits.events_max) + "], got " +
                                             std::to_string(count));
  }
  if (features < 1 || features > limits.features_max) {
    return error(errc::invalid_argument, which + ": features must be in [1, " + std::to_string(limits.features_max) +
                                             "], got " + std::to_string(features));
  }
  const std::size_t event_bytes = 8 + 8 + 4 + std::size_t(features) * 4;
  if (in.remaining() != event_bytes * count) {
    return error(in.remaining() < event_bytes * count ? errc::truncated : errc::invalid_argument,
                 which + ": " + std::to_string(in.remaining()) + " bytes of events, expected " +
                     std::to_string(event_bytes * count) + " (" + std::to_string(count) + " events of " +
                     std::to_string(features) + " features)");
  }
  batch.events.resize(count);
  for (event& fact : batch.events) {
    in.get(fact.id);
    in.get(fact.timestamp_us);
    in.get(fact.label);
    in.get_array(fact.features.values, features);
  }
  return batch;
}

std::vector<std::byte> encode_ingest_ack(const event_acked& ack) {
  frame_writer out(frame_kind::ingest_ack);
  out.put(ack.batch_id);
  out.put(ack.first_offset);
  out.put(ack.appended);
  out.put(ack.duplicates);
  return out.take();
}

result<event_acked> decode_ingest_ack(std::span<const std::byte> frame) {
  frame_reader in(frame, "ingest ack");
  if (auto header = read_header(in, frame_kind::ingest_ack); !header) return header.error();
  event_acked ack;
  if (!in.get(ack.batch_id) || !in.get(ack.first_offset) || !in.get(ack.appended) || !in.get(ack.duplicates)) {
    return in.short_frame("the fixed fields");
  }
  if (auto trailing = in.trailing(); !trailing) return trailing.error();
  return ack;
}

std::vector<std::byte> encode_feedback(const prediction_feedback& feedback) {
  frame_writer out(frame_kind::feedback);
  out.put(feedback.request_id);
  out.put(feedback.label);
  return out.take();
}

result<prediction_feedback> decode_feedback(std::span<const std::byte> frame) {
  frame_reader in(frame, "feedback");
  if (auto header = read_header(in, frame_kind::feedback); !header) return header.error();
  prediction_feedback feedback;
  if (!in.get(feedback.request_id) || !in.get(feedback.label)) return in.short_frame("the fixed fields");
  if (auto trailing = in.trailing(); !trailing) return trailing.error();
  if (feedback.label < 0) {
    return error(errc::invalid_argument, "feedback for request " + std::to_string(feedback.request_id) + ": label " +
                                             std::to_string(feedback.label) + " is negative");
  }
  return feedback;
}

std::vector<std::byte> encode_feedback_ack(std::uint64_t request_id, bool matched) {
  frame_writer out(frame_kind::feedback_ack);
  out.put(request_id);
  out.put(std::uint8_t(matched ? 1 : 0));
  return out.take();
}

result<std::pair<std::uint64_t, bool>> decode_feedback_ack(std::span<const std::byte> frame) {
  frame_reader in(frame, "feedback ack");
  if (auto header = read_header(in, frame_kind::feedback_ack); !header) return header.error();
  std::uint64_t request_id = 0;
  std::uint8_t matched = 0;
  if (!in.get(request_id) || !in.get(matched)) return in.short_frame("the fixed fields");
  if (auto trailing = in.trailing(); !trailing) return trailing.error();
  return std::make_pair(request_id, matched != 0);
}

std::vector<std::byte> encode_error(errc code, std::uint64_t request_id, const std::string& message) {
  frame_writer out(frame_kind::error_reply, std::uint16_t(code));
  out.put(request_id);
  out.put(std::uint32_t(message.size()));
  out.put_array(std::span<const char>(message));
  return out.take();
}

result<error_frame> decode_error(std::span<const std::byte> frame) {
  frame_reader in(frame, "error reply");
  std::uint16_t code = 0;
  if (auto header = read_header(in, frame_kind::error_reply, &code); !header) return header.error();
  error_frame decoded;
  decoded.code = errc(code);
  std::uint32_t length = 0;
  if (!in.get(decoded.request_id) || !in.get(length)) return in.short_frame("the fixed fields");
  if (in.remaining() != length) return in.refuse("message length does not match the frame");
  std::vector<char> text;
  in.get_array(text, length);
  decoded.message.assign(text.begin(), text.end());
  return decoded;
}

}  // namespace rml::messaging::wire
