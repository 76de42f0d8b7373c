// token::from_hex on any text, and to_hex/from_hex on any bytes.
// Invariants: from_hex accepts exactly an even number of hex digits with
// ':', '%' and ' ' between them, and gives back those digits' bytes; and
// from_hex(to_hex(b)) == b.
#include <cctype>
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "token/attributes.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string digits;
  bool all_hex = true;
  for (char c : text) {
    if (c == ':' || c == '%' || c == ' ') continue;
    if (std::isxdigit(static_cast<unsigned char>(c)) == 0) all_hex = false;
    digits += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const auto parsed = token::from_hex(text);
  FUZZ_CHECK(parsed.has_value() == (all_hex && digits.size() % 2 == 0));
  if (parsed) FUZZ_CHECK(token::to_hex(*parsed) == digits);

  const token::Bytes raw(data, data + size);
  const std::string hex = token::to_hex(raw);
  FUZZ_CHECK(hex.size() == 2 * size);
  const auto back = token::from_hex(hex);
  FUZZ_CHECK(back.has_value() && *back == raw);
  return 0;
}
