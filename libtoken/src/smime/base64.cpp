#include "base64.hpp"

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace token::smime::base64 {

namespace {

// RFC 4648 section 4, table 1.
constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Twelve bits to their two characters: one lookup and one 2-byte store per
// half quantum.
constexpr std::array<std::array<char, 2>, 4096> make_pairs() {
  std::array<std::array<char, 2>, 4096> t{};
  for (std::size_t i = 0; i < t.size(); ++i) {
    t[i][0] = kAlphabet[i >> 6];
    t[i][1] = kAlphabet[i & 63];
  }
  return t;
}
constexpr auto kPairs = make_pairs();

// A character to its six bits, already shifted to its place in the
// quantum's 24 bits, or kBad for a character outside the alphabet: OR-ing
// the four lookups of a quantum gives its bits and, in one test, whether any
// character was bad.
constexpr std::uint32_t kBad = 0x80000000U;
constexpr std::array<std::uint32_t, 256> make_decode(int shift) {
  std::array<std::uint32_t, 256> t{};
  for (auto& v : t) v = kBad;
  for (std::uint32_t i = 0; i < 64; ++i) {
    t[static_cast<unsigned char>(kAlphabet[i])] = i << shift;
  }
  return t;
}
constexpr auto kD0 = make_decode(18);
constexpr auto kD1 = make_decode(12);
constexpr auto kD2 = make_decode(6);
constexpr auto kD3 = make_decode(0);

inline unsigned u(char c) { return static_cast<unsigned char>(c); }

// `groups` whole quantums of `in` to 4 * groups characters at `out`.
inline char* encode_groups(const unsigned char* in, std::size_t groups, char* out) {
  for (std::size_t g = 0; g < groups; ++g, in += 3, out += 4) {
    const std::uint32_t v = (std::uint32_t{in[0]} << 16) | (std::uint32_t{in[1]} << 8) | in[2];
    std::memcpy(out, kPairs[v >> 12].data(), 2);
    std::memcpy(out + 2, kPairs[v & 0xfff].data(), 2);
  }
  return out;
}

inline void put3(unsigned char* o, std::uint32_t v) {
  o[0] = static_cast<unsigned char>(v >> 16);
  o[1] = static_cast<unsigned char>(v >> 8);
  o[2] = static_cast<unsigned char>(v);
}

// The top six bytes of `v`, most significant first, and two bytes of
// scratch after them.
inline void put6(unsigned char* o, std::uint64_t v) {
  if constexpr (std::endian::native == std::endian::little) v = __builtin_bswap64(v);
  std::memcpy(o, &v, 8);
}

}  // namespace

std::size_t encode(const unsigned char* in, std::size_t n, char* out) {
  char* o = encode_groups(in, n / 3, out);
  in += n / 3 * 3;
  const std::size_t rest = n % 3;
  if (rest != 0) {
    // RFC 4648 section 4: the last quantum's missing bits are zero, and '='
    // stands for each missing character.
    const std::uint32_t v =
        (std::uint32_t{in[0]} << 16) | (rest == 2 ? std::uint32_t{in[1]} << 8 : 0);
    o[0] = kAlphabet[v >> 18];
    o[1] = kAlphabet[(v >> 12) & 63];
    o[2] = rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    o[3] = '=';
    o += 4;
  }
  return static_cast<std::size_t>(o - out);
}

std::size_t encode_lines(const unsigned char* in, std::size_t lines, std::size_t line_bytes,
                         const char* eol, std::size_t eol_len, char* out) {
  char* o = out;
  const std::size_t groups = line_bytes / 3;
  for (std::size_t i = 0; i < lines; ++i, in += line_bytes) {
    o = encode_groups(in, groups, o);
    std::memcpy(o, eol, eol_len);
    o += eol_len;
  }
  return static_cast<std::size_t>(o - out);
}

std::size_t Decoder::feed(const char* p, std::size_t n, unsigned char* out) {
  const char* end = p + n;
  unsigned char* o = out;
  while (p < end && status_ == Status::More) {
    if (carried_ == 0 && !blank_) {
      // Whole quantums straight from the input, up to the first character
      // that is not in the alphabet (a line end, most often): two at a
      // time, their six bytes in one 8-byte store (feed()'s output has the
      // room: max_decoded() counts two quantums more than it writes),
      // then one.
      while (end - p >= 8) {
        const std::uint32_t a = kD0[u(p[0])] | kD1[u(p[1])] | kD2[u(p[2])] | kD3[u(p[3])];
        const std::uint32_t b = kD0[u(p[4])] | kD1[u(p[5])] | kD2[u(p[6])] | kD3[u(p[7])];
        if (((a | b) & kBad) != 0) break;
        put6(o, (std::uint64_t{a} << 40) | (std::uint64_t{b} << 16));
        o += 6;
        p += 8;
      }
      while (end - p >= 4) {
        const std::uint32_t v = kD0[u(p[0])] | kD1[u(p[1])] | kD2[u(p[2])] | kD3[u(p[3])];
        if ((v & kBad) != 0) break;
        put3(o, v);
        o += 3;
        p += 4;
      }
      if (p == end) break;
    }
    o += slow(p, end, o);
  }
  return static_cast<std::size_t>(o - out);
}

// One character the quantum loop did not take, or a few: line ends,
// blanks, quantums across lines, the padding, faults.
std::size_t Decoder::slow(const char*& p, const char* end, unsigned char* out) {
  std::size_t written = 0;
  while (p < end && status_ == Status::More) {
    const char c = *p++;
    if (c == '\n') {
      blank_ = false;
    } else if (c == '\r' || c == ' ' || c == '\t') {
      blank_ = true;  // dropped if the line ends before anything else
    } else if (c == '=' && !blank_) {
      // RFC 4648 section 3.2: '=' fills the last quantum. As before, one
      // character before it gives one byte too, and the bits past the
      // bytes are not checked.
      std::uint32_t v = 0;
      for (std::size_t i = 0; i < carried_; ++i) v |= std::uint32_t{carry_[i]} << (18 - 6 * i);
      const std::size_t k = carried_ == 3 ? 2 : carried_ == 0 ? 0 : 1;
      unsigned char q[3];
      put3(q, v);
      std::memcpy(out + written, q, k);
      written += k;
      carried_ = 0;
      status_ = Status::Ended;
    } else if (const std::uint32_t v = kD3[u(c)]; blank_ || (v & kBad) != 0) {
      status_ = Status::Bad;  // a blank inside the line, or outside the alphabet
    } else {
      carry_[carried_++] = static_cast<unsigned char>(v);
      if (carried_ == 4) {
        put3(out + written, (std::uint32_t{carry_[0]} << 18) | (std::uint32_t{carry_[1]} << 12) |
                                (std::uint32_t{carry_[2]} << 6) | carry_[3]);
        written += 3;
        carried_ = 0;
      }
    }
    if (carried_ == 0 && !blank_) break;  // back to whole quantums
  }
  return written;
}

Decoder::Status Decoder::finish() {
  if (status_ == Status::More) status_ = carried_ != 0 ? Status::Bad : Status::Ended;
  return status_;
}

}  // namespace token::smime::base64
