#pragma once
// The long-running commands (rml run --serve, rml node, rml cluster up) stop on SIGTERM or
// SIGINT: the handler only sets a flag, which their loops look at.

namespace rml::app {

/// From now on SIGTERM and SIGINT set the flag instead of ending the process; clears it.
void stop_on_signals();
/// Whether SIGTERM or SIGINT arrived since stop_on_signals().
bool stop_requested();

}  // namespace rml::app
