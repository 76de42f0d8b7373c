// The 7-bit rewriter sign() runs over the entity it signs
// (libtoken/src/smime/seven_bit.cpp): header blocks, multipart delimiters,
// nested multipart and message/rfc822 entities, quoted-printable and base64
// encoding of 8-bit leaf bodies.
// Invariants: only Error(Input) is thrown (a part's header block over its
// limit); 7-bit input comes back byte for byte; when the result says no
// 8-bit bytes remain, none do; nothing is applied to 7-bit input.
#include <openssl/bio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.hpp"
#include "smime/seven_bit.hpp"
#include "token/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 16)) return 0;
  const std::string all(reinterpret_cast<const char*>(data), size);
  bool eight_in = false;
  for (unsigned char c : all) eight_in = eight_in || (c & 0x80) != 0;
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(data, static_cast<int>(size)),
                                               BIO_free);
  try {
    token::smime::SevenBit r = token::smime::make_seven_bit(in.get());
    std::string out;
    char buf[4096];
    int n;
    while ((n = BIO_read(r.source.get(), buf, sizeof buf)) > 0) {
      out.append(buf, static_cast<std::size_t>(n));
    }
    bool eight_out = false;
    for (unsigned char c : out) eight_out = eight_out || (c & 0x80) != 0;
    if (!r.eight_bit) FUZZ_CHECK(!eight_out);
    if (!eight_in) {
      FUZZ_CHECK(out == all);
      FUZZ_CHECK(r.encoded.empty());
    }
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
  }
  return 0;
}
