#include "messaging/actor_bridge.hpp"

#include <caf/all.hpp>

#include <unordered_map>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {
namespace {
struct bridge_state {
  /// Requests sent and not yet answered: ticket → (request id, the actor asked).
  std::unordered_map<std::uint64_t, std::pair<std::uint64_t, caf::actor_addr>> pending;
  caf::actor_addr monitored;
  static inline const char* name = "rml.predict_bridge";
};

ticketed_answer failure_of(std::uint64_t ticket, std::uint64_t request_id, caf::error failure) {
  ticketed_answer answer;
  answer.ticket = ticket;
  answer.request_id = request_id;
  answer.failure = std::move(failure);
  return answer;
}
}  // namespace

caf::actor spawn_predict_bridge(caf::actor_system& system, predict_listener* listener, caf::atom_value target) {
  return system.spawn([listener, target](caf::stateful_actor<bridge_state>* self) -> caf::behavior {
    // A serving actor that dies holding requests never answers them: fail them here, so
    // every ticket still gets exactly one answer and the endpoint's in-flight count is right.
    self->set_down_handler([self, listener](caf::down_msg& down) {
      auto& pending = self->state.pending;
      std::vector<ticketed_answer> failed;
      for (auto entry = pending.begin(); entry != pending.end();) {
        if (entry->second.second != down.source) {
          ++entry;
          continue;
        }
        failed.push_back(failure_of(entry->first, entry->second.first,
                                    make_error(errc::not_ready, "request " + std::to_string(entry->second.first) +
                                                                    ": serving stopped before answering")));
        entry = pending.erase(entry);
      }
      if (!failed.empty()) listener->answered(failed);
      if (self->state.monitored == down.source) self->state.monitored = nullptr;
    });
    return {
        [self, listener, target](predict_burst& burst) {
          auto serving = self->system().registry().get<caf::actor>(target);
          if (!serving) {
            std::vector<ticketed_answer> failed;
            for (auto& item : burst.requests) {
              failed.push_back(failure_of(item.ticket, item.request.request_id, make_error(errc::not_ready, "no serving actor running")));
            }
            return listener->answered(failed);
          }
          if (self->state.monitored != serving.address()) {
            self->monitor(serving);
            self->state.monitored = serving.address();
          }
          for (auto& item : burst.requests) self->state.pending.emplace(item.ticket, std::make_pair(item.request.request_id, serving.address()));
          self->send(serving, std::move(burst));
        },
        [self, listener](predict_answers& ready) {
          auto& answers = ready.answers;
          auto& pending = self->state.pending;
          // Answers whose ticket was already failed (serving went down first) are dropped.
          answers.erase(std::remove_if(answers.begin(), answers.end(), [&](const ticketed_answer& answer) { return pending.erase(answer.ticket) == 0; }),
                        answers.end());
          if (!answers.empty()) listener->answered(answers);
        },
    };
  });
}

}  // namespace rml::messaging
