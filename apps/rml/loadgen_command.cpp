// `rml loadgen`: an open-loop load generator for the prediction socket. Requests leave at
// Poisson arrival times for a target rate whatever the answers do, and each latency runs
// from the request's *scheduled* send time, so a stalled server cannot hide its queueing
// (no coordinated omission). Prints p50/p90/p99/p99.9/max and errors by kind.
#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <unordered_map>

#include "apps/rml/commands.hpp"
#include "compute/data/dataset.hpp"
#include "compute/random.hpp"
#include "messaging/wire.hpp"

namespace rml::app {
namespace {
using clock_type = std::chrono::steady_clock;

struct loadgen_options {
  std::string address = "tcp://127.0.0.1:5556";
  double rate = 1000;
  double duration_s = 5;
  std::uint32_t rows = 1;
  std::uint32_t timeout_ms = 1000;
  std::uint64_t seed = 1;
  std::string dataset_dir = data::default_fashion_mnist_directory();
};

double percentile(std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, std::size_t(fraction * double(sorted.size())))];
}

int loadgen(const loadgen_options& options) {
  auto test = data::load_fashion_mnist(options.dataset_dir, data::split::test, 1.0f);
  if (!test) return std::fprintf(stderr, "rml loadgen: %s\n", test.error().message().c_str()), 1;
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.connect(options.address);

  random_source random(options.seed);
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(options.duration_s));
  auto next_send = start;
  std::unordered_map<std::uint64_t, clock_type::time_point> scheduled;
  std::vector<double> latencies_us;
  std::map<std::string, std::uint64_t> errors;
  std::uint64_t sent = 0;
  auto receive = [&](std::chrono::milliseconds wait) {
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, wait);
    while (true) {
      zmq::message_t answer;
      if (!socket.recv(answer, zmq::recv_flags::dontwait)) return;
      const auto now = clock_type::now();
      std::span<const std::byte> bytes(static_cast<const std::byte*>(answer.data()), answer.size());
      std::uint64_t id = 0;
      if (auto failure = messaging::wire::decode_error(bytes)) {
        id = failure->request_id;
        ++errors[to_string(failure->code)];
      } else if (auto reply = messaging::wire::decode_predict_reply(bytes)) {
        id = reply->request_id;
      } else {
        ++errors["undecodable"];
        continue;
      }
      auto found = scheduled.find(id);
      if (found == scheduled.end()) continue;
      latencies_us.push_back(std::chrono::duration<double, std::micro>(now - found->second).count());
      scheduled.erase(found);
    }
  };
  const std::int64_t width = test->feature_count();
  while (clock_type::now() < end) {
    const auto now = clock_type::now();
    while (next_send <= now && next_send < end) {
      messaging::predict_request request;
      request.request_id = ++sent;
      request.rows = options.rows;
      const std::int64_t first = std::int64_t((sent * options.rows) % std::uint64_t(test->rows() - options.rows));
      request.features.values.assign(test->features.data() + first * width, test->features.data() + (first + options.rows) * width);
      const auto frame = messaging::wire::encode_predict_request(request, std::uint32_t(width), options.timeout_ms);
      socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait);
      scheduled[request.request_id] = next_send;  // latency counts from the scheduled time
      // Poisson arrivals: exponential gaps with mean 1/rate.
      const double gap_s = -std::log(1.0 - double(random.uniform01())) / options.rate;
      next_send += std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(gap_s));
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(std::max(next_send - clock_type::now(), clock_type::duration::zero()));
    receive(std::min(wait, std::chrono::milliseconds(10)));
  }
  // Answers still on their way get until their timeout; the rest are lost (counted).
  const auto drain_end = clock_type::now() + std::chrono::milliseconds(options.timeout_ms + 500);
  while (!scheduled.empty() && clock_type::now() < drain_end) receive(std::chrono::milliseconds(10));
  if (!scheduled.empty()) errors["no_answer"] += scheduled.size();

  std::sort(latencies_us.begin(), latencies_us.end());
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  std::printf("sent %llu requests in %.1f s (target %.0f/s), %zu answered\n", (unsigned long long)sent, options.duration_s,
              options.rate, latencies_us.size());
  std::printf("latency µs from scheduled send: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n",
              percentile(latencies_us, 0.5), percentile(latencies_us, 0.9), percentile(latencies_us, 0.99),
              percentile(latencies_us, 0.999), latencies_us.empty() ? 0.0 : latencies_us.back());
  std::printf("throughput %.0f answers/s\n", double(latencies_us.size()) / elapsed);
  for (const auto& [kind, count] : errors) std::printf("errors %s: %llu\n", kind.c_str(), (unsigned long long)count);
  return 0;
}
}  // namespace

void register_loadgen_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<loadgen_options>();
  CLI::App* command = app.add_subcommand("loadgen", "Open-loop Poisson load on the prediction socket");
  command->add_option("--address", options->address, "The prediction socket")->capture_default_str();
  command->add_option("--rate", options->rate, "Requests per second")->check(CLI::Range(1.0, 1e7))->capture_default_str();
  command->add_option("--duration", options->duration_s, "Seconds of load")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  command->add_option("--rows", options->rows, "Rows per request")->check(CLI::Range(1, 4096))->capture_default_str();
  command->add_option("--timeout-ms", options->timeout_ms, "Deadline of each request")->capture_default_str();
  command->add_option("--seed", options->seed, "Seed of the arrival times")->capture_default_str();
  command->add_option("--dataset-dir", options->dataset_dir, "Directory of the Fashion-MNIST IDX files")->capture_default_str();
  command->callback([options, &exit_code] { exit_code = loadgen(*options); });
}

}  // namespace rml::app
