// The raw ZeroMQ ceiling of the serving benchmark: predict-request frames of one Fashion-MNIST
// row (784 floats, ~3 KB) moved one way over loopback TCP, PUSH/PULL, no compute. Prints one
// JSON line. Usage: rml_zmq_ceiling [--frames N]
#include <CLI/CLI.hpp>

#include <cstdio>

#include "bench/zmq_ceiling.hpp"
#include "messaging/wire.hpp"

int main(int argc, char** argv) {
  CLI::App app{"raw ZeroMQ ceiling for serving"};
  std::uint64_t frames = 500'000;
  app.add_option("--frames", frames);
  CLI11_PARSE(app, argc, argv);
  rml::messaging::predict_request request;
  request.request_id = 1;
  request.rows = 1;
  request.features.values().assign(784, 0.5f);
  const auto frame = rml::messaging::wire::encode_predict_request(request, 784, 1000);
  rml::bench::raw_push_pull(frames / 10, frame);  // warm-up
  const double seconds = rml::bench::raw_push_pull(frames, frame);
  std::printf("{\"frame_bytes\": %zu, \"frames\": %llu, \"messages_per_s\": %.0f}\n", frame.size(), (unsigned long long)frames,
              double(frames) / seconds);
  return 0;
}
