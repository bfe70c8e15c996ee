#include "messaging/actor_bridge.hpp"

#include <caf/all.hpp>

#include "messaging/errors.hpp"
#include "messaging/messages.hpp"

namespace rml::messaging {

caf::actor spawn_predict_bridge(caf::actor_system& system, predict_listener* listener, caf::atom_value target) {
  return system.spawn([listener, target](caf::event_based_actor* self) -> caf::behavior {
    return {[self, listener, target](std::uint64_t ticket, predict_request& request) {
      const std::uint64_t id = request.request_id;
      auto serving = self->system().registry().get<caf::actor>(target);
      if (!serving) return listener->failed(ticket, id, make_error(errc::not_ready, "no serving actor running"));
      // No timeout of its own: serving answers every request by its deadline (the batching
      // queue refuses expired requests, batches are bounded by a timeout), and a request
      // timeout here would cost a timer in CAF's clock thread per request.
      self->request(serving, caf::infinite, std::move(request))
          .then([listener, ticket](predict_reply& reply) { listener->answered(ticket, reply); },
                [listener, ticket, id](caf::error& failure) { listener->failed(ticket, id, failure); });
    }};
  });
}

}  // namespace rml::messaging
