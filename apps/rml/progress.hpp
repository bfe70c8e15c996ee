#pragma once
// Progress on the terminal: a redrawn bar when standard error is a terminal, plain lines
// at a steady pace otherwise (logs, CI).

#include <chrono>
#include <cstdint>
#include <string>

namespace rml::app {

class progress_display {
 public:
  /// `total` units of work named `unit` ("samples").
  progress_display(std::string title, std::int64_t total, std::string unit);
  /// Reports `done` units and a free-form status ("loss 0.41"); redraws at most ~10×/s
  /// on a terminal and once every 5 s otherwise.
  void update(std::int64_t done, const std::string& status);
  /// Final line with the rate over the whole run.
  void finish(const std::string& status);

 private:
  std::string line(std::int64_t done, const std::string& status) const;

  std::string title_, unit_;
  std::int64_t total_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace rml::app
