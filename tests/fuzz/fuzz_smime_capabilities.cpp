// token::smime::announced_ciphers: a correspondent's SMIMECapabilities (from
// a signed message's attribute or a certificate's extension), read to pick
// the content cipher. Invariants: no crash or leak; unreadable input (and
// input over the size limit) announces nothing; reading is deterministic.
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "token/smime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view der(reinterpret_cast<const char*>(data), size);
  const auto c = token::smime::announced_ciphers(der);
  if (!c.readable || size > token::smime::kMaxCapabilitiesBytes) {
    FUZZ_CHECK(!c.readable && !c.aes256_gcm && !c.aes128_gcm && !c.aes256_cbc && !c.aes128_cbc);
  }
  const auto again = token::smime::announced_ciphers(der);
  FUZZ_CHECK(again.readable == c.readable && again.aes256_gcm == c.aes256_gcm &&
             again.aes128_gcm == c.aes128_gcm && again.aes256_cbc == c.aes256_cbc &&
             again.aes128_cbc == c.aes128_cbc);
  return 0;
}
