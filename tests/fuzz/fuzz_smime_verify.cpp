// The inbound S/MIME path of `tokenkit smime verify` on any bytes: the
// top-level header block (read ahead for From), OpenSSL's MIME reader and
// multipart/signed splitter behind our prefix filter, base64, the CMS
// SignedData, and the Ed25519 signed-attribute check. No trust anchors: a
// message can at best reach the chain check.
// Invariants: a verdict (never "ok" without a signer) or Error(Input); never
// a crash, a leak or another error kind.
#include <openssl/bio.h>

#include <cstdint>
#include <memory>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/smime.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 18)) return 0;  // seeds are a few KiB; keep runs fast
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(data, static_cast<int>(size)),
                                               BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  token::smime::VerifyOptions o;
  o.system_cas = false;
  try {
    token::smime::VerifyResult r = token::smime::verify(in.get(), out.get(), o);
    // Nothing is trusted here, so a message that passed the signature check
    // must fail at the chain, having named its signer.
    FUZZ_CHECK(!r.ok());
    FUZZ_CHECK(r.failed == token::smime::Check::Signature || !r.signers.empty());
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
  }
  return 0;
}
