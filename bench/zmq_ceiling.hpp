#pragma once
// The raw ZeroMQ ceiling both the ingestion and the serving benchmarks compare against:
// PUSH/PULL over loopback TCP moving `frames` copies of `frame` one way, nothing else.
#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace rml::bench {

/// Seconds to move `frames` frames.
inline double raw_push_pull(std::uint64_t frames, const std::vector<std::byte>& frame) {
  zmq::context_t context;
  zmq::socket_t pull(context, zmq::socket_type::pull);
  pull.bind("tcp://127.0.0.1:0");
  const std::string address = pull.get(zmq::sockopt::last_endpoint);
  std::thread receiver([&] {
    zmq::message_t message;
    for (std::uint64_t index = 0; index < frames; ++index) (void)pull.recv(message);
  });
  zmq::socket_t push(context, zmq::socket_type::push);
  push.connect(address);
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t index = 0; index < frames; ++index) push.send(zmq::buffer(frame.data(), frame.size()));
  receiver.join();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace rml::bench
