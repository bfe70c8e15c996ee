#pragma once
// RML_ASSERT: checks an invariant that only a bug can break. It stays on in release builds
// (like ggml's GGML_ASSERT and TigerBeetle's assert): a broken invariant stops the process
// with the condition, file and line, instead of computing on silently wrong state.
// Operating errors (bad input, missing files) are values: see status.hpp.

#include <cstdio>
#include <cstdlib>

namespace rml::detail {
[[noreturn]] inline void assertion_failed(const char* condition, const char* file, int line,
                                          const char* message) {
  std::fprintf(stderr, "rml: assertion failed: %s (%s:%d)%s%s\n", condition, file, line,
               message[0] != '\0' ? ": " : "", message);
  std::abort();
}
}  // namespace rml::detail

/// RML_ASSERT(condition) or RML_ASSERT(condition, "what it means").
#define RML_ASSERT(condition, ...)                                                    \
  do {                                                                                \
    if (!(condition)) [[unlikely]]                                                    \
      ::rml::detail::assertion_failed(#condition, __FILE__, __LINE__, "" __VA_ARGS__); \
  } while (false)
