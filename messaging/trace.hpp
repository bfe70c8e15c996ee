#pragma once
// The trace: structured events of what components decided (a batch closed and why, the
// pool scaled, a canary was promoted or rolled back), kept in a bounded ring that the HTTP
// endpoint serves at /trace, and appended as JSON lines to a file when one is set
// (`rml run --trace FILE`). Timestamps come from the caller (the actor clock), so the
// trace of a simulated run is deterministic.

#include <cstdint>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace rml::messaging {

struct trace_event {
  std::int64_t timestamp_us = 0;
  std::string component;  // "batcher/mlp/main"
  std::string kind;       // "batch_closed", "scaled_up", "canary_promoted", …
  std::string detail;     // human-readable: "reason=full rows=64"
};

class trace_log {
 public:
  void record(trace_event event);
  /// The newest `count` events, oldest first.
  std::vector<trace_event> recent(std::size_t count) const;
  /// Events recorded so far, including those the ring dropped.
  std::uint64_t recorded() const;
  /// Appends every later event to `path` as a JSON line; the error names the file.
  bool open_sink(const std::string& path, std::string& failure);
  void close_sink();
  /// Events kept in memory at most.
  static constexpr std::size_t ring_events_max = 4096;

 private:
  mutable std::mutex mutex_;
  std::deque<trace_event> ring_;
  std::uint64_t recorded_ = 0;
  std::FILE* sink_ = nullptr;
};

/// One event as a JSON object on one line.
std::string to_json_line(const trace_event& event);

}  // namespace rml::messaging
