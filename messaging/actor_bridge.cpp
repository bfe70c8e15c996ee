#include "messaging/actor_bridge.hpp"

#include <caf/all.hpp>

#include <unordered_map>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging {
namespace {
struct bridge_state {
  /// Requests sent and not yet answered: ticket → (request id, the actor asked).
  std::unordered_map<std::uint64_t, std::pair<std::uint64_t, caf::actor_addr>> pending;
  caf::actor_addr monitored;
  static inline const char* name = "rml.predict_bridge";
};
}  // namespace

caf::actor spawn_predict_bridge(caf::actor_system& system, predict_listener* listener, caf::atom_value target) {
  return system.spawn([listener, target](caf::stateful_actor<bridge_state>* self) -> caf::behavior {
    // A serving actor that dies holding requests never answers them: fail them here, so
    // every ticket still gets exactly one answer and the endpoint's in-flight count is right.
    self->set_down_handler([self, listener](caf::down_msg& down) {
      auto& pending = self->state.pending;
      for (auto entry = pending.begin(); entry != pending.end();) {
        if (entry->second.second != down.source) {
          ++entry;
          continue;
        }
        listener->failed(entry->first, entry->second.first,
                         make_error(errc::not_ready, "request " + std::to_string(entry->second.first) + ": serving stopped before answering"));
        entry = pending.erase(entry);
      }
      if (self->state.monitored == down.source) self->state.monitored = nullptr;
    });
    return {[self, listener, target](std::uint64_t ticket, predict_request& request) {
      const std::uint64_t id = request.request_id;
      auto serving = self->system().registry().get<caf::actor>(target);
      if (!serving) return listener->failed(ticket, id, make_error(errc::not_ready, "no serving actor running"));
      if (self->state.monitored != serving.address()) {
        self->monitor(serving);
        self->state.monitored = serving.address();
      }
      self->state.pending.emplace(ticket, std::make_pair(id, serving.address()));
      auto settle = [self, ticket]() {
        auto& pending = self->state.pending;
        auto found = pending.find(ticket);
        if (found == pending.end()) return false;  // already failed when serving went down
        pending.erase(found);
        return true;
      };
      // No timeout of its own: serving answers every request by its deadline (the batching
      // queue refuses expired requests, batches are bounded by a timeout), the endpoints
      // answer a deadline themselves should serving hang, and a request timeout here would
      // cost a timer in CAF's clock thread per request.
      self->request(serving, caf::infinite, std::move(request))
          .then(
              [listener, ticket, settle](predict_reply& reply) {
                if (settle()) listener->answered(ticket, reply);
              },
              [listener, ticket, id, settle](caf::error& failure) {
                if (settle()) listener->failed(ticket, id, failure);
              });
    }};
  });
}

}  // namespace rml::messaging
