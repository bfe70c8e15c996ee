// Durability of a real process: `rml run` is killed with SIGKILL while a producer streams
// events into its ingest socket; every event the producer got an ack for is in the log
// afterwards, and `rml run --resume` on the same state finishes cleanly with them.
//   durability_test RML WORKDIR
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <map>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <zmq.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

#include "messaging/event_log.hpp"
#include "messaging/wire.hpp"

extern char** environ;

namespace {
std::string rml_binary;
std::string work_dir;

pid_t start_rml(const std::vector<std::string>& arguments, const std::string& output) {
  std::vector<std::string> all = {rml_binary};
  all.insert(all.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (auto& argument : all) argv.push_back(argument.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t files;
  posix_spawn_file_actions_init(&files);
  posix_spawn_file_actions_addopen(&files, 1, output.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&files, 2, (output + ".err").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  REQUIRE(posix_spawn(&pid, rml_binary.c_str(), &files, nullptr, argv.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&files);
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}
}  // namespace

TEST_CASE("no acknowledged event is lost when rml is killed with SIGKILL during ingestion") {
  namespace fs = std::filesystem;
  fs::remove_all(work_dir);
  fs::create_directories(work_dir);
  const std::string state = work_dir + "/state";
  const std::vector<std::string> ports = {"--ingest-port", "26555", "--predict-port", "26556", "--http-port", "26800"};
  std::vector<std::string> first = {"run", "--data-dir", state, "--rate", "2000"};
  first.insert(first.end(), ports.begin(), ports.end());
  const pid_t rml = start_rml(first, work_dir + "/first.out");

  zmq::context_t context;
  zmq::socket_t producer(context, zmq::socket_type::dealer);
  producer.set(zmq::sockopt::linger, 0);
  producer.set(zmq::sockopt::rcvtimeo, 2000);
  producer.connect("tcp://127.0.0.1:26555");
  // Streams for at least 3 s and until 320 events are acked (a slow machine, or a sanitizer
  // build, takes seconds to start), at most 120 s. Acks are matched by batch id: an answer
  // that comes after its receive timed out belongs to its own batch, not the next.
  std::vector<std::uint64_t> acked;
  std::map<std::uint64_t, std::vector<std::uint64_t>> unacked;  // batch id → event ids
  const auto started = std::chrono::steady_clock::now();
  std::uint64_t next_id = 1'000'000'000;  // far from the dataset source's ids
  std::uint64_t batch_id = 0;
  auto streaming = [&] {
    const auto elapsed = std::chrono::steady_clock::now() - started;
    return elapsed < std::chrono::seconds(120) && (elapsed < std::chrono::seconds(3) || acked.size() < 320);
  };
  while (streaming()) {
    rml::messaging::event_batch batch{++batch_id, {}};
    for (int index = 0; index < 16; ++index) {
      batch.events.push_back({next_id++, 0, {std::vector<float>(784, float(index))}, index % 10});
      unacked[batch_id].push_back(batch.events.back().id);
    }
    const auto frame = rml::messaging::wire::encode_ingest_request(batch, 784);
    producer.send(zmq::buffer(frame.data(), frame.size()));
    zmq::message_t answer;
    if (!producer.recv(answer)) continue;  // not up yet, or busy: the batch is unacked for now
    std::span<const std::byte> bytes(static_cast<const std::byte*>(answer.data()), answer.size());
    if (auto ack = rml::messaging::wire::decode_ingest_ack(bytes)) {
      auto found = unacked.find(ack->batch_id);
      if (found == unacked.end()) continue;
      acked.insert(acked.end(), found->second.begin(), found->second.end());
      unacked.erase(found);
    }
  }
  REQUIRE(kill(rml, SIGKILL) == 0);
  const int status = wait_for(rml);
  REQUIRE(WIFSIGNALED(status));
  INFO("acked events before the kill: " << acked.size());
  REQUIRE(acked.size() >= 160);

  {
    auto log = rml::messaging::event_log::open(state + "/log");
    REQUIRE(log.ok());
    for (std::uint64_t id : acked) REQUIRE((*log)->contains(id));
  }

  // Restarted on the same state, rml finishes the run with those events in it.
  std::vector<std::string> second = {"run", "--data-dir", state, "--resume"};
  second.insert(second.end(), ports.begin(), ports.end());
  const int resumed = wait_for(start_rml(second, work_dir + "/second.out"));
  REQUIRE(WIFEXITED(resumed));
  REQUIRE(WEXITSTATUS(resumed) == 0);
  auto log = rml::messaging::event_log::open(state + "/log");
  REQUIRE(log.ok());
  for (std::uint64_t id : acked) REQUIRE((*log)->contains(id));
  REQUIRE((*log)->end_offset() >= 60000 + acked.size());
}

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: durability_test RML WORKDIR [catch options]\n");
    return 2;
  }
  rml_binary = argv[1];
  work_dir = argv[2];
  Catch::Session session;
  std::vector<char*> rest = {argv[0]};
  for (int index = 3; index < argc; ++index) rest.push_back(argv[index]);
  if (int failed = session.applyCommandLine(int(rest.size()), rest.data()); failed != 0) return failed;
  return session.run();
}
