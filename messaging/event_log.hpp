#pragma once
// The durable event log: an append-only sequence of events on RocksDB, numbered by offset
// from 0, with a per-consumer committed offset and checkpoint. A producer's ack is sent only
// after append() returned, and append() returns only once the write is durable (fsync'd in
// one RocksDB write batch per call: group commit). An event whose id is already in the log
// is not appended again.
//
// Layout (one RocksDB database, keys prefixed by kind; integers big-endian so that keys sort
// by number):
//   'e' offset   → the event, CAF binary serialised
//   'i' event id → its offset (the duplicate index)
//   'o' consumer → committed offset (next offset to read)
//   'c' consumer → checkpoint bytes
//
// Thread safety: one owner (the log actor) calls it; RocksDB itself is thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "compute/status.hpp"
#include "messaging/messages.hpp"

namespace rocksdb {
class DB;
}

namespace rml::messaging {

struct event_log_options {
  /// fsync every append. Off only for tests and benchmarks that say so.
  bool sync = true;
  /// Upper bound of events one read() returns.
  std::size_t read_events_max = 1 << 16;
};

/// An event as stored, with its offset.
struct logged_event {
  std::uint64_t offset = 0;
  event fact;
};

class event_log {
 public:
  /// Opens (creating when absent) the log in `directory`; the error names the directory.
  static result<std::unique_ptr<event_log>> open(const std::string& directory,
                                                 const event_log_options& options = {});
  ~event_log();
  event_log(const event_log&) = delete;
  event_log& operator=(const event_log&) = delete;

  /// Makes every batch durable in one write, skipping events already in the log (or earlier
  /// in the same call); returns one ack per batch, in order. Nothing is written on error.
  result<std::vector<event_acked>> append(std::span<const event_batch> batches);

  /// Up to `count` events from `offset` on (fewer at the end of the log).
  result<std::vector<logged_event>> read(std::uint64_t offset, std::size_t count) const;

  /// The offset the next appended event gets (= number of events in the log).
  std::uint64_t end_offset() const { return end_offset_.load(std::memory_order_acquire); }
  bool contains(std::uint64_t event_id) const;

  status commit_offset(std::string_view consumer, std::uint64_t offset);
  /// The consumer's committed offset, or nothing if it never committed.
  std::optional<std::uint64_t> committed_offset(std::string_view consumer) const;
  status save_checkpoint(std::string_view consumer, std::span<const char> bytes);
  std::optional<std::vector<char>> load_checkpoint(std::string_view consumer) const;

  const std::string& directory() const { return directory_; }
  /// Writes made by append() so far (each is one durable group commit).
  std::uint64_t append_writes() const { return append_writes_; }

 private:
  event_log(std::unique_ptr<rocksdb::DB> database, std::string directory,
            const event_log_options& options, std::uint64_t end_offset);

  std::unique_ptr<rocksdb::DB> database_;
  std::string directory_;
  event_log_options options_;
  /// Written by the appending actor, read by any (progress, readers): atomic.
  std::atomic<std::uint64_t> end_offset_;
  std::uint64_t append_writes_ = 0;
};

}  // namespace rml::messaging
