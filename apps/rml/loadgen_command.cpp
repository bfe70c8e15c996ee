// `rml loadgen`: an open-loop load generator for rml's prediction interfaces — the ZeroMQ
// socket (tcp://…) or KServe V2 over HTTP (http://…). Requests leave at Poisson arrival
// times for a target rate whatever the answers do, and each latency runs from the request's
// *scheduled* send time, so a stalled server cannot hide its queueing (no coordinated
// omission). Prints p50/p90/p99/p99.9/max, the answer rate and errors by kind.
//
// Over HTTP the requests spread over `--connections` kept-alive connections, each going to
// the connection with the fewest requests outstanding; a connection pipelines (HTTP/1.1
// answers in order), so sending never waits for an answer.
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <poll.h>
#include <sys/prctl.h>
#include <zmq.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <map>
#include <random>
#include <unordered_map>

#include "apps/rml/commands.hpp"
#include "apps/rml/secrets.hpp"
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
  // HTTP only.
  std::string model = "mlp";
  int connections = 32;
  bool binary = false;
  std::string token_file;
  std::string token;  // read from token_file
};

/// What a run measured.
struct load_results {
  std::uint64_t sent = 0;
  std::vector<double> latencies_us;  // of successful answers
  std::map<std::string, std::uint64_t> errors;
  /// The first message seen of each error kind (what the server said), for the report.
  std::map<std::string, std::string> first_messages;
  double elapsed_s = 0;

  void count_error(const std::string& kind, std::string_view message = {}) {
    ++errors[kind];
    if (!message.empty()) first_messages.try_emplace(kind, message.substr(0, 300));
  }
};

double percentile(const std::vector<double>& sorted, double fraction) {
  if (sorted.empty()) return 0;
  return sorted[std::min(sorted.size() - 1, std::size_t(fraction * double(sorted.size())))];
}

/// Poisson arrivals: exponential gaps with mean 1/rate.
clock_type::duration next_gap(random_source& random, double rate) {
  const double gap_s = -std::log(1.0 - double(random.uniform01())) / rate;
  return std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(gap_s));
}

load_results zmq_load(const loadgen_options& options, const data::dataset& test) {
  load_results results;
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::sndhwm, 0);
  socket.connect(options.address);
  const int notify_fd = socket.get(zmq::sockopt::fd);
  // Wake-ups as precise as the kernel allows (the default slack is 50 µs).
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);

  random_source random(options.seed);
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(options.duration_s));
  auto next_send = start;
  std::unordered_map<std::uint64_t, clock_type::time_point> scheduled;
  auto receive = [&](std::chrono::milliseconds wait) {
    zmq::pollitem_t items[] = {{socket.handle(), 0, ZMQ_POLLIN, 0}};
    zmq::poll(items, 1, wait);
    while (true) {
      zmq::message_t answer;
      if (!socket.recv(answer, zmq::recv_flags::dontwait)) return;
      const auto now = clock_type::now();
      std::span<const std::byte> bytes(static_cast<const std::byte*>(answer.data()), answer.size());
      std::uint64_t id = 0;
      bool ok = false;
      if (auto failure = messaging::wire::decode_error(bytes)) {
        id = failure->request_id;
        results.count_error(to_string(failure->code), failure->message);
      } else if (auto reply = messaging::wire::decode_predict_reply(bytes)) {
        id = reply->request_id;
        ok = true;
      } else {
        ++results.errors["undecodable"];
        continue;
      }
      auto found = scheduled.find(id);
      if (found == scheduled.end()) continue;
      if (ok) results.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - found->second).count());
      scheduled.erase(found);
    }
  };
  const std::int64_t width = test.feature_count();
  while (clock_type::now() < end) {
    const auto now = clock_type::now();
    while (next_send <= now && next_send < end) {
      messaging::predict_request request;
      request.request_id = ++results.sent;
      request.rows = options.rows;
      const std::int64_t first = std::int64_t((results.sent * options.rows) % std::uint64_t(test.rows() - options.rows));
      request.features.values().assign(test.features.data() + first * width, test.features.data() + (first + options.rows) * width);
      const auto frame = messaging::wire::encode_predict_request(request, std::uint32_t(width), options.timeout_ms);
      socket.send(zmq::buffer(frame.data(), frame.size()), zmq::send_flags::dontwait);
      scheduled[request.request_id] = next_send;  // latency counts from the scheduled time
      next_send += next_gap(random, options.rate);
    }
    // Wait for an answer or the next send, whichever comes first, without spinning (a core
    // is left to the server on a small machine) and with nanosecond timeouts: zmq_poll only
    // knows milliseconds, so wait on the socket's notification descriptor with ppoll.
    receive(std::chrono::milliseconds(0));
    if (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) continue;
    const auto gap = std::min<clock_type::duration>(next_send - clock_type::now(), std::chrono::milliseconds(10));
    if (gap > clock_type::duration::zero()) {
      const auto nanoseconds = std::chrono::duration_cast<std::chrono::nanoseconds>(gap).count();
      const timespec timeout{time_t(nanoseconds / 1'000'000'000), long(nanoseconds % 1'000'000'000)};
      pollfd notification{notify_fd, POLLIN, 0};
      ::ppoll(&notification, 1, &timeout, nullptr);
    }
  }
  // Answers still on their way get until their timeout; the rest are lost (counted).
  const auto drain_end = clock_type::now() + std::chrono::milliseconds(options.timeout_ms + 500);
  while (!scheduled.empty() && clock_type::now() < drain_end) receive(std::chrono::milliseconds(10));
  if (!scheduled.empty()) results.errors["no_answer"] += scheduled.size();
  results.elapsed_s = std::chrono::duration<double>(clock_type::now() - start).count();
  return results;
}

