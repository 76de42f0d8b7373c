#include "token/names.hpp"

#include <cstdio>
#include <span>

#include "names_table.hpp"

namespace token {
namespace {

using detail::NameEntry;

// Aliases share a value (CKK_ECDSA, CKK_EC); the header lists the newer name
// last, so the last match wins.
std::string lookup(std::span<const NameEntry> table, unsigned long v) {
  const char* found = nullptr;
  for (const auto& e : table) {
    if (e.value == v) found = e.name;
  }
  if (found) return found;
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", v);
  return buf;
}

}  // namespace

std::string rv_name(CK_RV rv) { return lookup({detail::ckr_names, detail::ckr_names_count}, rv); }
std::string mechanism_name(CK_MECHANISM_TYPE m) {
  return lookup({detail::ckm_names, detail::ckm_names_count}, m);
}
std::string attribute_name(CK_ATTRIBUTE_TYPE a) {
  return lookup({detail::cka_names, detail::cka_names_count}, a);
}
std::string class_name(CK_OBJECT_CLASS c) {
  return lookup({detail::cko_names, detail::cko_names_count}, c);
}
std::string key_type_name(CK_KEY_TYPE k) {
  return lookup({detail::ckk_names, detail::ckk_names_count}, k);
}
std::string certificate_type_name(CK_CERTIFICATE_TYPE c) {
  return lookup({detail::ckc_names, detail::ckc_names_count}, c);
}

bool mechanism_from_name(const std::string& name, CK_MECHANISM_TYPE& out) {
  const std::string full = name.rfind("CKM_", 0) == 0 ? name : "CKM_" + name;
  for (std::size_t i = 0; i < detail::ckm_names_count; ++i) {
    if (full == detail::ckm_names[i].name) {
      out = detail::ckm_names[i].value;
      return true;
    }
  }
  return false;
}

}  // namespace token
