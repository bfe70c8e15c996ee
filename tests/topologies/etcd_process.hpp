#pragma once
// A real etcd for a test: Debian's etcd-server started on loopback ports the kernel picked,
// with its data in a fresh temporary directory, stopped (and the directory removed) when the
// object goes. Each instance is a new store: its revision starts at 1.

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_certificates.hpp"
#include "topologies/etcd_control_plane.hpp"

extern char** environ;

namespace rml::test {

/// A port on 127.0.0.1 that was free a moment ago (the kernel's pick).
inline int free_loopback_port() {
  const int socket_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (::bind(socket_fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(socket_fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ::close(socket_fd);
    throw std::runtime_error("cannot pick a free loopback port");
  }
  ::close(socket_fd);
  return ntohs(address.sin_port);
}

inline std::string etcd_binary() {
  for (const char* candidate : {"/usr/bin/etcd", "/usr/local/bin/etcd"}) {
    if (::access(candidate, X_OK) == 0) return candidate;
  }
  throw std::runtime_error("etcd is not installed (scripts/setup.sh installs Debian's etcd-server)");
}

/// Certificates made with the openssl command for a TLS etcd: a CA, etcd's certificate for
/// 127.0.0.1 signed by it, a client certificate signed by it, and a second CA with a client
/// certificate of its own (which etcd must refuse). EC keys: quick to make.
class etcd_process {
 public:
  /// With `tls`, etcd serves https:// only and requires client certificates from its CA.
  explicit etcd_process(const test_certificates* tls = nullptr) : tls_(tls) {
    char pattern[] = "/tmp/rml-etcd-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("cannot make a directory for etcd");
    directory_ = pattern;
    const int client_port = free_loopback_port(), peer_port = free_loopback_port();
    url_ = std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(client_port);
    const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port);
    const std::string binary = etcd_binary();
    std::vector<std::string> arguments{binary,
                                       "--name=rml-test",
                                       "--data-dir=" + directory_ + "/data",
                                       "--listen-client-urls=" + url_,
                                       "--advertise-client-urls=" + url_,
                                       "--listen-peer-urls=" + peer,
                                       "--initial-advertise-peer-urls=" + peer,
                                       "--initial-cluster=rml-test=" + peer,
                                       "--logger=zap",
                                       "--log-outputs=" + directory_ + "/etcd.log",
                                       "--log-level=warn"};
    if (tls) {
      for (std::string flag : {"--cert-file=" + tls->server_cert(), "--key-file=" + tls->server_key(), std::string("--client-cert-auth"),
                               "--trusted-ca-file=" + tls->ca()}) {
        arguments.push_back(flag);
      }
    }
    std::vector<char*> argv;
    for (auto& argument : arguments) argv.push_back(argument.data());
    argv.push_back(nullptr);
    if (::posix_spawn(&pid_, binary.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
      throw std::runtime_error("cannot start " + binary);
    }
    // Ready when a client can read the revision (etcd takes about a second to elect itself).
    control::etcd_options options = client_options();
    options.request_timeout = std::chrono::milliseconds(1000);
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < give_up) {
      if (control::etcd_control_plane::connect(options).ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    stop();
    throw std::runtime_error("etcd at " + url_ + " did not answer within 20 s (its log: " + directory_ + "/etcd.log)");
  }
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;
  ~etcd_process() {
    stop();
    std::error_code ignored;
    std::filesystem::remove_all(directory_, ignored);
  }

  const std::string& url() const { return url_; }

  /// A client's options: for a TLS etcd, with the CA and the client certificate.
  control::etcd_options client_options() const {
    control::etcd_options options;
    options.endpoints = {url_};
    if (tls_) {
      options.ca_file = tls_->ca();
      options.cert_file = tls_->client_cert();
      options.key_file = tls_->client_key();
    }
    return options;
  }

  std::unique_ptr<control::etcd_control_plane> client() const {
    auto options = client_options();
    auto plane = control::etcd_control_plane::connect(options);
    if (!plane) throw std::runtime_error(plane.error().message());
    return std::move(plane.value());
  }

 private:
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int ignored = 0;
    ::waitpid(pid_, &ignored, 0);
    pid_ = -1;
  }

  const test_certificates* tls_ = nullptr;
  std::string directory_, url_;
  pid_t pid_ = -1;
};

}  // namespace rml::test
