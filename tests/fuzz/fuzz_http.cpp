// libFuzzer: the HTTP request path on any bytes, as a connection delivers them: Beast's
// request parser (with the endpoint's limits), then the route the target names and the body
// parser that route uses. Nothing may crash, and every refusal must be valid JSON.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>
#include <rapidjson/document.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "tests/fuzz/require.hpp"
#include "messaging/json.hpp"
#include "messaging/v2_protocol.hpp"

using namespace rml::messaging;
using rml::fuzz::require;
using rml::fuzz::require_json;
namespace http = boost::beast::http;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  http::request_parser<http::string_body> parser;
  parser.eager(true);
  parser.body_limit(1 << 20);
  boost::beast::error_code failure;
  const std::size_t used = parser.put(boost::asio::buffer(data, size), failure);
  require(used <= size);
  if (failure == http::error::need_more) parser.put_eof(failure);
  if (failure || !parser.is_done()) return 0;
  const auto& request = parser.get();
  const std::string target(request.target());
  auto route = v2::route_of(target, "mlp");
  if (!route) return require_json(v2::error_json(route.error().message())), 0;
  const std::string& body = request.body();
  switch (route->kind) {
    case v2::route_kind::infer: {
      const auto header = request.find("Inference-Header-Content-Length");
      const std::string length = header == request.end() ? std::string() : std::string(header->value());
      auto call = v2::parse_infer(body, header == request.end() ? nullptr : &length, {784, 65'536, 1e6f});
      if (!call) require_json(v2::error_json(call.error().message()));
      break;
    }
    case v2::route_kind::feedback:
      if (auto parsed = v2::parse_feedback(body); !parsed) require_json(v2::error_json(parsed.error().message()));
      break;
    case v2::route_kind::policy:
      if (auto parsed = v2::parse_policy(body); !parsed) require_json(v2::error_json(parsed.error().message()));
      break;
    case v2::route_kind::batching:
      if (auto parsed = v2::parse_batching(body); !parsed) require_json(v2::error_json(parsed.error().message()));
      break;
    default:
      break;
  }
  return 0;
}
