#pragma once
// The binary wire format of rml's ZeroMQ sockets (docs/protocol.md is the reference for
// other languages). Every frame starts with a 4-byte header: kind (u8), format version (u8),
// and a u16 that error frames use for the error code. Integers and floats are
// little-endian. Decoding never trusts a length: every refusal says which frame, which
// field and what was wrong, and nothing malformed reaches an actor.

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "compute/status.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging::wire {

inline constexpr std::uint8_t format_version = 1;

enum class frame_kind : std::uint8_t {
  predict_request = 1,
  predict_reply = 2,
  ingest_request = 3,
  ingest_ack = 4,
  feedback = 5,
  feedback_ack = 6,
  error_reply = 0xff,
};

/// Upper bounds a frame must respect (a client cannot make the server allocate more).
struct frame_limits {
  std::uint32_t rows_max = 4096;
  std::uint32_t features_max = 1 << 16;
  std::uint32_t events_max = 4096;
  std::size_t frame_bytes_max = 64 << 20;
  /// |feature| of a predict request at most this (0: any finite value); feature_check.hpp.
  float feature_magnitude_max = 1e6f;
};

/// A decoded predict request with its relative timeout (0: none).
struct predict_frame {
  predict_request request;
  std::uint32_t features = 0;
  std::uint32_t timeout_ms = 0;
};

/// With a `keeper` (what owns `frame`'s bytes), the request's features are a view of the frame
/// (feature_block), not a copy.
result<predict_frame> decode_predict_request(std::span<const std::byte> frame, const frame_limits& limits,
                                             std::shared_ptr<const void> keeper = nullptr);
std::vector<std::byte> encode_predict_request(const predict_request& request, std::uint32_t features,
                                              std::uint32_t timeout_ms);

std::vector<std::byte> encode_predict_reply(const predict_reply& reply);
result<predict_reply> decode_predict_reply(std::span<const std::byte> frame);

result<event_batch> decode_ingest_request(std::span<const std::byte> frame, const frame_limits& limits);
std::vector<std::byte> encode_ingest_request(const event_batch& batch, std::uint32_t features);

std::vector<std::byte> encode_ingest_ack(const event_acked& ack);
result<event_acked> decode_ingest_ack(std::span<const std::byte> frame);

/// Labelled feedback on an earlier prediction (prediction_feedback), and its ack: whether
/// serving still remembered the prediction.
std::vector<std::byte> encode_feedback(const prediction_feedback& feedback);
result<prediction_feedback> decode_feedback(std::span<const std::byte> frame);
std::vector<std::byte> encode_feedback_ack(std::uint64_t request_id, bool matched);
result<std::pair<std::uint64_t, bool>> decode_feedback_ack(std::span<const std::byte> frame);

/// An error frame: the rml error code, the request or batch id it answers (0 when the frame
/// could not be read that far) and the message.
std::vector<std::byte> encode_error(errc code, std::uint64_t request_id, const std::string& message);
struct error_frame {
  errc code = errc::invalid_argument;
  std::uint64_t request_id = 0;
  std::string message;
};
result<error_frame> decode_error(std::span<const std::byte> frame);

/// The kind of a frame, if it has a readable header of this format version.
result<frame_kind> peek_kind(std::span<const std::byte> frame);

/// The request or batch id of a predict request, ingest request or feedback frame, read
/// without decoding the rest, so that a refusal can name the request it answers; 0 when the
/// frame is of another kind or too short to hold one.
std::uint64_t peek_request_id(std::span<const std::byte> frame);

}  // namespace rml::messaging::wire
