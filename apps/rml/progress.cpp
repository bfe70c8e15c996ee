#include "apps/rml/progress.hpp"

#include <unistd.h>

#include <cstdio>

namespace rml::app {

progress_display::progress_display(std::string title, std::int64_t total, std::string unit)
    : title_(std::move(title)), unit_(std::move(unit)), total_(total),
      interactive_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

std::string progress_display::line(std::int64_t done, const std::string& status) const {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = seconds > 0 ? double(done) / seconds : 0.0;
  const double fraction = total_ > 0 ? double(done) / double(total_) : 0.0;
  char buffer[256];
  if (interactive_) {
    constexpr int width = 30;
    std::string bar(std::size_t(width), ' ');
    for (int cell = 0; cell < int(fraction * width); ++cell) bar[std::size_t(cell)] = '#';
    std::snprintf(buffer, sizeof(buffer), "%s [%s] %3.0f%% %.0f %s/s %s", title_.c_str(),
                  bar.c_str(), fraction * 100.0, rate, unit_.c_str(), status.c_str());
  } else {
    std::snprintf(buffer, sizeof(buffer), "%s: %lld/%lld %s (%.0f%%), %.0f %s/s, %s", title_.c_str(),
                  (long long)done, (long long)total_, unit_.c_str(), fraction * 100.0, rate,
                  unit_.c_str(), status.c_str());
  }
  return buffer;
}

void progress_display::update(std::int64_t done, const std::string& status) {
  const auto now = std::chrono::steady_clock::now();
  const auto interval = interactive_ ? std::chrono::milliseconds(100) : std::chrono::milliseconds(5000);
  if (now - last_draw_ < interval) return;
  last_draw_ = now;
  if (interactive_) {
    std::fprintf(stderr, "\r\033[K%s", line(done, status).c_str());
  } else {
    std::fprintf(stderr, "%s\n", line(done, status).c_str());
  }
  std::fflush(stderr);
}

void progress_display::finish(const std::string& status) {
  if (interactive_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", line(total_, status).c_str());
  std::fflush(stderr);
}

}  // namespace rml::app
