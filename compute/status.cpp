#include "compute/status.hpp"

namespace rml {

const char* to_string(errc code) {
  switch (code) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::shape_mismatch:
      return "shape_mismatch";
    case errc::io_error:
      return "io_error";
    case errc::truncated:
      return "truncated";
    case errc::corrupted:
      return "corrupted";
    case errc::foreign_format:
      return "foreign_format";
    case errc::unsupported_version:
      return "unsupported_version";
    case errc::parse_error:
      return "parse_error";
    case errc::restart_intensity_exceeded:
      return "restart_intensity_exceeded";
    case errc::overloaded:
      return "overloaded";
    case errc::deadline_exceeded:
      return "deadline_exceeded";
    case errc::not_ready:
      return "not_ready";
    case errc::not_found:
      return "not_found";
    case errc::unauthorized:
      return "unauthorized";
    case errc::non_finite:
      return "non_finite";
    case errc::device_error:
      return "device_error";
  }
  return "unknown";
}

}  // namespace rml
