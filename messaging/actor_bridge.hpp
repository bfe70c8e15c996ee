#pragma once
// How code outside the actor system (a socket's thread) asks an actor something: a
// short-lived actor sends the request and calls back with the answer or the error, on an
// actor thread. The callbacks must hand their result back to the caller's thread
// themselves (the endpoints post into their own event loops).

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <chrono>
#include <utility>
#include <vector>

namespace rml::messaging {

template <class Reply, class Request, class OnReply, class OnError>
void ask_from_outside(caf::actor_system& system, const caf::actor& target, std::chrono::microseconds timeout, Request request,
                      OnReply on_reply, OnError on_error) {
  system.spawn([target, timeout, request = std::move(request), on_reply = std::move(on_reply),
                on_error = std::move(on_error)](caf::event_based_actor* client) mutable {
    client->request(target, timeout, std::move(request))
        .then([on_reply](Reply& reply) mutable { on_reply(reply); }, [on_error](caf::error& failure) mutable { on_error(failure); });
  });
}

}  // namespace rml::messaging

namespace rml::messaging {

struct ticketed_answer;

/// Receives what a predict bridge's requests got; called on actor threads, once per burst of
/// answers that became ready together.
class predict_listener {
 public:
  virtual ~predict_listener() = default;
  virtual void answered(std::vector<ticketed_answer>& answers) = 0;
};

/// One long-lived actor through which an endpoint sends its predict requests in bursts — an
/// `anon_send(bridge, predict_burst)` from any thread, one per receive burst — to the actor
/// registered under `target` (looked up per burst, so a restarted one is found). Every
/// request's answer or error goes to `listener` with its ticket, exactly once, in bursts
/// as serving answers them (one batch's answers at a time). The bridge is the requests'
/// ledger: it watches whoever holds each (serving, then the lane serving says it passed the
/// request on to: messaging::burst_routed), and should that actor die holding requests,
/// they are failed here at once. It sets no timeout: serving answers every request by
/// its deadline, and the endpoints answer a deadline themselves should serving hang.
caf::actor spawn_predict_bridge(caf::actor_system& system, predict_listener* listener, caf::atom_value target);

}  // namespace rml::messaging
