// Ingestion benchmark: events/s of 784-float events through rml's ZeroMQ ingest socket into
// the durable (fsync'd) event log, acked, side by side with raw ZeroMQ PUSH/PULL moving the
// same frames over the same loopback with no processing at all.
//
//   rml_ingest_bench [--events N] [--batch-events B] [--window W]
//
// Prints one JSON line: both rates and their ratio.
#include <CLI/CLI.hpp>
#include <caf/all.hpp>
#include <zmq.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "actors/ingestion/ingest.hpp"
#include "messaging/errors.hpp"
#include "messaging/zmq_endpoint.hpp"
#include "bench/zmq_ceiling.hpp"

using clock_type = std::chrono::steady_clock;
using namespace rml;

namespace {
std::vector<std::byte> make_frame(std::uint64_t batch_id, std::uint64_t first_id, std::uint32_t events) {
  messaging::event_batch batch{batch_id, {}};
  for (std::uint32_t index = 0; index < events; ++index) {
    batch.events.push_back({first_id + index, 0, {std::vector<float>(784, float(index % 255))}, std::int32_t(index % 10)});
  }
  return messaging::wire::encode_ingest_request(batch, 784);
}

double rml_ingest(std::uint64_t frames, std::uint32_t batch_events, std::uint32_t window, const std::string& directory) {
  caf::actor_system_config config;
  config.set("logger.verbosity", caf::atom("quiet"));
  messaging::register_messaging(config);
  caf::actor_system system{config};
  std::filesystem::remove_all(directory);
  std::shared_ptr<messaging::event_log> log(std::move(messaging::event_log::open(directory).value()));
  actors::ingest_options ingest_settings;
  auto ingest = actors::spawn_ingest(system, log, ingest_settings);
  system.registry().put(caf::atom("ingest"), ingest);
  messaging::zmq_endpoint_options socket;
  socket.role = messaging::endpoint_role::ingest;
  socket.bind = "tcp://127.0.0.1:0";
  socket.target = caf::atom("ingest");
  auto endpoint = std::move(messaging::zmq_endpoint::start(system, socket).value());

  zmq::context_t context;
  zmq::socket_t producer(context, zmq::socket_type::dealer);
  producer.connect(endpoint->address());
  std::uint64_t sent = 0, acked = 0;
  const auto start = clock_type::now();
  while (acked < frames) {
    while (sent < frames && sent - acked < window) {
      const auto frame = make_frame(sent, sent * batch_events, batch_events);
      producer.send(zmq::buffer(frame.data(), frame.size()));
      ++sent;
    }
    zmq::message_t answer;
    (void)producer.recv(answer);
    std::span<const std::byte> bytes(static_cast<const std::byte*>(answer.data()), answer.size());
    if (!messaging::wire::decode_ingest_ack(bytes)) {
      std::fprintf(stderr, "ingest refused a batch: %s\n", messaging::wire::decode_error(bytes)->message.c_str());
      std::exit(1);
    }
    ++acked;
  }
  const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
  if (log->end_offset() != frames * batch_events) {
    std::fprintf(stderr, "log holds %llu events, expected %llu\n", (unsigned long long)log->end_offset(),
                 (unsigned long long)(frames * batch_events));
    std::exit(1);
  }
  endpoint.reset();
  caf::anon_send_exit(ingest, caf::exit_reason::user_shutdown);
  return seconds;
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"rml ingestion benchmark"};
  std::uint64_t events = 100'000;
  std::uint32_t batch_events = 64;
  std::uint32_t window = 8;
  std::string directory = (std::filesystem::temp_directory_path() / "rml_ingest_bench").string();
  app.add_option("--events", events);
  app.add_option("--batch-events", batch_events)->check(CLI::Range(1, 4096));
  app.add_option("--window", window, "batches awaiting their ack")->check(CLI::Range(1, 1024));
  app.add_option("--directory", directory);
  CLI11_PARSE(app, argc, argv);
  const std::uint64_t frames = std::max<std::uint64_t>(1, events / batch_events);
  const auto frame = make_frame(0, 0, batch_events);
  const double raw_seconds = bench::raw_push_pull(frames, frame);
  const double rml_seconds = rml_ingest(frames, batch_events, window, directory);
  const double raw_rate = double(frames * batch_events) / raw_seconds;
  const double rml_rate = double(frames * batch_events) / rml_seconds;
  std::printf("{\"benchmark\": \"ingest\", \"events\": %llu, \"batch_events\": %u, \"window\": %u, \"frame_bytes\": %zu, "
              "\"raw_push_pull_events_per_s\": %.0f, \"rml_durable_events_per_s\": %.0f, \"ratio\": %.3f}\n",
              (unsigned long long)(frames * batch_events), batch_events, window, frame.size(), raw_rate, rml_rate,
              rml_rate / raw_rate);
  std::filesystem::remove_all(directory);
  return 0;
}
