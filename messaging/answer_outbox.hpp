#pragma once
// Answers to burst senders (predict_burst), collected while an actor handles one message and
// sent at its end as one predict_answers per sender: the router and every lane use it.

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <utility>
#include <vector>

#include "messaging/messages.hpp"

namespace rml::messaging {

class answer_outbox {
 public:
  /// Answers `ticket` of `asker` with `reply`, or with `failure` when `reply` is null.
  void add(const caf::strong_actor_ptr& asker, std::uint64_t ticket, std::uint64_t request_id, predict_reply* reply, caf::error failure) {
    auto found = std::find_if(entries_.begin(), entries_.end(), [&](const auto& entry) { return entry.first == asker; });
    if (found == entries_.end()) found = entries_.insert(entries_.end(), {asker, {}});
    ticketed_answer answer;
    answer.ticket = ticket;
    answer.request_id = request_id;
    if (reply) answer.reply = std::move(*reply);
    else answer.failure = std::move(failure);
    found->second.answers.push_back(std::move(answer));
  }

  /// Sends what was collected, as `self`: one message per asker.
  template <class Self>
  void flush(Self* self) {
    // Askers may be dynamically typed (an endpoint's bridge, a test), which a typed send refuses.
    for (auto& [asker, answers] : entries_) caf::unsafe_send_as(self, asker, std::move(answers));
    entries_.clear();
  }

 private:
  std::vector<std::pair<caf::strong_actor_ptr, predict_answers>> entries_;
};

}  // namespace rml::messaging
