// The inbound S/MIME path of `tokenkit smime decrypt` up to the point where
// the token key is needed: MIME headers, base64, the CMS EnvelopedData or
// AuthEnvelopedData and its recipient infos (token::smime::inspect_encrypted,
// which decrypt() reads the message with), X25519 KeyAgreeRecipientInfos
// (RFC 8418) parsed and checked as decrypt() does before it derives.
// Invariants: a description, or Error(Input); never a crash, a leak or
// another error kind.
#include <openssl/bio.h>
#include <openssl/cms.h>

#include <cstdint>
#include <memory>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/smime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 18)) return 0;
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(data, static_cast<int>(size)),
                                               BIO_free);
  try {
    token::smime::EnvelopeInfo info = token::smime::inspect_encrypted(in.get());
    std::size_t agree = 0;
    for (int t : info.recipient_types) {
      FUZZ_CHECK(t >= CMS_RECIPINFO_NONE && t <= CMS_RECIPINFO_OTHER);
      agree += t == CMS_RECIPINFO_AGREE ? 1 : 0;
    }
    FUZZ_CHECK(info.x25519_recipients <= agree);
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
  }
  return 0;
}
