// token::parse_certificate on any bytes (what a token's CKA_VALUE can hold).
// Invariants: no crash, no leak (ASan/LSan), and a parsed certificate has an
// upper-case hex serial and ISO 8601 UTC times or none.
#include <cctype>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "token/objects.hpp"

namespace {
bool iso_time_or_empty(const std::string& t) {
  return t.empty() || (t.size() == 20 && t[4] == '-' && t[10] == 'T' && t.back() == 'Z');
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const token::Bytes der(data, data + size);
  const auto cert = token::parse_certificate(der);
  if (!cert) return 0;
  for (char c : cert->serial) {
    FUZZ_CHECK(c == '-' || std::isdigit(static_cast<unsigned char>(c)) != 0 ||
               (c >= 'A' && c <= 'F'));
  }
  FUZZ_CHECK(iso_time_or_empty(cert->not_before));
  FUZZ_CHECK(iso_time_or_empty(cert->not_after));
  return 0;
}
