#pragma once
// JSON that comes from clients, read without trusting it. RapidJSON's default parser
// recurses once per nesting level, so a body of 200 000 '[' overflowed a thread's stack; here
// it runs iteratively (constant stack), nesting deeper than `depth_max` is refused, and text
// that is not UTF-8 is refused, so nothing a client sends is echoed back as invalid JSON.

#include <rapidjson/document.h>

#include <string>
#include <string_view>

#include "compute/status.hpp"

namespace rml::messaging::json {

/// Objects and arrays nested deeper than this are refused; V2 bodies need 4.
inline constexpr int depth_max = 32;

/// Parses `text` into `document`. The error (parse_error) names `what`, the byte offset and
/// what was wrong: not JSON, nested too deep, or not UTF-8.
status parse(std::string_view text, rapidjson::Document& document, const std::string& what);

/// `text` with every byte sequence that is not UTF-8 replaced by U+FFFD, so that text a
/// client sent (a path, a name) can be written into a JSON answer.
std::string valid_utf8(std::string_view text);

/// {"key": "value"} with the value escaped as JSON requires.
std::string object_with(const char* key, std::string_view value);

}  // namespace rml::messaging::json
