#include "messaging/actor_bridge.hpp"

#include <caf/all.hpp>

#include <algorithm>
#include <unordered_map>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"
#include "messaging/type_ids.hpp"

namespace rml::messaging {
namespace {
struct bridge_state {
  /// Requests sent and not yet answered: ticket → (request id, the actor holding it: serving
  /// until it says which lane it passed the request on to).
  std::unordered_map<std::uint64_t, std::pair<std::uint64_t, caf::actor_addr>> pending;
  /// The holders watched (serving, its lanes): few.
  std::vector<caf::actor_addr> monitored;
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
                                                                    ": the serving actor holding it stopped before answering")));
        entry = pending.erase(entry);
      }
      if (!failed.empty()) listener->answered(failed);
      auto& monitored = self->state.monitored;
      monitored.erase(std::remove(monitored.begin(), monitored.end(), down.source), monitored.end());
    });
    auto watch = [self](const caf::actor& holder) {
      auto& monitored = self->state.monitored;
      if (std::find(monitored.begin(), monitored.end(), holder.address()) != monitored.end()) return;
      self->monitor(holder);  // one already down is reported at once
      monitored.push_back(holder.address());
    };
    return {
        [self, listener, target, watch](predict_burst& burst) {
          auto serving = self->system().registry().get<caf::actor>(target);
          if (!serving) {
            std::vector<ticketed_answer> failed;
            for (auto& item : burst.requests) {
              failed.push_back(failure_of(item.ticket, item.request.request_id, make_error(errc::not_ready, "no serving actor running")));
            }
            return listener->answered(failed);
          }
          watch(serving);
          for (auto& item : burst.requests) self->state.pending.emplace(item.ticket, std::make_pair(item.request.request_id, serving.address()));
          self->send(serving, std::move(burst));
        },
        [self, watch](burst_routed& routed) {
          // Answers may have come first: only requests still pending move to their holder.
          const auto holder = routed.holder.address();
          bool any = false;
          for (auto ticket : routed.tickets) {
            auto found = self->state.pending.find(ticket);
            if (found == self->state.pending.end()) continue;
            found->second.second = holder;
            any = true;
          }
          if (any) watch(routed.holder);
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
