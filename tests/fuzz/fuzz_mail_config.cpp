// The readers of mail-client files tokenkit register/doctor parse: prefs.js
// and user.js lines, profiles.ini, pkcs11.txt, `modutil -list` output and p11-kit
// .module files. Invariants: no crash on any input; a pref written by
// edit_prefs_text() reads back last, with the same name and value; removing
// every parsed name leaves no pref behind.
#include <cstdint>
#include <string>

#include "fuzz_check.hpp"
#include "mailclients.hpp"

using namespace tokenkit::mail;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto prefs = parse_prefs(text);
  std::vector<std::string> names;
  for (const auto& p : prefs) names.push_back(p.name);
  (void)identities_for_email(prefs, "alice@example.org");
  // A string value taken from the input, written back and read again.
  Pref w{"fuzz.pref", quote_pref_string(text), text, true};
  auto again = parse_prefs(edit_prefs_text(text, {w}, names));
  FUZZ_CHECK(!again.empty());
  FUZZ_CHECK(again.back().name == "fuzz.pref");
  FUZZ_CHECK(again.back().value == text);
  FUZZ_CHECK(parse_prefs(edit_prefs_text(text, {}, names)).empty());
  (void)profiles_from_ini(text, "/profiles");
  (void)parse_modutil_list(text);
  (void)parse_pkcs11_txt(text);
  (void)p11kit_module_path(text);
  return 0;
}
