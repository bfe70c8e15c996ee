#include "messaging/event_log.hpp"

#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <unordered_set>

namespace rml::messaging {
namespace {
constexpr char event_prefix = 'e';
constexpr char id_prefix = 'i';
constexpr char offset_prefix = 'o';
constexpr char checkpoint_prefix = 'c';

std::string numbered_key(char prefix, std::uint64_t number) {
  std::string key(9, '\0');
  key[0] = prefix;
  for (int byte = 0; byte < 8; ++byte) key[std::size_t(8 - byte)] = char((number >> (8 * byte)) & 0xff);
  return key;
}

std::uint64_t key_number(const rocksdb::Slice& key) {
  std::uint64_t number = 0;
  for (std::size_t byte = 1; byte < 9; ++byte) number = (number << 8) | std::uint8_t(key[byte]);
  return number;
}

std::string named_key(char prefix, std::string_view name) {
  std::string key(1, prefix);
  key.append(name);
  return key;
}

std::string encode_u64(std::uint64_t value) { return numbered_key('\0', value).substr(1); }

std::uint64_t decode_u64(const std::string& bytes) {
  std::string padded = std::string(1, '\0') + bytes;
  return key_number(padded);
}

error storage_error(const std::string& directory, const std::string& what, const rocksdb::Status& status) {
  return error(errc::io_error, directory + ": " + what + ": " + status.ToString());
}
}  // namespace

event_log::event_log(std::unique_ptr<rocksdb::DB> database, std::string directory,
                     const event_log_options& options, std::uint64_t end_offset)
    : database_(std::move(database)), directory_(std::move(directory)), options_(options),
      end_offset_(end_offset) {}

event_log::~event_log() = default;

result<std::unique_ptr<event_log>> event_log::open(const std::string& directory,
                                                   const event_log_options& options) {
  rocksdb::Options settings;
  settings.create_if_missing = true;
  // Feature payloads are floats, which Snappy cannot shrink: compressing them measured 8%
  // of `rml run`'s CPU time for nothing.
  settings.compression = rocksdb::kNoCompression;
  // Larger memtables flush less often during a stream (an epoch of Fashion-MNIST is 190 MB).
  settings.write_buffer_size = 64 << 20;
  rocksdb::DB* raw = nullptr;
  rocksdb::Status opened = rocksdb::DB::Open(settings, directory, &raw);
  if (!opened.ok()) return storage_error(directory, "cannot open the event log", opened);
  std::unique_ptr<rocksdb::DB> database(raw);
  // The end offset is one past the last event key.
  std::uint64_t end_offset = 0;
  std::unique_ptr<rocksdb::Iterator> last(database->NewIterator(rocksdb::ReadOptions()));
  last->SeekForPrev(numbered_key(event_prefix, UINT64_MAX));
  if (last->Valid() && last->key().size() == 9 && last->key()[0] == event_prefix) {
    end_offset = key_number(last->key()) + 1;
  }
  if (!last->status().ok()) return storage_error(directory, "cannot scan the event log", last->status());
  return std::unique_ptr<event_log>(new event_log(std::move(database), directory, options, end_offset));
}

bool event_log::contains(std::uint64_t event_id) const {
  std::string ignored;
  return database_->Get(rocksdb::ReadOptions(), numbered_key(id_prefix, event_id), &ignored).ok();
}

result<std::vector<event_acked>> event_log::append(std::span<const event_batch> batches) {
  rocksdb::WriteBatch write;
  std::vector<event_acked> acks;
  std::unordered_set<std::uint64_t> appended_now;
  std::uint64_t next_offset = end_offset();
  std::vector<char> buffer;
  for (const event_batch& batch : batches) {
    event_acked ack{batch.batch_id, next_offset, 0, 0};
    for (const event& fact : batch.events) {
      if (appended_now.count(fact.id) != 0 || contains(fact.id)) {
        ++ack.duplicates;
        continue;
      }
      buffer.clear();
      caf::binary_serializer sink{nullptr, buffer};
      event copy = fact;
      if (auto failed = sink(copy)) {
        return error(errc::invalid_argument, "event " + std::to_string(fact.id) + " cannot be serialised");
      }
      write.Put(numbered_key(event_prefix, next_offset), rocksdb::Slice(buffer.data(), buffer.size()));
      write.Put(numbered_key(id_prefix, fact.id), encode_u64(next_offset));
      appended_now.insert(fact.id);
      ++next_offset;
      ++ack.appended;
    }
    acks.push_back(ack);
  }
  rocksdb::WriteOptions durable;
  durable.sync = options_.sync;
  rocksdb::Status written = database_->Write(durable, &write);
  if (!written.ok()) return storage_error(directory_, "append failed", written);
  end_offset_.store(next_offset, std::memory_order_release);
  ++append_writes_;
  return acks;
}

result<std::vector<logged_event>> event_log::read(std::uint64_t offset, std::size_t count) const {
  std::vector<logged_event> events;
  count = std::min(count, options_.read_events_max);
  std::unique_ptr<rocksdb::Iterator> cursor(database_->NewIterator(rocksdb::ReadOptions()));
  for (cursor->Seek(numbered_key(event_prefix, offset));
       cursor->Valid() && events.size() < count && cursor->key()[0] == event_prefix; cursor->Next()) {
    logged_event entry;
    entry.offset = key_number(cursor->key());
    caf::binary_deserializer source{nullptr, cursor->value().data(), cursor->value().size()};
    if (auto failed = source(entry.fact)) {
      return error(errc::corrupted, directory_ + ": event at offset " + std::to_string(entry.offset) +
                                        " cannot be read back");
    }
    events.push_back(std::move(entry));
  }
  if (!cursor->status().ok()) return storage_error(directory_, "read failed", cursor->status());
  return events;
}

status event_log::commit_offset(std::string_view consumer, std::uint64_t offset) {
  rocksdb::WriteOptions durable;
  durable.sync = options_.sync;
  rocksdb::Status written = database_->Put(durable, named_key(offset_prefix, consumer), encode_u64(offset));
  if (!written.ok()) return storage_error(directory_, "commit of " + std::string(consumer) + "'s offset failed", written);
  return {};
}

std::optional<std::uint64_t> event_log::committed_offset(std::string_view consumer) const {
  std::string bytes;
  if (!database_->Get(rocksdb::ReadOptions(), named_key(offset_prefix, consumer), &bytes).ok()) return std::nullopt;
  return decode_u64(bytes);
}

status event_log::save_checkpoint(std::string_view consumer, std::span<const char> bytes) {
  rocksdb::WriteOptions durable;
  durable.sync = options_.sync;
  rocksdb::Status written = database_->Put(durable, named_key(checkpoint_prefix, consumer),
                                           rocksdb::Slice(bytes.data(), bytes.size()));
  if (!written.ok()) return storage_error(directory_, "checkpoint of " + std::string(consumer) + " failed", written);
  return {};
}

std::optional<std::vector<char>> event_log::load_checkpoint(std::string_view consumer) const {
  std::string bytes;
  if (!database_->Get(rocksdb::ReadOptions(), named_key(checkpoint_prefix, consumer), &bytes).ok()) return std::nullopt;
  return std::vector<char>(bytes.begin(), bytes.end());
}

}  // namespace rml::messaging
