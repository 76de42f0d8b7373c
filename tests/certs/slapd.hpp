// A throwaway OpenLDAP server for tests: its own slapd.conf and database in
// a temporary directory, data loaded with slapadd, listening on 127.0.0.1
// on free ports (ldap:// with StartTLS, and ldaps://), stopped (by its
// pid) when the object goes. Also a "silent" server: a TCP port that
// accepts connections and never answers.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace tokenkit::test {

struct SlapdTls {
  std::string ca_pem, cert_pem, key_pem;  // the server's certificate for 127.0.0.1
};

class Slapd {
 public:
  // `ldif` holds the entries under dc=example,dc=org (the base entry is
  // added here). Root DN cn=admin,dc=example,dc=org, password `root_password`.
  Slapd(const std::string& dir, const std::string& ldif, const SlapdTls& tls);
  ~Slapd();
  Slapd(const Slapd&) = delete;
  Slapd& operator=(const Slapd&) = delete;
  std::string ldap_uri() const { return "ldap://127.0.0.1:" + std::to_string(port_); }
  std::string ldaps_uri() const { return "ldaps://127.0.0.1:" + std::to_string(tls_port_); }
  static constexpr const char* kBase = "dc=example,dc=org";
  static constexpr const char* kRootDn = "cn=admin,dc=example,dc=org";
  static constexpr const char* kRootPassword = "directory-secret";

 private:
  int pid_ = -1;
  int port_ = 0, tls_port_ = 0;
};

class SilentServer {
 public:
  SilentServer();
  ~SilentServer();
  SilentServer(const SilentServer&) = delete;
  SilentServer& operator=(const SilentServer&) = delete;
  int port() const { return port_; }

 private:
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::vector<int> held_;
  std::thread thread_;
};

// A port nothing listens on (bound, then closed).
int free_port();

// An LDIF line "attr:: BASE64" of a file's bytes.
std::string ldif_binary(const std::string& attr, const std::string& file);

}  // namespace tokenkit::test
