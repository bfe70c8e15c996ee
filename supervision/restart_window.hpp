#pragma once
// Restarts within a sliding window — OTP's intensity over a period — and the backoff before
// the next one: what every supervisor here (supervisor, dynamic_supervisor) and the
// router's lane restarts count with. Times are the actor clock's (virtual in tests).

#include <caf/actor_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>

namespace rml::supervision {

class restart_window {
 public:
  using time_point = caf::actor_clock::time_point;

  /// Records a restart at `now` and forgets the ones older than `period`; returns how many
  /// the window holds now.
  std::size_t record(time_point now, caf::timespan period) {
    times_.push_back(now);
    while (!times_.empty() && times_.front() < now - period) times_.pop_front();
    return times_.size();
  }
  std::size_t size() const { return times_.size(); }

  /// The delay before the next restart: initial · 2^(restarts in the window − 1), at most
  /// `most`; zero with no initial delay or no restart yet.
  std::chrono::milliseconds backoff(std::chrono::milliseconds initial, std::chrono::milliseconds most) const {
    if (initial.count() == 0 || times_.empty()) return std::chrono::milliseconds(0);
    const std::size_t doublings = std::min<std::size_t>(times_.size() - 1, 20);
    return std::min(initial * (std::int64_t(1) << doublings), most);
  }

 private:
  std::deque<time_point> times_;
};

}  // namespace rml::supervision
