// The two multipart/signed splitters of verify (libtoken/src/smime/
// multipart.cpp): the streaming one over a BIO (input from a pipe) and the
// one over memory (a mapped file), on the same body. The first byte sets
// the boundary's length (1 to 8 bytes taken from the input after it, so
// that the body can hold it), the second the memory splitter's step.
// Invariants: both give the same signed part and signature, or both refuse
// with the same message, and only Error(Input).
#include <openssl/bio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.hpp"
#include "smime/multipart.hpp"
#include "token/error.hpp"

namespace {

struct Split {
  std::string content;
  token::Bytes signature;
  std::string error;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2 || size > (1u << 18)) return 0;
  const std::size_t boundary_size = 1 + data[0] % 8;
  const std::size_t step = 1 + data[1];
  if (size < 2 + boundary_size) return 0;
  const std::string boundary(reinterpret_cast<const char*>(data) + 2, boundary_size);
  const std::string body(reinterpret_cast<const char*>(data) + 2 + boundary_size,
                         size - 2 - boundary_size);
  const std::size_t limit = 4096;

  Split streamed;
  {
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(body.data(), static_cast<int>(body.size())), BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    try {
      streamed.signature =
          token::smime::split_multipart_signed(in.get(), boundary, out.get(), limit);
      char* p = nullptr;
      const long n = BIO_get_mem_data(out.get(), &p);
      streamed.content.assign(p, static_cast<std::size_t>(n));
    } catch (const token::Error& e) {
      FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
      streamed.error = e.what();
    }
  }
  Split mapped;
  try {
    std::size_t last = 0;
    const auto r = token::smime::split_multipart_signed(
        body.data(), body.size(), boundary, limit,
        [&](std::size_t at) {
          FUZZ_CHECK(at > last && at <= body.size());
          last = at;
        },
        step);
    FUZZ_CHECK(r.content_begin <= r.content_end && r.content_end <= body.size());
    mapped.content = body.substr(r.content_begin, r.content_end - r.content_begin);
    mapped.signature = r.signature;
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
    mapped.error = e.what();
  }
  FUZZ_CHECK(mapped.error == streamed.error);
  FUZZ_CHECK(mapped.content == streamed.content);
  FUZZ_CHECK(mapped.signature == streamed.signature);
  return 0;
}
