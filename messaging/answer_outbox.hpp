#pragma once
// Answers to burst senders (predict_burst), collected while an actor handles one message and
// sent at its end as one predict_answers per sender: the router and every lane use it.

#include <caf/actor_cast.hpp>
#include <caf/send.hpp>
#include <caf/typed_response_promise.hpp>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "messaging/messages.hpp"

namespace rml::messaging {

/// Who hears a request's answer: the actor that asked for it alone (a promise), or the
/// sender of a burst (by its ticket, in one predict_answers with the others ready then).
struct answer_target {
  std::optional<caf::typed_response_promise<predict_reply>> promise;
  caf::strong_actor_ptr reply_to;
  std::uint64_t ticket = 0;
};

class answer_outbox {
 public:
  /// Answers `target` with `reply`, or with `failure` when `reply` is null: at once to a
  /// promise, or into the burst of answers for its asker.
  void answer(answer_target& target, std::uint64_t request_id, predict_reply* reply, caf::error failure) {
    if (target.promise) {
      if (reply) target.promise->deliver(std::move(*reply));
      else target.promise->deliver(std::move(failure));
      return;
    }
    add(target.reply_to, target.ticket, request_id, reply, std::move(failure));
  }

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
