// Filter BIOs and copy loops for S/MIME output. They sit on every byte of
// a 100 MB message, so they work on large blocks: one memchr per line, one
// BIO call per block, never one per line or per byte.
#pragma once

#include <openssl/bio.h>
#include <openssl/cms.h>

#include <cstddef>
#include <string>
#include <string_view>

namespace token::smime {

// A new filter BIO that turns every bare LF into CRLF; push it on the
// output (BIO_push(filter, out)).
BIO* new_crlf_filter();

// RFC 8551 section 3.1.1 canonical form, exactly as OpenSSL's
// SMIME_crlf_copy() makes it (so that `openssl cms -verify`, which
// canonicalises again, sees the same bytes): every line ends in CRLF, the
// CRs before a line's LF are dropped, and so are CRs at the end of the
// input and at the end of each 1023-byte piece of a longer line (where
// OpenSSL's 1024-byte line buffer splits it). Other CRs are content.
class Canonicalizer {
 public:
  // Appends the canonical form of `n` more bytes to `out`.
  void feed(const char* p, std::size_t n, std::string& out);
  // The end of the input: CRs held back are dropped.
  void finish() { held_cr_ = 0; }

 private:
  static constexpr std::size_t kPiece = 1023;
  std::size_t piece_pos_ = 0;  // bytes of the current piece seen so far
  std::size_t held_cr_ = 0;    // CRs seen but not yet written
};

// Reads `in` to its end and writes it to `out` in large blocks, in the
// canonical form above unless `binary`. Throws Error(Io) when `out` fails.
void copy_canonical(BIO* in, BIO* out, bool binary);

// Writes all of `s` to `out`; throws Error(Io) when it cannot.
void write_all(BIO* out, std::string_view s);

// A new write-only filter BIO that base64-encodes what is written through
// it (RFC 2045 section 6.8) in 64-character lines ended by CRLF, encoding
// large blocks at a time (EVP_EncodeBlock). BIO_flush() writes the last,
// short line and flushes the BIO below; push it on the output.
BIO* new_base64_filter();

// A new read-only filter BIO that decodes the base64 read from the BIO
// below it (RFC 2045 section 6.8): line ends and blanks are skipped, lines
// are decoded in large blocks (EVP_DecodeBlock), and decoding ends at the
// padding or the end of the input. A character outside the alphabet makes
// BIO_read fail, and the BIO's BIO_CTRL_EOF answer is then -1.
BIO* new_base64_decoder();

// Pops and frees the filters of `chain` above `bottom` (CMS's digest or
// cipher BIOs over our output); `bottom` stays.
void free_filters(BIO* chain, BIO* bottom);

// Writes `cms` as an application/pkcs7-mime entity (RFC 8551 section 3.2)
// of `smime_type` to `out`, in base64, with the content read from `content`
// streamed into it (canonicalised unless `binary`). Returns false when
// OpenSSL fails (its error queue says why); throws Error(Io).
bool write_pkcs7_mime(BIO* out, CMS_ContentInfo* cms, const char* smime_type, BIO* content,
                      bool binary);

}  // namespace token::smime
