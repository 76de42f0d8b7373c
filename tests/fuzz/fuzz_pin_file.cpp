// token::read_secret_file (and the --pin-fd reader) on any file content.
// Invariants: content over 4096 bytes, or empty once one trailing newline is
// dropped, is refused with Error(Input); otherwise the secret is the content
// less one trailing "\n", then less one trailing "\r" (what pin.cpp does:
// "\r\n" from a Windows editor, and a lone trailing "\r" too).
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/pin.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view content(reinterpret_cast<const char*>(data), size);
  std::string_view expected = content;
  if (!expected.empty() && expected.back() == '\n') expected.remove_suffix(1);
  if (!expected.empty() && expected.back() == '\r') expected.remove_suffix(1);
  const bool refuse = size > 4096 || expected.empty();

  const int fd = memfd_create("fuzz-pin", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  std::size_t off = 0;
  while (off < size) {
    const ssize_t w = ::write(fd, data + off, size - off);
    FUZZ_CHECK(w > 0);
    off += static_cast<std::size_t>(w);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);

  for (int via_fd = 0; via_fd < 2; ++via_fd) {
    FUZZ_CHECK(::lseek(fd, 0, SEEK_SET) == 0);
    try {
      token::PinSource src;
      src.allow_prompt = false;
      src.fd = fd;
      token::Secret s = via_fd != 0 ? token::read_secret(src, "fuzz PIN")
                                    : token::read_secret_file(path, "fuzz PIN");
      FUZZ_CHECK(!refuse);
      FUZZ_CHECK(s.view() == expected);
      FUZZ_CHECK(s.data()[s.size()] == '\0');
    } catch (const token::Error& e) {
      FUZZ_CHECK(refuse);
      FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
    }
  }
  ::close(fd);
  return 0;
}
