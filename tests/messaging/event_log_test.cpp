// The durable event log: appends get contiguous offsets and come back exactly, duplicates
// are never appended twice (within a call or across calls and reopenings), and offsets,
// checkpoints and events survive closing and reopening the log.
#include <catch2/catch.hpp>

#include <filesystem>
#include <unistd.h>

#include "messaging/event_log.hpp"

using namespace rml;
using namespace rml::messaging;

namespace {
struct temporary_directory {
  std::filesystem::path path;
  explicit temporary_directory(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("rml_log_test_" + std::to_string(::getpid()) + "_" + name)) {
    std::filesystem::remove_all(path);
  }
  ~temporary_directory() { std::filesystem::remove_all(path); }
};

event make_event(std::uint64_t id) {
  return event{id, std::int64_t(id) * 10, {{float(id), float(id) + 0.5f}}, std::int32_t(id % 10)};
}

event_batch make_batch(std::uint64_t batch_id, std::vector<std::uint64_t> ids) {
  event_batch batch{batch_id, {}};
  for (std::uint64_t id : ids) batch.events.push_back(make_event(id));
  return batch;
}
}  // namespace

TEST_CASE("appended events get contiguous offsets and read back exactly") {
  temporary_directory directory("append");
  auto log = event_log::open(directory.path.string());
  REQUIRE(log.ok());
  REQUIRE((*log)->end_offset() == 0);
  std::vector<event_batch> batches = {make_batch(1, {10, 11, 12}), make_batch(2, {13})};
  auto acks = (*log)->append(batches);
  REQUIRE(acks.ok());
  REQUIRE(acks->size() == 2);
  REQUIRE((*acks)[0] == event_acked{1, 0, 3, 0});
  REQUIRE((*acks)[1] == event_acked{2, 3, 1, 0});
  REQUIRE((*log)->end_offset() == 4);
  auto events = (*log)->read(1, 10);
  REQUIRE(events.ok());
  REQUIRE(events->size() == 3);
  REQUIRE((*events)[0].offset == 1);
  REQUIRE((*events)[0].fact == make_event(11));
  REQUIRE((*events)[2].fact == make_event(13));
  REQUIRE((*log)->read(4, 10)->empty());
}

TEST_CASE("an event id already in the log is not appended again") {
  temporary_directory directory("duplicates");
  auto log = std::move(event_log::open(directory.path.string()).value());
  std::vector<event_batch> first = {make_batch(1, {1, 2, 2, 3})};
  REQUIRE(log->append(first)->front() == event_acked{1, 0, 3, 1});
  std::vector<event_batch> again = {make_batch(2, {3, 4}), make_batch(3, {4, 1})};
  auto acks = log->append(again);
  REQUIRE((*acks)[0] == event_acked{2, 3, 1, 1});
  REQUIRE((*acks)[1] == event_acked{3, 4, 0, 2});
  REQUIRE(log->end_offset() == 4);
}

TEST_CASE("events, the duplicate index, offsets and checkpoints survive reopening") {
  temporary_directory directory("reopen");
  {
    auto log = std::move(event_log::open(directory.path.string()).value());
    std::vector<event_batch> batches = {make_batch(1, {5, 6, 7})};
    REQUIRE(log->append(batches).ok());
    REQUIRE(log->commit_offset("trainer", 2).ok());
    const std::vector<char> checkpoint = {'w', 'e', 'i', 'g', 'h', 't', 's', '\0', '!'};
    REQUIRE(log->save_checkpoint("trainer", checkpoint).ok());
  }
  auto log = std::move(event_log::open(directory.path.string()).value());
  REQUIRE(log->end_offset() == 3);
  REQUIRE(log->committed_offset("trainer") == std::optional<std::uint64_t>(2));
  REQUIRE_FALSE(log->committed_offset("feature").has_value());
  REQUIRE(log->load_checkpoint("trainer") == std::vector<char>{'w', 'e', 'i', 'g', 'h', 't', 's', '\0', '!'});
  REQUIRE_FALSE(log->load_checkpoint("serving").has_value());
  std::vector<event_batch> replayed = {make_batch(2, {7, 8})};
  REQUIRE(log->append(replayed)->front() == event_acked{2, 3, 1, 1});
  REQUIRE(log->read(0, 100)->back().fact == make_event(8));
}

TEST_CASE("a log directory that cannot be created is an io error naming it") {
  auto log = event_log::open("/proc/rml-cannot-create-this");
  REQUIRE_FALSE(log.ok());
  REQUIRE(log.error().code() == errc::io_error);
  REQUIRE(log.error().message().rfind("/proc/rml-cannot-create-this: cannot open the event log", 0) == 0);
}
