// The fast path of sign's canonicalisation: mail that is CRLF already (as
// mail clients and our own 7-bit rewriter write it) needs no copy, only a
// look at each byte, done here together with the 8-bit check.
#include <cstring>

#include "crlf_bio.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace token::smime {

BlockScan scan_block(const char* p, std::size_t n) {
  BlockScan r;
  if (n == 0) return r;
  bool bad = p[0] == '\n' || p[n - 1] == '\r';
  unsigned high = 0;
  std::size_t i = 0;
#if defined(__SSE2__)
  // Byte i is a CR exactly when byte i + 1 is an LF: compare the CR mask of
  // 16 bytes with the LF mask of the 16 bytes one further on.
  const __m128i cr = _mm_set1_epi8('\r');
  const __m128i lf = _mm_set1_epi8('\n');
  __m128i any = _mm_setzero_si128();
  __m128i mismatch = _mm_setzero_si128();
  for (; i + 17 <= n; i += 16) {
    const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i + 1));
    any = _mm_or_si128(any, a);
    mismatch = _mm_or_si128(mismatch, _mm_xor_si128(_mm_cmpeq_epi8(a, cr), _mm_cmpeq_epi8(b, lf)));
  }
  high = static_cast<unsigned>(_mm_movemask_epi8(any));
  bad = bad || _mm_movemask_epi8(mismatch) != 0;
#endif
  for (; i < n; ++i) {
    high |= static_cast<unsigned char>(p[i]) & 0x80U;
    if (i + 1 < n) bad = bad || (p[i] == '\r') != (p[i + 1] == '\n');
  }
  r.eight_bit = high != 0;
  r.canonical = !bad;
  return r;
}

bool Canonicalizer::pass_through(const char* p, std::size_t n) {
  // feed() would write the block as it is: each line's text, then its CR LF
  // as CRLF, whatever the piece position (a CR at a piece end is dropped
  // and the LF after it writes CRLF again). A CR held from the block before
  // would be written first, so such a block is fed.
  if (held_cr_ != 0 || n == 0) return false;
  const auto* last_lf = static_cast<const char*>(memrchr(p, '\n', n));
  if (last_lf == nullptr) return false;
  // After the last LF comes text without CR or LF: feed() counts it into
  // the 1023-byte piece.
  piece_pos_ = static_cast<std::size_t>(p + n - 1 - last_lf) % kPiece;
  return true;
}

}  // namespace token::smime
