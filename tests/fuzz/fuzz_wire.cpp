// libFuzzer: the ZeroMQ wire decoders on any bytes. None may crash or read out of bounds
// (ASan, UBSan), and what decodes must encode back to the same bytes and decode again to
// the same value (the pair check across the boundary, STYLE.md).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>

#include "tests/fuzz/require.hpp"
#include "messaging/wire.hpp"

using namespace rml::messaging;
using rml::fuzz::require;

namespace {
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> frame(reinterpret_cast<const std::byte*>(data), size);
  wire::frame_limits limits;
  limits.frame_bytes_max = 1 << 20;
  (void)wire::peek_kind(frame);
  (void)wire::peek_request_id(frame);
  if (auto request = wire::decode_predict_request(frame, limits)) {
    const auto again = wire::encode_predict_request(request->request, request->features, request->timeout_ms);
    require(again.size() == size && std::equal(again.begin(), again.end(), frame.begin()), "a predict request re-encodes to its bytes");
    auto decoded = wire::decode_predict_request(again, limits);
    require(decoded.ok() && decoded->request == request->request, "a re-encoded predict request decodes to the same request");
    // Decoded as the endpoint does, its features a view of the frame: the same request.
    auto kept = std::make_shared<std::vector<std::byte>>(frame.begin(), frame.end());
    auto viewed = wire::decode_predict_request(*kept, limits, kept);
    require(viewed.ok() && viewed->request.features.is_view() && viewed->request == request->request,
            "a predict request decoded as a view of its frame equals the copy");
    require(wire::peek_request_id(frame) == request->request.request_id, "peek_request_id reads the decoded id");
  }
  if (auto batch = wire::decode_ingest_request(frame, limits)) {
    require(!batch->events.empty(), "a decoded batch has events");
    const auto again = wire::encode_ingest_request(*batch, std::uint32_t(batch->events.front().features.values.size()));
    require(again.size() == size && std::equal(again.begin(), again.end(), frame.begin()), "an ingest request re-encodes to its bytes");
  }
  if (auto feedback = wire::decode_feedback(frame)) require(wire::encode_feedback(*feedback).size() == size, "feedback re-encodes to its size");
  if (auto reply = wire::decode_predict_reply(frame)) {
    // Serving encodes only finite probabilities (the encoder asserts it); a client's decoder
    // takes whatever arrives.
    const bool finite = std::all_of(reply->probabilities.values.begin(), reply->probabilities.values.end(),
                                    [](float value) { return std::isfinite(value); });
    if (finite) {
      auto again = wire::decode_predict_reply(wire::encode_predict_reply(*reply));
      require(again.ok() && *again == *reply, "a reply round-trips");
    }
  }
  if (auto error = wire::decode_error(frame)) {
    auto again = wire::decode_error(wire::encode_error(error->code, error->request_id, error->message));
    require(again.ok() && again->message == error->message && again->request_id == error->request_id, "an error round-trips");
  }
  (void)wire::decode_ingest_ack(frame);
  (void)wire::decode_feedback_ack(frame);
  return 0;
}
