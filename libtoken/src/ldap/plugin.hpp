// The boundary between libtoken and tokenkit-ldap.so, the module that holds
// the LDAP client (OpenLDAP's libldap, and with it GnuTLS, Cyrus SASL,
// nettle, gmp...). libtoken loads it with dlopen() on the first directory
// lookup, so that a process that never looks anything up never maps those
// libraries (about 2 MB of every tokenkit process's memory before).
//
// Both sides are built from this tree by the same compiler, so the request
// and the reply are C++ objects; what crosses is one C function that never
// throws. kAbi and the sizes guard against a module from another build.
#pragma once

#include <cstddef>
#include <string>

#include "token/directory.hpp"

namespace token::directory::plugin {

constexpr int kAbi = 1;
constexpr const char* kSymbol = "tokenkit_directory_search_v1";
constexpr const char* kFileName = "tokenkit-ldap.so";

struct Request {
  int abi = kAbi;
  std::size_t config_size = sizeof(Config);
  std::size_t found_size = sizeof(Found);
  const Config* config = nullptr;
  const std::string* filter = nullptr;  // make_filter()'s, for the address looked up
  // The simple bind's password (read by the caller, wiped by it), or null.
  const char* password = nullptr;
  std::size_t password_size = 0;
};

struct Reply {
  Found found;
  int error_kind = 0;  // a token::ErrorKind when the search failed, else 0
  std::string error;   // the message, naming the directory
};

// Returns 0 with reply->found filled, or non-zero with reply->error_kind
// and reply->error set. Never throws.
using SearchFn = int (*)(const Request* request, Reply* reply) noexcept;

}  // namespace token::directory::plugin
