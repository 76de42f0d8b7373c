// tokenkit's base64 codec (libtoken/src/smime/base64.hpp), which every byte
// of an S/MIME message passes through. Invariants: the decoder's verdict and
// bytes equal the reference's (the decoder tokenkit had, over OpenSSL's
// EVP_DecodeBlock, tests/support/base64_reference.hpp) whatever the pieces
// it is fed in; the encoder writes what EVP_EncodeBlock writes; encoded
// lines decode back to the input.
#include <openssl/evp.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "base64_reference.hpp"
#include "fuzz_check.hpp"
#include "smime/base64.hpp"

namespace b64 = token::smime::base64;

namespace {

// Decodes `text` in pieces of `piece` characters; false for Bad.
bool decode(std::string_view text, std::size_t piece, std::string& out) {
  b64::Decoder d;
  std::vector<unsigned char> buf(b64::Decoder::max_decoded(piece));
  for (std::size_t at = 0; at < text.size(); at += piece) {
    const std::size_t k = std::min(piece, text.size() - at);
    const std::size_t w = d.feed(text.data() + at, k, buf.data());
    FUZZ_CHECK(w <= b64::Decoder::max_decoded(k));
    out.append(reinterpret_cast<const char*>(buf.data()), w);
  }
  return d.finish() != b64::Decoder::Status::Bad;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0 || size > (1u << 16)) return 0;
  // The first byte: the size of the pieces the text is fed in.
  const std::size_t piece = 1 + data[0] % 97;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);

  // The input as base64 text: the same verdict and bytes as the reference.
  const auto want = token::smime::testing::reference_decode(text);
  std::string whole, pieces;
  const bool ok_whole = decode(text, text.empty() ? 1 : text.size(), whole);
  const bool ok_pieces = decode(text, piece, pieces);
  FUZZ_CHECK(ok_whole == want.has_value());
  FUZZ_CHECK(ok_pieces == want.has_value());
  if (want) {
    FUZZ_CHECK(whole == *want);
    FUZZ_CHECK(pieces == *want);
  }

  // The input as bytes: encoded as EVP_EncodeBlock does, in 76-character
  // CRLF lines, and back.
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  std::string enc(b64::encoded_size(text.size()), '\0');
  FUZZ_CHECK(b64::encode(bytes, text.size(), enc.data()) == enc.size());
  std::string evp(enc.size() + 1, '\0');
  const int k = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(evp.data()), bytes,
                                static_cast<int>(text.size()));
  FUZZ_CHECK(k >= 0 && static_cast<std::size_t>(k) == enc.size());
  FUZZ_CHECK(std::memcmp(evp.data(), enc.data(), enc.size()) == 0);
  const std::size_t lines = text.size() / 57;
  std::string mime(lines * 78 + b64::encoded_size(text.size() % 57) + 2, '\0');
  std::size_t w = b64::encode_lines(bytes, lines, 57, "\r\n", 2, mime.data());
  w += b64::encode(bytes + lines * 57, text.size() % 57, mime.data() + w);
  mime.replace(w, 2, "\r\n");
  std::string back;
  FUZZ_CHECK(decode(mime, piece, back));
  FUZZ_CHECK(back == text);
  return 0;
}
