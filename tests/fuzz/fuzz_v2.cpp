// libFuzzer: the KServe V2 parsers on any body. The first byte picks the parser (infer, infer
// with the binary extension, feedback, policy, batching, a route); the rest is the input.
// Nothing may crash, and every answer built from what parsed must be valid JSON (the pair
// check: json::parse accepts what the encoders wrote).
#include <rapidjson/document.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

#include "tests/fuzz/require.hpp"
#include "messaging/json.hpp"
#include "messaging/v2_protocol.hpp"

using namespace rml::messaging;
using rml::fuzz::require;
using rml::fuzz::require_json;

namespace {

/// An answer for a parsed infer call, as serving would give: then its encoding must parse.
void answer(const v2::infer_call& call) {
  predict_reply reply;
  reply.request_id = call.request.request_id;
  reply.model_version = 3;
  reply.rows = call.request.rows;
  reply.classes = 2;
  for (std::uint32_t row = 0; row < reply.rows; ++row) {
    reply.probabilities.values.insert(reply.probabilities.values.end(), {0.25f, 0.75f});
    reply.top_classes.push_back(1);
  }
  auto [body, json_bytes] = v2::infer_response(call, reply, "model");
  require_json(std::string_view(body).substr(0, json_bytes ? json_bytes : body.size()));
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  const v2::input_limits limits{4, 64, 1e6f};
  switch (data[0] % 7) {
    case 0:
      if (auto call = v2::parse_infer(input, nullptr, limits)) {
        require(call->request.features.values().size() == std::size_t(call->request.rows) * 4);
        for (float value : call->request.features.values()) require(std::isfinite(value) && std::fabs(value) <= 1e6f);
        answer(*call);
      } else {
        require_json(v2::error_json(call.error().message()));
      }
      break;
    case 1: {
      // The binary extension: the JSON's length is the input's first line.
      const auto newline = input.find('\n');
      if (newline == std::string_view::npos) break;
      const std::string length(input.substr(0, newline));
      // Kept as the HTTP endpoint keeps a body whose binary features are a view of it.
      const auto body = std::make_shared<std::string>(input.substr(newline + 1));
      if (auto call = v2::parse_infer(*body, &length, limits, body)) {
        const auto& features = call->request.features;
        require(features.size() == std::size_t(call->request.rows) * 4);
        for (std::size_t index = 0; index < features.size(); ++index) require(std::isfinite(features.at(index)) && std::fabs(features.at(index)) <= 1e6f);
        answer(*call);
      } else {
        require_json(v2::error_json(call.error().message()));
      }
      break;
    }
    case 2:
      if (auto feedback = v2::parse_feedback(input)) require(feedback->label >= 0);
      break;
    case 3:
      if (auto policy = v2::parse_policy(input)) require_json(json::object_with("policy", *policy));
      break;
    case 4:
      if (auto change = v2::parse_batching(input)) require_json(v2::batching_json(change->applied_to({})));
      break;
    case 5:
      if (auto route = v2::route_of(input, "mlp"); !route) require_json(v2::error_json(route.error().message()));
      break;
    default:
      require_json(json::object_with("text", input));
      break;
  }
  return 0;
}