namespace net = boost::asio;
namespace http = boost::beast::http;

/// The HTTP request bytes for `rows` rows from row `first` of the test set (V2 JSON, or the
/// binary tensor data extension).
std::string http_request_bytes(const loadgen_options& options, const std::string& host, const data::dataset& test, std::int64_t first,
                               std::uint64_t id) {
  const std::int64_t width = test.feature_count();
  const float* values = test.features.data() + first * width;
  const std::size_t count = std::size_t(options.rows) * std::size_t(width);
  std::string header = "{\"id\":\"" + std::to_string(id) + "\",\"parameters\":{\"timeout\":" + std::to_string(options.timeout_ms * 1000) +
                       "},\"inputs\":[{\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[" + std::to_string(options.rows) + "," +
                       std::to_string(width) + "],";
  std::string body;
  std::string extra_header = options.token.empty() ? std::string() : "Authorization: Bearer " + options.token + "\r\n";
  if (options.binary) {
    header += "\"parameters\":{\"binary_data_size\":" + std::to_string(count * sizeof(float)) + "}}],\"outputs\":[{\"name\":\"classes\"}]}";
    body = header;
    body.append(reinterpret_cast<const char*>(values), count * sizeof(float));
    extra_header += "Inference-Header-Content-Length: " + std::to_string(header.size()) + "\r\n";
  } else {
    header += "\"data\":[";
    char number[32];
    for (std::size_t index = 0; index < count; ++index) {
      const int length = std::snprintf(number, sizeof(number), index ? ",%.6g" : "%.6g", double(values[index]));
      header.append(number, std::size_t(length));
    }
    header += "]}],\"outputs\":[{\"name\":\"classes\"}]}";
    body = std::move(header);
  }
  return "POST /v2/models/" + options.model + "/infer HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: application/" +
         (options.binary ? "octet-stream" : "json") + "\r\n" + extra_header + "Content-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

struct http_connection {
  explicit http_connection(net::io_context& io) : socket(io) {}
  net::ip::tcp::socket socket;
  boost::beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  std::deque<clock_type::time_point> outstanding;  // scheduled times, in send order
  std::deque<std::shared_ptr<const std::string>> to_write;
  bool writing = false, broken = false;
};

load_results http_load(const loadgen_options& options, const data::dataset& test) {
  load_results results;
  const std::string rest = options.address.substr(7);  // after http://
  const auto colon = rest.rfind(':');
  const std::string host = rest.substr(0, colon);
  const std::string port = colon == std::string::npos ? "80" : rest.substr(colon + 1, rest.find('/', colon) - colon - 1);
  net::io_context io;
  net::ip::tcp::resolver resolver(io);
  boost::system::error_code failure;
  auto endpoints = resolver.resolve(host, port, failure);
  if (failure) {
    ++results.errors["cannot_resolve"];
    return results;
  }
  // Request bytes for every test row (distinct inputs, as the ZeroMQ path sends: a cache
  // in the server must not flatter it), made before the clock starts.
  const std::int64_t distinct_requests = std::max<std::int64_t>(1, test.rows() - options.rows);
  std::vector<std::shared_ptr<const std::string>> prepared;
  for (std::int64_t index = 0; index < distinct_requests; ++index) {
    const std::int64_t first = (index * options.rows) % distinct_requests;
    prepared.push_back(std::make_shared<const std::string>(http_request_bytes(options, host, test, first, std::uint64_t(index + 1))));
  }
  std::vector<std::unique_ptr<http_connection>> connections;
  for (int index = 0; index < options.connections; ++index) {
    auto connection = std::make_unique<http_connection>(io);
    net::connect(connection->socket, endpoints, failure);
    if (failure) {
      ++results.errors["cannot_connect"];
      return results;
    }
    connection->socket.set_option(net::ip::tcp::no_delay(true));
    connections.push_back(std::move(connection));
  }
  std::function<void(http_connection&)> write_next = [&](http_connection& connection) {
    if (connection.writing || connection.to_write.empty() || connection.broken) return;
    connection.writing = true;
    auto bytes = connection.to_write.front();
    net::async_write(connection.socket, net::buffer(*bytes), [&, bytes, raw = &connection](boost::system::error_code error, std::size_t) {
      raw->writing = false;
      raw->to_write.pop_front();
      if (error) {
        raw->broken = true;
        return;
      }
      write_next(*raw);
    });
  };
  std::function<void(http_connection&)> read_next = [&](http_connection& connection) {
    connection.parser.emplace();
    connection.parser->body_limit(64u << 20);
    http::async_read(connection.socket, connection.buffer, *connection.parser, [&, raw = &connection](boost::system::error_code error, std::size_t) {
      if (error) {
        raw->broken = true;
        return;
      }
      const auto now = clock_type::now();
      if (!raw->outstanding.empty()) {
        const auto scheduled = raw->outstanding.front();
        raw->outstanding.pop_front();
        const unsigned status = raw->parser->get().result_int();
        if (status == 200) results.latencies_us.push_back(std::chrono::duration<double, std::micro>(now - scheduled).count());
        else results.count_error("http_" + std::to_string(status), raw->parser->get().body());
      }
      read_next(*raw);
    });
  };
  for (auto& connection : connections) read_next(*connection);

  random_source random(options.seed);
  const auto start = clock_type::now();
  const auto end = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(options.duration_s));
  auto next_send = start;
  net::steady_timer timer(io);
  std::function<void()> send_due = [&]() {
    const auto now = clock_type::now();
    while (next_send <= now && next_send < end) {
      http_connection* least = nullptr;
      for (auto& connection : connections) {
        if (!connection->broken && (!least || connection->outstanding.size() < least->outstanding.size())) least = connection.get();
      }
      ++results.sent;
      if (!least) {
        ++results.errors["no_connection"];
      } else {
        least->outstanding.push_back(next_send);  // latency counts from the scheduled time
        least->to_write.push_back(prepared[std::size_t(results.sent % std::uint64_t(distinct_requests))]);
        write_next(*least);
      }
      next_send += next_gap(random, options.rate);
    }
    if (next_send < end) {
      timer.expires_at(next_send);
      timer.async_wait([&](boost::system::error_code) { send_due(); });
    }
  };
  send_due();
  // Run until the load is sent and every answer is in, or the last timeout passed.
  while (true) {
    io.run_for(std::chrono::milliseconds(10));
    std::size_t waiting = 0;
    for (auto& connection : connections) waiting += connection->broken ? 0 : connection->outstanding.size();
    const auto now = clock_type::now();
    if (now >= end && (waiting == 0 || now > end + std::chrono::milliseconds(options.timeout_ms + 500))) break;
  }
  for (auto& connection : connections) {
    if (!connection->outstanding.empty()) results.errors[connection->broken ? "connection_lost" : "no_answer"] += connection->outstanding.size();
  }
  results.elapsed_s = std::chrono::duration<double>(clock_type::now() - start).count();
  return results;
}

