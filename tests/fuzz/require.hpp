#pragma once
// The fuzz targets' property check: a broken property says which, then aborts, so libFuzzer
// keeps the input that broke it.

#include <rapidjson/document.h>

#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "messaging/json.hpp"

namespace rml::fuzz {
inline void require(bool condition, const char* property = "") {
  if (condition) return;
  std::fprintf(stderr, "property broken: %s\n", property);
  std::abort();
}

/// What rml answers must parse as JSON (its own parser, the strict one clients meet).
inline void require_json(std::string_view text) {
  rapidjson::Document document;
  require(messaging::json::parse(text, document, "answer").ok(), "an answer is valid JSON");
}
}  // namespace rml::fuzz
