// Looking correspondents' certificates up in an LDAP directory, through
// OpenLDAP's libldap: ldap:// (optionally StartTLS) and ldaps://, anonymous
// or simple bind, every wait bounded, every size bounded.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "token/certcheck.hpp"
#include "token/pin.hpp"

namespace token::directory {

struct Config {
  std::string uri;   // ldap://host:port or ldaps://host:port
  std::string base;  // search base ("" lets the server choose)
  // %s is replaced by the address, escaped as RFC 4515 asks.
  std::string filter = "(mail=%s)";
  std::vector<std::string> attributes = {"userCertificate;binary", "userSMIMECertificate"};
  bool starttls = false;
  std::optional<std::string> ca_file;  // the directory's TLS CA (PEM)
  std::optional<std::string> bind_dn;  // simple bind when set, else anonymous
  PinSource password;                  // for the simple bind
  int network_timeout_ms = 5000;       // TCP connect, TLS handshake
  int timeout_ms = 10000;              // each operation (bind, StartTLS, the whole search)
  std::size_t max_entries = 50;        // entries read; the directory is asked for no more
  std::size_t max_message_bytes =
      std::size_t{1024} * 1024;  // one LDAP message (an entry) from the server
  std::size_t max_total_bytes =
      std::size_t{4} * 1024 * 1024;  // certificate bytes kept from one search
  certs::ValueLimits value_limits;
};

struct Found {
  std::vector<std::string> values;  // attribute values, in the order they came
  std::size_t entries = 0;          // entries read
  std::vector<std::string> notes;   // limits hit, values refused unread
};

// Searches the directory for `email`. Throws Error(Directory) naming the
// directory when it cannot be reached, refuses, or does not answer in time;
// Error(Usage) for a malformed URI; Error(Io) for an unreadable CA file.
Found search(const Config& config, const std::string& email);

// The filter with %s replaced by the escaped address.
std::string make_filter(const std::string& pattern, const std::string& email);

}  // namespace token::directory
