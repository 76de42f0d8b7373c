// RFC 8551 section 3.1.2: "each MIME entity that is signed ... MUST be
// 7-bit": a relay that turns 8-bit text into quoted-printable on the way
// breaks the signature. sign() passes its input through here first: every
// 8-bit body of a leaf entity gets a transfer encoding (quoted-printable for
// text, base64 otherwise) before it is signed, inside multipart and
// message/rfc822 entities too (recursively, to a bounded depth), the MIME
// structure kept as it is.
#pragma once

#include <openssl/bio.h>

#include <memory>
#include <optional>
#include <string>

#include "crlf_bio.hpp"

namespace token::smime {

struct SevenBit {
  std::unique_ptr<MappedInput> mapped;  // the input file, when `source` reads it mapped
  // What to sign: the (possibly rewritten) header block, then the body.
  std::unique_ptr<BIO, void (*)(BIO*)> source{nullptr, nullptr};
  std::string encoded;     // "", "quoted-printable", "base64" or "quoted-printable and
                           // base64": what was applied
  bool unscanned = false;  // the body was not looked at (defer_scan)
  bool eight_bit = false;  // 8-bit bytes remain (in header fields, a preamble, a body
                           // that claims an encoding it does not have, past the depth)
  // When `source` is the header block then the mapped body as they are
  // (nothing rewritten): the header block, so that a caller can read the
  // body from `mapped` directly instead (sign's one pass, sign_stream.hpp).
  std::optional<std::string> header_block;
};

// Entities nested deeper than this are signed as they are.
constexpr int kMaxMimeDepth = 16;

// Reads the entity's header block from `in` and looks at its body (a file
// is read twice; other input goes through an unlinked scratch file). `in`
// must outlive the result. With `defer_scan` and a regular file, the body is
// not looked at: `unscanned` is set and the caller scans it as it reads it,
// and starts over without `defer_scan` if it finds an 8-bit byte.
SevenBit make_seven_bit(BIO* in, bool defer_scan = false);

}  // namespace token::smime
