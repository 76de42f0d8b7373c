#include "token/uri.hpp"

#include <p11-kit/uri.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "token/error.hpp"

namespace token {

void Uri::Free::operator()(P11KitUri* u) const { p11_kit_uri_free(u); }

Uri::Uri() : uri_(p11_kit_uri_new(), Free{}) {
  if (!uri_) throw std::bad_alloc();
}

namespace {
// The URI as it may appear in messages: pin-value's value replaced.
std::string redacted(const std::string& text) {
  std::string out = text;
  for (std::size_t at = out.find("pin-value="); at != std::string::npos;
       at = out.find("pin-value=", at + 1)) {
    std::size_t start = at + 10, end = out.find_first_of("&;", start);
    out.replace(start, (end == std::string::npos ? out.size() : end) - start, "***");
  }
  return out;
}
}  // namespace

Uri Uri::parse(const std::string& text) {
  Uri u;
  if (text.find('\0') != std::string::npos) {
    throw Error(ErrorKind::Input, "malformed PKCS#11 URI: it contains a NUL byte");
  }
  // A NUL byte (%00) in a text attribute (token, model, object, ...) does not
  // survive p11-kit's fixed-width token fields and would make the URI print
  // back as a different one (found by fuzz_uri). Only id= is binary.
  // p11-kit's decoder skips whitespace anywhere in a value, even between `%`
  // and its two hex digits ("% 00" is a NUL too: found by fuzz_uri), so the
  // search is over the path without it.
  std::string path = text.substr(0, text.find('?'));
  std::erase_if(path, [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
  for (std::size_t at = path.find("%00"); at != std::string::npos; at = path.find("%00", at + 1)) {
    const std::size_t semi = path.rfind(';', at);
    const std::size_t seg = semi == std::string::npos ? path.find(':') + 1 : semi + 1;
    if (path.compare(seg, 3, "id=") != 0) {
      throw Error(ErrorKind::Input, "malformed PKCS#11 URI \"" + redacted(text) +
                                        "\": a text attribute contains a NUL byte (%00)");
    }
  }
  int rc = p11_kit_uri_parse(text.c_str(), P11_KIT_URI_FOR_ANY, u.uri_.get());
  if (rc != P11_KIT_URI_OK) {
    throw Error(ErrorKind::Input, "malformed PKCS#11 URI \"" + redacted(text) +
                                      "\": " + p11_kit_uri_message(rc) +
                                      " (expected e.g. pkcs11:token=alice;object=mail)");
  }
  // A query or path attribute p11-kit does not know (a typo like "tokn=")
  // would otherwise silently widen the match.
  if (p11_kit_uri_any_unrecognized(u.uri_.get())) {
    throw Error(ErrorKind::Input, "PKCS#11 URI \"" + redacted(text) +
                                      "\" has an attribute tokenkit does not understand");
  }
  return u;
}

bool Uri::matches_module(const CK_INFO& info) const {
  return p11_kit_uri_match_module_info(uri_.get(), &info) == 1;
}

bool Uri::matches_slot(CK_SLOT_ID id, const CK_SLOT_INFO& info) const {
  CK_SLOT_ID want = p11_kit_uri_get_slot_id(uri_.get());
  if (want != static_cast<CK_SLOT_ID>(-1) && want != id) return false;
  return p11_kit_uri_match_slot_info(uri_.get(), &info) == 1;
}

namespace {
// PKCS#11 pads text fields with spaces (2.40 section 3.2); some modules pad
// with NUL bytes instead (tpm2-pkcs11 1.9: model "SW   TPM" then eight NULs).
// p11-kit formats those as "%00", which RFC 7512 parsers (ours too) refuse,
// and compares them byte for byte with the space-padded URI value. Treat
// trailing NULs as the padding they are.
template <std::size_t N>
void pad_with_spaces(unsigned char (&field)[N]) {
  for (std::size_t i = N; i > 0 && (field[i - 1] == '\0' || field[i - 1] == ' '); --i)
    field[i - 1] = ' ';
}
CK_TOKEN_INFO space_padded(const CK_TOKEN_INFO& info) {
  CK_TOKEN_INFO t = info;
  pad_with_spaces(t.label);
  pad_with_spaces(t.manufacturerID);
  pad_with_spaces(t.model);
  pad_with_spaces(t.serialNumber);
  return t;
}
}  // namespace

bool Uri::matches_token(const CK_TOKEN_INFO& info) const {
  const CK_TOKEN_INFO padded = space_padded(info);
  return p11_kit_uri_match_token_info(uri_.get(), &padded) == 1;
}

bool Uri::names_token() const {
  CK_TOKEN_INFO* t = p11_kit_uri_get_token_info(uri_.get());
  CK_TOKEN_INFO blank{};
  // Padding compares equal: p11-kit callocs its token info and blank{} is
  // zero-filled; only the text fields RFC 7512 sets can differ.
  if (t == nullptr) return false;
  // NOLINTNEXTLINE(bugprone-suspicious-memory-comparison,cert-exp42-c,cert-flp37-c)
  return std::memcmp(t, &blank, sizeof blank) != 0;
}

namespace {
std::optional<std::string> opt(const char* s) {
  if (s == nullptr) return std::nullopt;
  return std::string(s);
}
}  // namespace

std::optional<std::string> Uri::module_name() const {
  return opt(p11_kit_uri_get_module_name(uri_.get()));
}
std::optional<std::string> Uri::module_path() const {
  return opt(p11_kit_uri_get_module_path(uri_.get()));
}
std::optional<std::string> Uri::pin_value() const {
  return opt(p11_kit_uri_get_pin_value(uri_.get()));
}
std::optional<std::string> Uri::pin_source() const {
  return opt(p11_kit_uri_get_pin_source(uri_.get()));
}

AttributeTemplate Uri::object_template() const {
  AttributeTemplate t;
  for (CK_ATTRIBUTE_TYPE type : {CKA_CLASS, CKA_ID, CKA_LABEL}) {
    CK_ATTRIBUTE* a = p11_kit_uri_get_attribute(uri_.get(), type);
    if (a == nullptr) continue;
    auto* p = static_cast<const unsigned char*>(a->pValue);
    if (type == CKA_CLASS && a->ulValueLen == sizeof(CK_OBJECT_CLASS)) {
      CK_OBJECT_CLASS c;
      std::memcpy(&c, p, sizeof c);
      t.add(type, c);
    } else {
      t.add(type, Bytes(p, p + a->ulValueLen));
    }
  }
  return t;
}

bool Uri::names_object() const { return !object_template().empty(); }

std::string Uri::str() const {
  char* s = nullptr;
  if (p11_kit_uri_format(uri_.get(), P11_KIT_URI_FOR_ANY, &s) != P11_KIT_URI_OK || s == nullptr) {
    throw Error(ErrorKind::Internal, "cannot format a PKCS#11 URI");
  }
  std::string out(s);
  std::free(s);
  return redacted(out);  // str() is for messages: never a PIN
}

std::string Uri::for_token(const CK_TOKEN_INFO& token) {
  Uri u;
  *p11_kit_uri_get_token_info(u.uri_.get()) = space_padded(token);
  char* s = nullptr;
  if (p11_kit_uri_format(u.uri_.get(), P11_KIT_URI_FOR_TOKEN, &s) != P11_KIT_URI_OK) {
    throw Error(ErrorKind::Internal, "cannot format a PKCS#11 token URI");
  }
  std::string out(s);
  std::free(s);
  return out;
}

std::string Uri::for_object(const CK_TOKEN_INFO& token, CK_OBJECT_CLASS cls,
                            const std::string& label, const Bytes& id) {
  // RFC 7512 §2.3 names five object types; a URI for any other class (a
  // PKCS#11 3.0 profile object, a vendor class) would select other objects.
  switch (cls) {
    case CKO_CERTIFICATE:
    case CKO_PUBLIC_KEY:
    case CKO_PRIVATE_KEY:
    case CKO_SECRET_KEY:
    case CKO_DATA:
      break;
    default:
      return {};
  }
  Uri u;
  *p11_kit_uri_get_token_info(u.uri_.get()) = space_padded(token);
  CK_ATTRIBUTE a{CKA_CLASS, &cls, sizeof cls};
  p11_kit_uri_set_attribute(u.uri_.get(), &a);
  if (!label.empty()) {
    CK_ATTRIBUTE l{CKA_LABEL, const_cast<char*>(label.data()), static_cast<CK_ULONG>(label.size())};
    p11_kit_uri_set_attribute(u.uri_.get(), &l);
  }
  if (!id.empty()) {
    CK_ATTRIBUTE i{CKA_ID, const_cast<unsigned char*>(id.data()), static_cast<CK_ULONG>(id.size())};
    p11_kit_uri_set_attribute(u.uri_.get(), &i);
  }
  char* s = nullptr;
  if (p11_kit_uri_format(u.uri_.get(), P11_KIT_URI_FOR_OBJECT_ON_TOKEN, &s) != P11_KIT_URI_OK) {
    throw Error(ErrorKind::Internal, "cannot format a PKCS#11 object URI");
  }
  std::string out(s);
  std::free(s);
  return out;
}

}  // namespace token
