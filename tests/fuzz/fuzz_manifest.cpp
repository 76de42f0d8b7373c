// token::parse_manifest (CSV and JSON) on any text. Invariants: it returns
// well-formed entries (unique names, exactly one of p12/keygen, a target and
// a PIN source) or throws Error(Input).
#include <cstdint>
#include <set>
#include <string>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/manifest.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    auto entries = token::parse_manifest(text, "fuzz.csv");
    std::set<std::string> names;
    for (const auto& e : entries) {
      FUZZ_CHECK(names.insert(e.name).second);
      FUZZ_CHECK(e.p12.has_value() != e.keygen.has_value());
      FUZZ_CHECK(e.token || e.serial);
      FUZZ_CHECK(e.pin_file || e.pin_env);
    }
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
  }
  return 0;
}
