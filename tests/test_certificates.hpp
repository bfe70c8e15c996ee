#pragma once
// Certificates for the TLS tests, made with the openssl command: a CA, a server certificate
// for 127.0.0.1 and a client certificate it signed, and an intruder's CA and certificate.

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace rml::test {

struct test_certificates {
  std::string directory;
  std::string ca() const { return directory + "/ca.crt"; }
  std::string server_cert() const { return directory + "/server.crt"; }
  std::string server_key() const { return directory + "/server.key"; }
  std::string client_cert() const { return directory + "/client.crt"; }
  std::string client_key() const { return directory + "/client.key"; }
  std::string other_ca() const { return directory + "/other-ca.crt"; }
  std::string other_cert() const { return directory + "/other.crt"; }
  std::string other_key() const { return directory + "/other.key"; }

  explicit test_certificates(const std::string& into) : directory(into) {
    const std::string d = directory;
    const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    const std::string script =
        "set -e; cd '" + d + "'; "
        "openssl req -x509" + key + " -keyout ca.key -out ca.crt -days 2 -subj /CN=rml-test-ca 2>/dev/null; "
        "openssl req -x509" + key + " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other-ca 2>/dev/null; "
        "openssl req" + key + " -keyout server.key -out server.csr -subj /CN=etcd -addext subjectAltName=IP:127.0.0.1 2>/dev/null; "
        "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -copy_extensions copy -out server.crt 2>/dev/null; "
        "openssl req" + key + " -keyout client.key -out client.csr -subj /CN=rml-node 2>/dev/null; "
        "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 -out client.crt 2>/dev/null; "
        "openssl req" + key + " -keyout other.key -out other.csr -subj /CN=intruder 2>/dev/null; "
        "openssl x509 -req -in other.csr -CA other-ca.crt -CAkey other-ca.key -CAcreateserial -days 2 -out other.crt 2>/dev/null";
    if (std::system(("bash -c \"" + script + "\"").c_str()) != 0) throw std::runtime_error("openssl could not make the test certificates");
  }
};

}  // namespace rml::test
