// token::Uri::parse on any text. Invariants: parsing either succeeds or
// throws Error(Input); what str() prints parses back to a URI that prints
// the same and selects the same objects (object_template) and modules.
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "fuzz_check.hpp"
#include "token/error.hpp"
#include "token/uri.hpp"

namespace {
bool same_template(token::AttributeTemplate& a, token::AttributeTemplate& b) {
  if (a.size() != b.size()) return false;
  const CK_ATTRIBUTE* x = a.data();
  const CK_ATTRIBUTE* y = b.data();
  for (CK_ULONG i = 0; i < a.size(); ++i) {
    if (x[i].type != y[i].type || x[i].ulValueLen != y[i].ulValueLen) return false;
    if (x[i].ulValueLen != 0 && std::memcmp(x[i].pValue, y[i].pValue, x[i].ulValueLen) != 0) {
      return false;
    }
  }
  return true;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::optional<token::Uri> uri;
  try {
    uri = token::Uri::parse(text);
  } catch (const token::Error& e) {
    FUZZ_CHECK(e.kind() == token::ErrorKind::Input);
    return 0;
  }
  const std::string printed = uri->str();
  token::Uri again = token::Uri::parse(printed);  // throws (and so crashes) if not
  FUZZ_CHECK(again.str() == printed);
  token::AttributeTemplate t1 = uri->object_template();
  token::AttributeTemplate t2 = again.object_template();
  FUZZ_CHECK(same_template(t1, t2));
  FUZZ_CHECK(uri->names_object() == again.names_object());
  FUZZ_CHECK(uri->names_token() == again.names_token());
  FUZZ_CHECK(uri->module_name() == again.module_name());
  FUZZ_CHECK(uri->module_path() == again.module_path());
  FUZZ_CHECK(uri->pin_source() == again.pin_source());
  // str() is for messages: a PIN in the URI comes back as "***", never itself.
  FUZZ_CHECK(uri->pin_value().has_value() == again.pin_value().has_value());
  FUZZ_CHECK(!again.pin_value() || *again.pin_value() == "***");
  return 0;
}
