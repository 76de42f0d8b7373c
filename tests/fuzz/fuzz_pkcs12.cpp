// token::parse_pkcs12 on any bytes, with the password the seed files use.
// Invariants: it returns keys and certificates, or throws Error of a kind a
// PKCS#12 file can cause (bad input, wrong password, unreadable); never
// crashes, never leaks, never another kind.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/pkcs12.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 16)) return 0;  // real files are a few KiB; keep runs fast
  const std::string der(reinterpret_cast<const char*>(data), size);
  try {
    token::P12Contents c = token::parse_pkcs12(der, token::Secret("sekrit"), "fuzz.p12");
    FUZZ_CHECK(!c.keys.empty() || !c.certs.empty());
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input || e.kind() == token::ErrorKind::PasswordIncorrect);
  }
  return 0;
}
