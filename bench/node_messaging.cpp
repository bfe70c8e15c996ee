// Messages per second between two nodes (issue 11): rml's prediction requests over CAF's
// BASP — what a node's request ledger sends to serving on another node — beside raw CAF
// remote messaging of the same bytes and raw ZeroMQ PUSH/PULL, in the same run.
//
// Two actor systems in one process, connected over loopback TCP (BASP through the kernel's
// network stack, as between two processes on one host). A sink actor on node A counts what
// arrives and acknowledges every `window` messages; the sender on node B keeps two windows
// in flight (BASP buffers without bound: an unbounded sender measures memory, not the link).
//
//   rml_node_messaging --messages 200000 --rows 1 --repeats 5
#include <CLI/CLI.hpp>

#include <caf/all.hpp>
#include <caf/io/middleman.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <vector>

#include "bench/zmq_ceiling.hpp"
#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

namespace {
using namespace std::chrono_literals;
using ack_atom = caf::atom_constant<caf::atom("ack")>;

struct options_type {
  std::uint64_t messages = 200'000;
  std::uint32_t rows = 1;
  std::uint32_t window = 1000;
  int repeats = 5;
};

std::unique_ptr<caf::actor_system> make_node(caf::actor_system_config& config) {
  config.load<caf::io::middleman>();
  config.set("logger.verbosity", caf::atom("quiet"));
  config.set("scheduler.max-threads", 2);
  rml::messaging::register_messaging(config);
  return std::make_unique<caf::actor_system>(config);
}

/// Counts messages of any kind; acknowledges every `window` to whoever sent the last one.
caf::behavior sink(caf::event_based_actor* self, std::uint32_t window) {
  auto count = std::make_shared<std::uint64_t>(0);
  auto counted = [self, count, window] {
    if (++*count % window == 0) self->send(caf::actor_cast<caf::actor>(self->current_sender()), ack_atom::value, *count);
  };
  return {
      [counted](const rml::messaging::predict_request&) { counted(); },
      [counted](const std::vector<char>&) { counted(); },
  };
}

/// Seconds to deliver `messages` copies of `message` from node b to a new sink on node a.
template <class Message>
double send_all(caf::actor_system& a, caf::actor_system& b, const Message& message, const options_type& options) {
  // A fresh sink each time: its count starts at 0. Published on a new port, found over the
  // connection the two nodes already have.
  auto local_sink = a.spawn(sink, options.window);
  auto port = a.middleman().publish(local_sink, 0, "127.0.0.1", true);
  if (!port) throw std::runtime_error("cannot publish: " + a.render(port.error()));
  auto found = b.middleman().remote_actor("127.0.0.1", *port);
  if (!found) throw std::runtime_error("cannot connect: " + b.render(found.error()));
  const caf::actor remote_sink = *found;
  caf::scoped_actor self{b};
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t sent = 0, acked = 0;
  while (acked < options.messages) {
    // Two windows in flight at most.
    while (sent < options.messages && sent - acked < 2ull * options.window) {
      const std::uint64_t burst = std::min<std::uint64_t>(options.window, options.messages - sent);
      for (std::uint64_t index = 0; index < burst; ++index) self->send(remote_sink, message);
      sent += burst;
    }
    self->receive([&](ack_atom, std::uint64_t count) { acked = count; },
                  caf::after(10s) >> [&] {
                    std::fprintf(stderr, "no acknowledgement for 10 s (%llu of %llu acked)\n", (unsigned long long)acked,
                                 (unsigned long long)options.messages);
                    acked = options.messages;
                  });
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  caf::anon_send_exit(local_sink, caf::exit_reason::user_shutdown);
  return seconds;
}

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}
}  // namespace

int main(int argc, char** argv) {
  options_type options;
  CLI::App app{"Messages/s between two nodes: rml's requests over BASP, raw CAF, raw ZeroMQ"};
  app.add_option("--messages", options.messages, "Messages per measurement")->capture_default_str();
  app.add_option("--rows", options.rows, "Fashion-MNIST rows (784 floats each) per request")->capture_default_str();
  app.add_option("--window", options.window, "Messages per acknowledgement (two windows in flight)")->capture_default_str();
  app.add_option("--repeats", options.repeats, "Measurements of each; the median is printed")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (options.messages % options.window != 0) options.messages += options.window - options.messages % options.window;

  caf::actor_system_config config_a, config_b;
  auto node_a = make_node(config_a);
  auto node_b = make_node(config_b);

  rml::messaging::predict_request request;
  request.request_id = 1;
  request.deadline_us = 1'000'000;
  request.rows = options.rows;
  request.features.values().assign(std::size_t(options.rows) * 784, 0.5f);
  // Raw CAF: the same number of bytes as one opaque vector (no per-field serialisation).
  const std::vector<char> raw(std::size_t(options.rows) * 784 * sizeof(float) + 40, 'x');
  const std::vector<std::byte> frame(raw.size());

  std::vector<double> rml_runs, caf_runs, zmq_runs;
  for (int repeat = 0; repeat < options.repeats; ++repeat) {
    rml_runs.push_back(double(options.messages) / send_all(*node_a, *node_b, request, options));
    caf_runs.push_back(double(options.messages) / send_all(*node_a, *node_b, raw, options));
    zmq_runs.push_back(double(options.messages) / rml::bench::raw_push_pull(options.messages, frame));
  }
  const double rml_rate = median(rml_runs), caf_rate = median(caf_runs), zmq_rate = median(zmq_runs);
  std::printf("%u row(s), %zu bytes a message, %llu messages, median of %d:\n", options.rows, raw.size(),
              (unsigned long long)options.messages, options.repeats);
  std::printf("  rml predict_request over BASP  %10.0f messages/s  %7.1f MB/s\n", rml_rate, rml_rate * double(raw.size()) / 1e6);
  std::printf("  raw CAF bytes over BASP        %10.0f messages/s  %7.1f MB/s  (rml/raw CAF %.2f)\n", caf_rate,
              caf_rate * double(raw.size()) / 1e6, rml_rate / caf_rate);
  std::printf("  raw ZeroMQ PUSH/PULL           %10.0f messages/s  %7.1f MB/s  (rml/ZeroMQ %.2f)\n", zmq_rate,
              zmq_rate * double(raw.size()) / 1e6, rml_rate / zmq_rate);
  return 0;
}
