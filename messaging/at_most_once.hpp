#pragma once
// At-most-once delivery for requests between nodes. CAF's BASP gives no such promise across
// a reconnect, and the node that holds a client's connection retries a request on another
// replica when the first one's node is lost: so every cross-node request carries who sent it
// (node name and incarnation), an id unique within that incarnation, a deadline and the
// sender's view of the controller's epoch, and every receiver passes it through this filter
// before acting on it. A duplicate, a request past its deadline, one from an older
// incarnation of its sender (a restarted node's predecessor) or from below the highest
// epoch seen (a deposed controller's world) is dropped.
//
// Memory is bounded by the deadline window: an id is remembered until its deadline passes;
// after that a copy of it is refused as expired anyway, so it can be forgotten.

#include <atomic>
#include <cstdint>
#include <map>
#include <queue>
#include <string>
#include <unordered_set>
#include <vector>

namespace rml::messaging {

struct request_envelope {
  std::string sender;
  /// The sender's incarnation (its member key's create revision): a restarted node's is higher.
  std::int64_t incarnation = 0;
  /// Unique within (sender, incarnation).
  std::uint64_t id = 0;
  /// Microseconds on the receiver's clock by which it is useless; every cross-node request has one.
  std::int64_t deadline_us = 0;
  /// The controller epoch the sender acted under.
  std::int64_t epoch = 0;
  friend bool operator==(const request_envelope&, const request_envelope&) = default;
};

/// What a node stamps on the requests its ledgers send to serving on another node
/// (messages.hpp, burst_origin): its name, and its incarnation and the controller's epoch as
/// it knows them now — the node updates them as it joins and as the controller changes.
struct sender_identity {
  std::string node;
  std::atomic<std::int64_t> incarnation{0};
  std::atomic<std::int64_t> epoch{0};
};

enum class delivery_verdict : std::uint8_t { admit, duplicate, expired, older_incarnation, stale_epoch, no_deadline };

const char* to_string(delivery_verdict verdict);

class at_most_once_filter {
 public:
  /// Admits `envelope` at most once; `now_us` on the same clock as its deadline.
  delivery_verdict admit(const request_envelope& envelope, std::int64_t now_us);
  /// Ids remembered now (for tests and metrics).
  std::size_t remembered() const { return remembered_; }
  std::int64_t highest_epoch() const { return highest_epoch_; }

 private:
  struct sender_state {
    std::int64_t incarnation = 0;
    std::unordered_set<std::uint64_t> seen;
  };
  struct expiry {
    std::int64_t deadline_us;
    std::string sender;
    std::int64_t incarnation;
    std::uint64_t id;
    bool operator>(const expiry& other) const { return deadline_us > other.deadline_us; }
  };
  void forget_expired(std::int64_t now_us);

  std::map<std::string, sender_state> senders_;
  std::priority_queue<expiry, std::vector<expiry>, std::greater<>> expiries_;
  std::int64_t highest_epoch_ = 0;
  std::size_t remembered_ = 0;
};

}  // namespace rml::messaging
