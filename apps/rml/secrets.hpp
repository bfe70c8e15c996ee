#pragma once
// The secrets of `rml run`'s HTTP endpoint: the control key and the inference token. They
// are read from files (a secret on the command line shows in `ps`), and a control key nobody
// gave is made from the operating system's randomness and written where only its owner can
// read it. This is the one place rml takes randomness that is not seeded: a key must not be
// reproducible (DESIGN.md contract 5 is about components, not credentials).

#include <string>

#include "compute/status.hpp"

namespace rml::app {

/// The secret in `path` (surrounding white space removed). Refused, naming the file, when it
/// cannot be read, is empty, is shorter than 16 characters or holds a line break inside.
result<std::string> read_secret_file(const std::string& path, const std::string& what);

/// A new random key (32 bytes from OpenSSL's RAND_bytes, as 64 hex digits), written to
/// `path` with mode 0600; the error names the file.
result<std::string> make_secret_file(const std::string& path);

}  // namespace rml::app
