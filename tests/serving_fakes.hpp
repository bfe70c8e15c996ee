#pragma once
// For fake serving actors written one request at a time: the endpoints send serving bursts
// of requests (messaging/messages.hpp predict_burst) and expect answers back in
// predict_answers. This handler asks each request of a burst of the fake itself and sends
// its answer (or error) back alone, so a fake keeps its per-request logic.

#include <caf/event_based_actor.hpp>

#include "messaging/answer_outbox.hpp"
#include "messaging/messages.hpp"

namespace rml::test {

inline auto answer_bursts_one_by_one(caf::event_based_actor* self) {
  return [self](messaging::predict_burst& burst) {
    auto asker = self->current_sender();
    for (auto& item : burst.requests) {
      const std::uint64_t ticket = item.ticket, id = item.request.request_id;
      auto send_back = [self, asker, ticket, id](messaging::predict_reply* reply, caf::error failure) {
        messaging::answer_outbox answer;
        answer.add(asker, ticket, id, reply, std::move(failure));
        answer.flush(self);
      };
      self->request(caf::actor_cast<caf::actor>(self), caf::infinite, std::move(item.request))
          .then([send_back](messaging::predict_reply& reply) { send_back(&reply, {}); },
                [send_back](caf::error& failure) { send_back(nullptr, std::move(failure)); });
    }
  };
}

}  // namespace rml::test
