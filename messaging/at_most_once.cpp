#include "messaging/at_most_once.hpp"

namespace rml::messaging {

const char* to_string(delivery_verdict verdict) {
  switch (verdict) {
    case delivery_verdict::admit: return "admit";
    case delivery_verdict::duplicate: return "duplicate";
    case delivery_verdict::expired: return "expired";
    case delivery_verdict::older_incarnation: return "older_incarnation";
    case delivery_verdict::stale_epoch: return "stale_epoch";
    case delivery_verdict::no_deadline: return "no_deadline";
  }
  return "unknown";
}

void at_most_once_filter::forget_expired(std::int64_t now_us) {
  while (!expiries_.empty() && expiries_.top().deadline_us < now_us) {
    const expiry& oldest = expiries_.top();
    auto sender = senders_.find(oldest.sender);
    if (sender != senders_.end() && sender->second.incarnation == oldest.incarnation && sender->second.seen.erase(oldest.id) > 0) {
      --remembered_;
    }
    expiries_.pop();
  }
}

delivery_verdict at_most_once_filter::admit(const request_envelope& envelope, std::int64_t now_us) {
  forget_expired(now_us);
  // Unbounded memory otherwise: an id without a deadline would have to be kept forever.
  if (envelope.deadline_us <= 0) return delivery_verdict::no_deadline;
  if (envelope.deadline_us < now_us) return delivery_verdict::expired;
  if (envelope.epoch < highest_epoch_) return delivery_verdict::stale_epoch;
  auto& sender = senders_[envelope.sender];
  if (envelope.incarnation < sender.incarnation) return delivery_verdict::older_incarnation;
  if (envelope.incarnation > sender.incarnation) {
    // A new life of the sender: its predecessor's ids mean nothing any more.
    remembered_ -= sender.seen.size();
    sender.seen.clear();
    sender.incarnation = envelope.incarnation;
  }
  if (!sender.seen.insert(envelope.id).second) return delivery_verdict::duplicate;
  ++remembered_;
  highest_epoch_ = std::max(highest_epoch_, envelope.epoch);
  expiries_.push({envelope.deadline_us, envelope.sender, envelope.incarnation, envelope.id});
  return delivery_verdict::admit;
}

}  // namespace rml::messaging
