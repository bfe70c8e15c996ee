#pragma once
// rml's error codes as caf::error, so that operating errors cross actor boundaries as
// values (STYLE.md): compute/ reports rml::error, actors carry caf::error of category "rml".

#include <caf/actor_system_config.hpp>
#include <caf/error.hpp>

#include <optional>
#include <string>

#include "compute/status.hpp"

namespace rml::messaging {

/// The category atom of rml's errors inside caf::error.
caf::atom_value error_category();

/// A caf::error of category "rml" carrying `code` and `message` (the input and what was wrong).
caf::error make_error(errc code, std::string message);
caf::error to_caf_error(const rml::error& failure);
/// The rml code of an error of category "rml"; nothing for other categories.
std::optional<errc> rml_code(const caf::error& failure);
/// What an error means to a client: its rml code, or for CAF's own errors the nearest one
/// (a request that timed out passed its deadline; a receiver that is gone is not ready).
errc client_code(const caf::error& failure);
/// The message an rml error carries, or CAF's rendering of any other error.
std::string describe(const caf::error& failure);

/// Registers rml's message types and error category with an actor system configuration.
void register_messaging(caf::actor_system_config& config);

}  // namespace rml::messaging