int loadgen(loadgen_options options) {
  if (!options.token_file.empty()) {
    auto token = read_secret_file(options.token_file, "--token-file");
    if (!token) return std::fprintf(stderr, "rml loadgen: %s\n", token.error().message().c_str()), 2;
    options.token = *token;
  }
  const bool over_http = options.address.rfind("http://", 0) == 0;
  if (!over_http && options.address.rfind("tcp://", 0) != 0 && options.address.rfind("ipc://", 0) != 0) {
    return std::fprintf(stderr, "rml loadgen: --address '%s': expected tcp://host:port (ZeroMQ) or http://host:port (KServe V2)\n",
                        options.address.c_str()),
           2;
  }
  auto test = data::load_fashion_mnist(options.dataset_dir, data::split::test, 1.0f);
  if (!test) return std::fprintf(stderr, "rml loadgen: %s\n", test.error().message().c_str()), 1;
  auto results = over_http ? http_load(options, *test) : zmq_load(options, *test);
  auto& latencies = results.latencies_us;
  std::sort(latencies.begin(), latencies.end());
  std::uint64_t failed = 0;
  for (const auto& [kind, count] : results.errors) failed += count;
  std::printf("sent %llu requests in %.1f s (target %.0f/s), %zu answered, %llu errors\n", (unsigned long long)results.sent,
              options.duration_s, options.rate, latencies.size(), (unsigned long long)failed);
  std::printf("latency µs from scheduled send: p50 %.0f  p90 %.0f  p99 %.0f  p99.9 %.0f  max %.0f\n", percentile(latencies, 0.5),
              percentile(latencies, 0.9), percentile(latencies, 0.99), percentile(latencies, 0.999), latencies.empty() ? 0.0 : latencies.back());
  std::printf("throughput %.0f answers/s (%.0f predictions/s)\n", double(latencies.size()) / results.elapsed_s,
              double(latencies.size()) * options.rows / results.elapsed_s);
  for (const auto& [kind, count] : results.errors) {
    auto message = results.first_messages.find(kind);
    if (message == results.first_messages.end()) std::printf("errors %s: %llu\n", kind.c_str(), (unsigned long long)count);
    else std::printf("errors %s: %llu (the first: %s)\n", kind.c_str(), (unsigned long long)count, message->second.c_str());
  }
  return 0;
}
}  // namespace

