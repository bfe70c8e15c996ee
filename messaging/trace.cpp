#include "messaging/trace.hpp"

namespace rml::messaging {

namespace {
std::string json_string(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') quoted += '\\', quoted += c;
    else if (c == '\n') quoted += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20) quoted += ' ';
    else quoted += c;
  }
  return quoted + "\"";
}
}  // namespace

std::string to_json_line(const trace_event& event) {
  return "{\"timestamp_us\":" + std::to_string(event.timestamp_us) + ",\"component\":" + json_string(event.component) +
         ",\"kind\":" + json_string(event.kind) + ",\"detail\":" + json_string(event.detail) + "}";
}

void trace_log::record(trace_event event) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++recorded_;
  if (sink_) {
    const std::string line = to_json_line(event) + "\n";
    std::fwrite(line.data(), 1, line.size(), sink_);
  }
  ring_.push_back(std::move(event));
  if (ring_.size() > ring_events_max) ring_.pop_front();
}

std::vector<trace_event> trace_log::recent(std::size_t count) const {
  std::lock_guard<std::mutex> lock(mutex_);
  const std::size_t first = ring_.size() > count ? ring_.size() - count : 0;
  return {ring_.begin() + std::ptrdiff_t(first), ring_.end()};
}

std::uint64_t trace_log::recorded() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return recorded_;
}

bool trace_log::open_sink(const std::string& path, std::string& failure) {
  std::FILE* file = std::fopen(path.c_str(), "a");
  if (!file) {
    failure = path + ": cannot open the trace file for appending";
    return false;
  }
  std::setvbuf(file, nullptr, _IOLBF, 0);
  std::lock_guard<std::mutex> lock(mutex_);
  if (sink_) std::fclose(sink_);
  sink_ = file;
  return true;
}

void trace_log::close_sink() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (sink_) std::fclose(sink_);
  sink_ = nullptr;
}

}  // namespace rml::messaging
