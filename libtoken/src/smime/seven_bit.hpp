// RFC 8551 section 3.1.2: "each MIME entity that is signed ... MUST be
// 7-bit": a relay that turns 8-bit text into quoted-printable on the way
// breaks the signature. sign() passes its input through here first: an
// 8-bit body of a single-part entity gets a transfer encoding (quoted-
// printable for text, base64 otherwise) before it is signed.
#pragma once

#include <openssl/bio.h>

#include <memory>
#include <string>

namespace token::smime {

struct SevenBit {
  // What to sign: the (possibly rewritten) header block, then the body.
  std::unique_ptr<BIO, void (*)(BIO*)> source{nullptr, nullptr};
  std::string encoded;     // "", "quoted-printable" or "base64": what was applied
  bool eight_bit = false;  // 8-bit bytes remain (a multipart entity, or a body
                           // that claims an encoding it does not have)
};

// Reads the entity's header block from `in` and looks at its body (a file
// is read twice; other input goes through an unlinked scratch file). `in`
// must outlive the result.
SevenBit make_seven_bit(BIO* in);

}  // namespace token::smime
