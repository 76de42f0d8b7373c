#include "token/ossl.hpp"

#include <openssl/err.h>

namespace token::ossl {

std::string last_error() {
  unsigned long e = ERR_get_error();
  std::string s;
  while (e != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (s.empty()) s = buf;  // the earliest error is the root cause
    e = ERR_get_error();
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

}  // namespace token::ossl
