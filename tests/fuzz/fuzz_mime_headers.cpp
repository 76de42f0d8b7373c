// The header-block reader and field parser that run on every message verify
// reads (libtoken/src/smime/headers.cpp): read_header_block with its size
// limit, the prefix filter that hands the block back to OpenSSL (read and
// gets must give back exactly the bytes read), header_value and
// mail_address.
// Invariants: the prefix filter is transparent; the block never exceeds the
// limit; only Error(Input) is thrown.
#include <openssl/bio.h>

#include <cstdint>
#include <memory>
#include <string>

#include "fuzz_check.hpp"
#include "smime/headers.hpp"
#include "token/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size > (1u << 16)) return 0;
  const std::string all(reinterpret_cast<const char*>(data), size);
  std::unique_ptr<BIO, decltype(&BIO_free)> in(BIO_new_mem_buf(data, static_cast<int>(size)),
                                               BIO_free);
  constexpr std::size_t kLimit = 4096;
  try {
    std::string block = token::smime::read_header_block(in.get(), kLimit);
    FUZZ_CHECK(block.size() <= kLimit);
    FUZZ_CHECK(all.compare(0, block.size(), block) == 0);
    if (auto from = token::smime::header_value(block, "From")) {
      const std::string addr = token::smime::mail_address(*from);
      FUZZ_CHECK(addr.size() <= from->size());
    }
    (void)token::smime::header_value(block, "Content-Type");
    // Block, then the rest: alternate gets and read, as OpenSSL's reader does.
    BIO* chain = BIO_push(token::smime::new_prefix_filter(block), in.get());
    std::string back;
    char buf[97];
    for (int turn = 0;; ++turn) {
      const int n = turn % 2 ? BIO_read(chain, buf, sizeof buf) : BIO_gets(chain, buf, sizeof buf);
      if (n <= 0) break;
      back.append(buf, static_cast<std::size_t>(n));
    }
    BIO_pop(chain);
    BIO_free(chain);
    FUZZ_CHECK(back == all);
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
  }
  return 0;
}
