// Base64 (RFC 4648 section 4, in RFC 2045 section 6.8 lines) for the S/MIME
// paths, where every byte of a 100 MB message passes through it. OpenSSL's
// EVP_EncodeBlock and EVP_DecodeBlock look every character up through a
// checked function call; Debian has no faster codec (libb64 works a
// character at a time), so this one is ours: table-driven, a quantum (three
// bytes, four characters) per step, with the checks kept out of the inner
// loops.
#pragma once

#include <cstddef>

namespace token::smime::base64 {

// Characters for `n` bytes, padding included: 4 * ceil(n / 3).
constexpr std::size_t encoded_size(std::size_t n) { return (n + 2) / 3 * 4; }

// Encodes `n` bytes (any n) to `encoded_size(n)` characters at `out`, with
// '=' padding, as EVP_EncodeBlock does (but writes no NUL). Returns the
// number of characters written.
std::size_t encode(const unsigned char* in, std::size_t n, char* out);

// Encodes `lines * line_bytes` bytes as that many lines of
// encoded_size(line_bytes) characters, each followed by `eol` (1 or 2
// characters, "\n" or "\r\n"). `line_bytes` must be a multiple of 3 (57 for
// RFC 2045's 76-character lines). Returns the number of characters written:
// lines * (encoded_size(line_bytes) + eol_len).
std::size_t encode_lines(const unsigned char* in, std::size_t lines, std::size_t line_bytes,
                         const char* eol, std::size_t eol_len, char* out);

// A streaming decoder for the base64 body of a MIME entity, fed in pieces
// of any size; the pieces' borders change nothing. What it accepts is what
// tokenkit's decoder always accepted (gather + EVP_DecodeBlock, before this
// codec):
//  - the alphabet A-Z a-z 0-9 + / ; line breaks are LF, and a line's
//    trailing blanks (CR, space, tab) are dropped, so CRLF lines, LF lines
//    and lines of any length (quantums may span lines) all decode;
//  - a blank anywhere else (before a character on the same line), or any
//    other character, is an error;
//  - the first '=' ends the data: the characters before it, in the last
//    quantum, are completed with '=' (one character gives one byte, two one
//    byte, three two bytes), and whatever follows the '=' is not read;
//  - without '=', the input must end on a whole quantum.
class Decoder {
 public:
  enum class Status { More, Ended, Bad };

  // The room feed() needs for `n` characters: the most bytes it writes,
  // and a little scratch.
  static constexpr std::size_t max_decoded(std::size_t n) { return (n / 4 + 2) * 3; }

  // Decodes the next `n` characters, writing bytes to `out` (room for
  // max_decoded(n)); returns how many it wrote. After Ended or Bad, it
  // writes nothing more. On Bad, the bytes written are the whole quantums
  // before the fault.
  std::size_t feed(const char* p, std::size_t n, unsigned char* out);
  // The end of the input: Bad if a quantum was left incomplete (no '='),
  // else Ended.
  Status finish();
  Status status() const { return status_; }

 private:
  std::size_t slow(const char*& p, const char* end, unsigned char* out);

  Status status_ = Status::More;
  unsigned char carry_[4] = {};  // characters of a quantum begun, as 6-bit values
  std::size_t carried_ = 0;
  bool blank_ = false;  // blanks seen on this line: only more blanks or LF may follow
};

}  // namespace token::smime::base64
