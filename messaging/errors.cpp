#include "messaging/errors.hpp"

#include <caf/atom.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include "messaging/type_ids.hpp"

namespace rml::messaging {

caf::atom_value error_category() { return caf::atom("rml"); }

caf::error make_error(errc code, std::string message) {
  return caf::error(static_cast<std::uint8_t>(code), error_category(),
                    caf::make_message(std::move(message)));
}

caf::error to_caf_error(const rml::error& failure) {
  return make_error(failure.code(), failure.message());
}

std::optional<errc> rml_code(const caf::error& failure) {
  if (!failure || failure.category() != error_category()) return std::nullopt;
  return static_cast<errc>(failure.code());
}

errc client_code(const caf::error& failure) {
  if (auto code = rml_code(failure)) return *code;
  if (failure == caf::sec::request_timeout) return errc::deadline_exceeded;
  return errc::not_ready;
}

std::string describe(const caf::error& failure) {
  if (rml_code(failure) && failure.context().match_elements<std::string>()) {
    return failure.context().get_as<std::string>(0);
  }
  return caf::to_string(failure);
}

void register_messaging(caf::actor_system_config& config) {
  config.add_message_types<caf::id_block::rml>();
  config.add_error_category(error_category(), [](std::uint8_t code, caf::atom_value,
                                                 const caf::message& context) {
    std::string text = std::string("rml: ") + to_string(static_cast<errc>(code));
    if (context.match_elements<std::string>()) text += ": " + context.get_as<std::string>(0);
    return text;
  });
}

}  // namespace rml::messaging