void register_loadgen_command(CLI::App& app, int& exit_code) {
  auto options = std::make_shared<loadgen_options>();
  CLI::App* command = app.add_subcommand("loadgen", "Open-loop Poisson load on the prediction socket or the HTTP endpoint");
  command->add_option("--address", options->address, "tcp://host:port (ZeroMQ) or http://host:port (KServe V2)")->capture_default_str();
  command->add_option("--rate", options->rate, "Requests per second")->check(CLI::Range(1.0, 1e7))->capture_default_str();
  command->add_option("--duration", options->duration_s, "Seconds of load")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  command->add_option("--rows", options->rows, "Rows per request")->check(CLI::Range(1, 4096))->capture_default_str();
  command->add_option("--timeout-ms", options->timeout_ms, "Deadline of each request")->capture_default_str();
  command->add_option("--seed", options->seed, "Seed of the arrival times")->capture_default_str();
  command->add_option("--dataset-dir", options->dataset_dir, "Directory of the Fashion-MNIST IDX files")->capture_default_str();
  command->add_option("--model", options->model, "HTTP: the model in /v2/models/{model}/infer")->capture_default_str();
  command->add_option("--connections", options->connections, "HTTP: kept-alive connections")->check(CLI::Range(1, 4096))->capture_default_str();
  command->add_flag("--binary", options->binary, "HTTP: send tensors with the binary tensor data extension instead of JSON");
  command->add_option("--token-file", options->token_file, "HTTP: file holding the inference token (rml run --infer-token-file)");
  command->callback([options, &exit_code] { exit_code = loadgen(*options); });
}

}  // namespace rml::app
