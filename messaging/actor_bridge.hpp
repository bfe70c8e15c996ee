#pragma once
// How code outside the actor system (a socket's thread) asks an actor something: a
// short-lived actor sends the request and calls back with the answer or the error, on an
// actor thread. The callbacks must hand their result back to the caller's thread
// themselves (the endpoints post into their own event loops).

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>

#include <caf/actor_registry.hpp>

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace rml::messaging {

/// The actor registered under `name`, looked up from outside the actor system. Replacing a
/// name in CAF 0.17's registry is an erase then a put (it keeps the first entry under a
/// name): a look-up between the two finds nothing while the actor runs, so an empty look-up
/// is tried again a few times before the caller is told there is none.
inline caf::actor find_named(caf::actor_system& system, caf::atom_value name) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    if (auto found = system.registry().get<caf::actor>(name)) return found;
    std::this_thread::yield();
  }
  return {};
}

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
