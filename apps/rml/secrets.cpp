#include "apps/rml/secrets.hpp"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace rml::app {

result<std::string> read_secret_file(const std::string& path, const std::string& what) {
  std::ifstream in(path);
  if (!in) return error(errc::io_error, what + " file " + path + ": cannot open: " + std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  const auto first = secret.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return error(errc::invalid_argument, what + " file " + path + " is empty");
  secret = secret.substr(first, secret.find_last_not_of(" \t\r\n") - first + 1);
  if (secret.find_first_of("\r\n") != std::string::npos) {
    return error(errc::invalid_argument, what + " file " + path + " holds more than one line");
  }
  if (secret.size() < 16) {
    return error(errc::invalid_argument, what + " file " + path + " holds " + std::to_string(secret.size()) +
                                             " characters, at least 16 are needed");
  }
  return secret;
}

result<std::string> make_secret_file(const std::string& path) {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return error(errc::io_error, "no randomness for a key (OpenSSL RAND_bytes failed)");
  static constexpr char digits[] = "0123456789abcdef";
  std::string key;
  for (unsigned char byte : bytes) key += {digits[byte >> 4], digits[byte & 15]};
  ::unlink(path.c_str());  // a file someone else made could have wider permissions
  const int file = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (file < 0) return error(errc::io_error, path + ": cannot create: " + std::strerror(errno));
  const std::string line = key + "\n";
  const bool written = ::write(file, line.data(), line.size()) == ssize_t(line.size());
  ::close(file);
  if (!written) return error(errc::io_error, path + ": cannot write");
  return key;
}

}  // namespace rml::app
