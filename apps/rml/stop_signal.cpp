#include "apps/rml/stop_signal.hpp"

#include <csignal>

namespace rml::app {
namespace {
volatile std::sig_atomic_t stop_flag = 0;
extern "C" void on_stop_signal(int) { stop_flag = 1; }
}  // namespace

void stop_on_signals() {
  stop_flag = 0;
  std::signal(SIGTERM, on_stop_signal);
  std::signal(SIGINT, on_stop_signal);
}

bool stop_requested() { return stop_flag != 0; }

}  // namespace rml::app
