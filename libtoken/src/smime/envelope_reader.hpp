// A one-pass reader for S/MIME encrypted messages. OpenSSL 3.0 parses a CMS
// message whole (the 100 MB of ciphertext with it) before it decrypts
// anything; this reader walks the BER as it is base64-decoded, sends the
// encrypted content to a scratch file and keeps the rest, so that CMS can
// decrypt the content as detached content, streaming.
#pragma once

#include <openssl/bio.h>

#include <string>

#include "token/attributes.hpp"

namespace token::smime {

struct SplitEnvelope {
  // The ContentInfo (EnvelopedData or AuthEnvelopedData) in DER, with the
  // encryptedContent left out (RFC 5652 section 6.1: then it is "supplied
  // by other means").
  Bytes der;
  bool authenticated = false;  // AuthEnvelopedData
  std::uint64_t ciphertext_bytes = 0;
};

// Reads an encrypted S/MIME message from `in`: the top-level header block
// (Content-Type application/pkcs7-mime, base64 or binary), then the CMS,
// writing the encrypted content's octets to `ciphertext`. Throws
// Error(Input) naming what is wrong: not MIME, not an encrypted message, BER
// it cannot follow, a structure cut short. Structures other than the
// ciphertext are limited to `limit` bytes.
SplitEnvelope split_envelope(BIO* in, BIO* ciphertext, std::size_t limit = std::size_t{4} << 20);

}  // namespace token::smime
