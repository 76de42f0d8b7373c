#include "attributes.h"

#include <algorithm>
#include <vector>

#include "error.h"

namespace tk {

const Secret& Object::get(CK_ATTRIBUTE_TYPE t) const {
  static const Secret empty;
  auto it = attrs.find(t);
  return it == attrs.end() ? empty : it->second;
}

bool Object::flag(CK_ATTRIBUTE_TYPE t) const {
  const Secret& v = get(t);
  return v.size() == 1 && v[0] != 0;
}

CK_ULONG Object::ulong(CK_ATTRIBUTE_TYPE t) const {
  const Secret& v = get(t);
  CK_ULONG u = CK_UNAVAILABLE_INFORMATION;
  if (v.size() == sizeof u) std::memcpy(&u, v.data(), sizeof u);
  return u;
}

Secret ulong_value(CK_ULONG v) {
  Secret s(sizeof v);
  std::memcpy(s.data(), &v, sizeof v);
  return s;
}

Secret bool_value(bool v) { return Secret{static_cast<uint8_t>(v ? CK_TRUE : CK_FALSE)}; }

namespace {

constexpr Kind B = Kind::kBool, U = Kind::kUlong, Y = Kind::kBytes;
constexpr CK_ULONG kNone = CK_UNAVAILABLE_INFORMATION;

// PKCS#11 v2.40 table 4.4 (common object attributes) and 4.5 (storage).
const std::vector<AttrRule> kCommon = {
    {CKA_CLASS, U, kRequired | kReadOnly, false, 0},
    {CKA_TOKEN, B, kReadOnly, true, CK_FALSE},
    {CKA_PRIVATE, B, kReadOnly, true, CK_FALSE},
    {CKA_MODIFIABLE, B, kReadOnly, true, CK_TRUE},
    {CKA_COPYABLE, B, kReadOnly, true, CK_TRUE},
    {CKA_DESTROYABLE, B, 0, true, CK_TRUE},
    {CKA_LABEL, Y, 0, true, 0},
};
// 4.5 data objects.
const std::vector<AttrRule> kData = {
    {CKA_APPLICATION, Y, 0, true, 0},
    {CKA_OBJECT_ID, Y, 0, true, 0},
    {CKA_VALUE, Y, 0, true, 0},
};
// 4.6 certificates and 4.6.3 X.509 public key certificates.
const std::vector<AttrRule> kX509 = {
    {CKA_CERTIFICATE_TYPE, U, kRequired | kReadOnly, false, 0},
    {CKA_TRUSTED, B, kReadOnly, true, CK_FALSE},
    {CKA_CERTIFICATE_CATEGORY, U, 0, true, 0},
    {CKA_CHECK_VALUE, Y, kReadOnly, true, 0},
    {CKA_START_DATE, Y, 0, true, 0},
    {CKA_END_DATE, Y, 0, true, 0},
    {CKA_PUBLIC_KEY_INFO, Y, 0, true, 0},
    {CKA_SUBJECT, Y, kRequired | kReadOnly, false, 0},
    {CKA_ID, Y, 0, true, 0},
    {CKA_ISSUER, Y, 0, true, 0},
    {CKA_SERIAL_NUMBER, Y, 0, true, 0},
    {CKA_VALUE, Y, kRequired | kReadOnly, false, 0},
    {CKA_URL, Y, 0, true, 0},
    {CKA_HASH_OF_SUBJECT_PUBLIC_KEY, Y, 0, true, 0},
    {CKA_HASH_OF_ISSUER_PUBLIC_KEY, Y, 0, true, 0},
    {CKA_JAVA_MIDP_SECURITY_DOMAIN, U, 0, true, 0},
    {CKA_NAME_HASH_ALGORITHM, U, 0, true, CKM_SHA_1},
};
// 4.7 key objects (common).
const std::vector<AttrRule> kKey = {
    {CKA_KEY_TYPE, U, kRequired | kReadOnly, false, 0},
    {CKA_ID, Y, 0, true, 0},
    {CKA_START_DATE, Y, 0, true, 0},
    {CKA_END_DATE, Y, 0, true, 0},
    {CKA_DERIVE, B, 0, true, CK_FALSE},
    {CKA_LOCAL, B, kComputed | kReadOnly, false, 0},
    {CKA_KEY_GEN_MECHANISM, U, kComputed | kReadOnly, false, 0},
    {CKA_ALLOWED_MECHANISMS, Y, 0, true, 0},
};
// 4.8 public keys.
const std::vector<AttrRule> kPublic = {
    {CKA_SUBJECT, Y, 0, true, 0},
    {CKA_ENCRYPT, B, 0, true, CK_TRUE},
    {CKA_VERIFY, B, 0, true, CK_TRUE},
    {CKA_VERIFY_RECOVER, B, 0, true, CK_FALSE},
    {CKA_WRAP, B, 0, true, CK_FALSE},
    {CKA_TRUSTED, B, kReadOnly, true, CK_FALSE},
    {CKA_WRAP_TEMPLATE, Y, kReadOnly, true, 0},
    {CKA_PUBLIC_KEY_INFO, Y, 0, true, 0},
};
// 4.9 private keys. CKA_SENSITIVE defaults to true and CKA_EXTRACTABLE to
// false: the spec leaves both to the token, and keys should not leave it.
const std::vector<AttrRule> kPrivate = {
    {CKA_SUBJECT, Y, 0, true, 0},
    {CKA_SENSITIVE, B, 0, true, CK_TRUE},
    {CKA_DECRYPT, B, 0, true, CK_TRUE},
    {CKA_SIGN, B, 0, true, CK_TRUE},
    {CKA_SIGN_RECOVER, B, 0, true, CK_FALSE},
    {CKA_UNWRAP, B, 0, true, CK_TRUE},
    {CKA_EXTRACTABLE, B, 0, true, CK_FALSE},
    {CKA_ALWAYS_SENSITIVE, B, kComputed | kReadOnly, false, 0},
    {CKA_NEVER_EXTRACTABLE, B, kComputed | kReadOnly, false, 0},
    {CKA_WRAP_WITH_TRUSTED, B, 0, true, CK_FALSE},
    {CKA_UNWRAP_TEMPLATE, Y, kReadOnly, true, 0},
    {CKA_ALWAYS_AUTHENTICATE, B, kReadOnly, true, CK_FALSE},
    {CKA_PUBLIC_KEY_INFO, Y, 0, true, 0},
};
// 2.1 RSA keys.
const std::vector<AttrRule> kRsaPublic = {
    {CKA_MODULUS, Y, kMaterial | kReadOnly, false, 0},
    {CKA_MODULUS_BITS, U, kGenOnly | kReadOnly, false, 0},
    {CKA_PUBLIC_EXPONENT, Y, kCreateOnly | kReadOnly, true, 0},
};
const std::vector<AttrRule> kRsaPrivate = {
    {CKA_MODULUS, Y, kMaterial | kReadOnly, false, 0},
    {CKA_PUBLIC_EXPONENT, Y, kMaterial | kReadOnly, false, 0},
    {CKA_PRIVATE_EXPONENT, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_PRIME_1, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_PRIME_2, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_EXPONENT_1, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_EXPONENT_2, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_COEFFICIENT, Y, kMaterial | kReadOnly | kSensitive, false, 0},
};
// 2.3 EC keys.
const std::vector<AttrRule> kEcPublic = {
    {CKA_EC_PARAMS, Y, kRequired | kReadOnly, false, 0},
    {CKA_EC_POINT, Y, kMaterial | kReadOnly, false, 0},
};
const std::vector<AttrRule> kEcPrivate = {
    {CKA_EC_PARAMS, Y, kMaterial | kReadOnly, false, 0},
    {CKA_VALUE, Y, kMaterial | kReadOnly | kSensitive, false, 0},
};
// 4.10 secret keys; like private keys, sensitive and not extractable by
// default.
const std::vector<AttrRule> kSecret = {
    {CKA_SENSITIVE, B, 0, true, CK_TRUE},
    {CKA_ENCRYPT, B, 0, true, CK_TRUE},
    {CKA_DECRYPT, B, 0, true, CK_TRUE},
    {CKA_SIGN, B, 0, true, CK_FALSE},
    {CKA_VERIFY, B, 0, true, CK_FALSE},
    {CKA_WRAP, B, 0, true, CK_FALSE},
    {CKA_UNWRAP, B, 0, true, CK_FALSE},
    {CKA_EXTRACTABLE, B, 0, true, CK_FALSE},
    {CKA_ALWAYS_SENSITIVE, B, kComputed | kReadOnly, false, 0},
    {CKA_NEVER_EXTRACTABLE, B, kComputed | kReadOnly, false, 0},
    {CKA_WRAP_WITH_TRUSTED, B, 0, true, CK_FALSE},
    {CKA_TRUSTED, B, kReadOnly, true, CK_FALSE},
    {CKA_WRAP_TEMPLATE, Y, kReadOnly, true, 0},
    {CKA_UNWRAP_TEMPLATE, Y, kReadOnly, true, 0},
};
// 2.8 generic secret and 2.9 AES keys. CKA_VALUE_LEN goes in a generate or
// unwrap template; the token sets it on created keys.
const std::vector<AttrRule> kSecretValue = {
    {CKA_VALUE, Y, kMaterial | kReadOnly | kSensitive, false, 0},
    {CKA_VALUE_LEN, U, kGenOnly | kReadOnly, false, 0},
};
// CKO_PROFILE (PKCS#11 3.0 section 4.13); made by the token only.
const std::vector<AttrRule> kProfile = {
    {CKA_PROFILE_ID, U, kReadOnly, false, 0},
};

using Rules = std::vector<const std::vector<AttrRule>*>;

Rules rules_for(CK_OBJECT_CLASS cls, CK_ULONG sub) {
  switch (cls) {
    case CKO_DATA:
      return {&kCommon, &kData};
    case CKO_CERTIFICATE:
      if (sub == CKC_X_509) return {&kCommon, &kX509};
      break;
    case CKO_PUBLIC_KEY:
      if (sub == CKK_RSA) return {&kCommon, &kKey, &kPublic, &kRsaPublic};
      if (sub == CKK_EC || sub == CKK_EC_EDWARDS || sub == CKK_EC_MONTGOMERY)
        return {&kCommon, &kKey, &kPublic, &kEcPublic};
      break;
    case CKO_PRIVATE_KEY:
      if (sub == CKK_RSA) return {&kCommon, &kKey, &kPrivate, &kRsaPrivate};
      if (sub == CKK_EC || sub == CKK_EC_EDWARDS || sub == CKK_EC_MONTGOMERY)
        return {&kCommon, &kKey, &kPrivate, &kEcPrivate};
      break;
    case CKO_SECRET_KEY:
      if (sub == CKK_AES || sub == CKK_GENERIC_SECRET)
        return {&kCommon, &kKey, &kSecret, &kSecretValue};
      break;
    case CKO_PROFILE:
      return {&kCommon, &kProfile};
    default:
      break;
  }
  return {};
}

// Later tables refine earlier ones (e.g. CKA_VALUE of a certificate).
const AttrRule* lookup(const Rules& rules, CK_ATTRIBUTE_TYPE type) {
  const AttrRule* found = nullptr;
  for (const auto* table : rules)
    for (const auto& r : *table)
      if (r.type == type) found = &r;
  return found;
}

bool is_vendor(CK_ATTRIBUTE_TYPE t) { return (t & CKA_VENDOR_DEFINED) != 0; }

void check_kind(const AttrRule& r, const Secret& v) {
  if (r.kind == Kind::kBool) require(v.size() == sizeof(CK_BBOOL), CKR_ATTRIBUTE_VALUE_INVALID);
  if (r.kind == Kind::kUlong) require(v.size() == sizeof(CK_ULONG), CKR_ATTRIBUTE_VALUE_INVALID);
}

bool flag_of(const AttrMap& a, CK_ATTRIBUTE_TYPE t) {
  auto it = a.find(t);
  return it != a.end() && it->second.size() == 1 && it->second[0] != 0;
}

}  // namespace

CK_ULONG subtype_of(const AttrMap& a) {
  CK_ATTRIBUTE_TYPE key = CKA_KEY_TYPE;
  auto cls = a.find(CKA_CLASS);
  if (cls != a.end() && cls->second.size() == sizeof(CK_ULONG)) {
    CK_ULONG c = 0;
    std::memcpy(&c, cls->second.data(), sizeof c);
    if (c == CKO_CERTIFICATE) key = CKA_CERTIFICATE_TYPE;
    if (c != CKO_CERTIFICATE && c != CKO_PUBLIC_KEY && c != CKO_PRIVATE_KEY && c != CKO_SECRET_KEY)
      return 0;
  }
  auto it = a.find(key);
  CK_ULONG v = CK_UNAVAILABLE_INFORMATION;
  if (it != a.end() && it->second.size() == sizeof v) std::memcpy(&v, it->second.data(), sizeof v);
  return v;
}

const AttrRule* find_rule(CK_OBJECT_CLASS cls, CK_ULONG sub, CK_ATTRIBUTE_TYPE type) {
  return lookup(rules_for(cls, sub), type);
}

AttrMap parse_template(const CK_ATTRIBUTE* t, CK_ULONG n) {
  require(t != nullptr || n == 0, CKR_ARGUMENTS_BAD);
  AttrMap out;
  for (CK_ULONG i = 0; i < n; ++i) {
    require(t[i].pValue != nullptr || t[i].ulValueLen == 0, CKR_ATTRIBUTE_VALUE_INVALID);
    auto* p = static_cast<const uint8_t*>(t[i].pValue);
    out[t[i].type] = p ? Secret(p, p + t[i].ulValueLen) : Secret();
  }
  return out;
}

AttrMap complete_template(AttrMap in, Mode mode) {
  auto cls = in.find(CKA_CLASS);
  require(cls != in.end(), CKR_TEMPLATE_INCOMPLETE);
  require(cls->second.size() == sizeof(CK_ULONG), CKR_ATTRIBUTE_VALUE_INVALID);
  CK_OBJECT_CLASS c = 0;
  std::memcpy(&c, cls->second.data(), sizeof c);
  CK_ULONG sub = subtype_of(in);
  Rules rules = rules_for(c, sub);
  // Objects of the token's own making cannot be created by applications.
  require(!rules.empty() && c != CKO_PROFILE, CKR_TEMPLATE_INCONSISTENT);
  for (const auto& [type, value] : in) {
    if (is_vendor(type)) continue;
    const AttrRule* r = lookup(rules, type);
    require(r != nullptr, CKR_ATTRIBUTE_TYPE_INVALID);
    require(!(r->flags & kComputed), CKR_ATTRIBUTE_READ_ONLY);
    if (mode == Mode::kGenerate) require(!(r->flags & kMaterial), CKR_TEMPLATE_INCONSISTENT);
    if (mode == Mode::kCreate) require(!(r->flags & kGenOnly), CKR_TEMPLATE_INCONSISTENT);
    check_kind(*r, value);
  }
  // Private and secret keys are private by default (the spec leaves the
  // default to the token).
  if ((c == CKO_PRIVATE_KEY || c == CKO_SECRET_KEY) && !in.count(CKA_PRIVATE))
    in[CKA_PRIVATE] = bool_value(true);
  for (const auto* table : rules) {
    for (const auto& r : *table) {
      if (in.count(r.type)) continue;
      bool needed =
          (r.flags & kRequired) || (mode == Mode::kCreate && (r.flags & (kMaterial | kCreateOnly)));
      require(!needed, CKR_TEMPLATE_INCOMPLETE);
      if (!r.has_default) continue;
      if (r.kind == Kind::kBool) in[r.type] = bool_value(r.def != 0);
      if (r.kind == Kind::kUlong) in[r.type] = ulong_value(r.def);
      if (r.kind == Kind::kBytes) in[r.type] = Secret();
    }
  }
  return in;
}

void set_origin(AttrMap& a, bool generated, CK_MECHANISM_TYPE mech) {
  CK_ULONG c = 0;
  std::memcpy(&c, a.at(CKA_CLASS).data(), sizeof c);
  if (c != CKO_PUBLIC_KEY && c != CKO_PRIVATE_KEY && c != CKO_SECRET_KEY) return;
  a[CKA_LOCAL] = bool_value(generated);
  a[CKA_KEY_GEN_MECHANISM] = ulong_value(generated ? mech : kNone);
  if (c == CKO_PUBLIC_KEY) return;
  // 4.9 footnote: CKA_ALWAYS_SENSITIVE / CKA_NEVER_EXTRACTABLE are false
  // for keys that came in through C_CreateObject.
  a[CKA_ALWAYS_SENSITIVE] = bool_value(generated && flag_of(a, CKA_SENSITIVE));
  a[CKA_NEVER_EXTRACTABLE] = bool_value(generated && !flag_of(a, CKA_EXTRACTABLE));
}

void apply_update(AttrMap& a, const AttrMap& changes) {
  require(flag_of(a, CKA_MODIFIABLE), CKR_ACTION_PROHIBITED);
  CK_ULONG c = 0;
  std::memcpy(&c, a.at(CKA_CLASS).data(), sizeof c);
  Rules rules = rules_for(c, subtype_of(a));
  for (const auto& [type, value] : changes) {
    if (is_vendor(type)) continue;
    const AttrRule* r = lookup(rules, type);
    require(r != nullptr, CKR_ATTRIBUTE_TYPE_INVALID);
    require(!(r->flags & (kReadOnly | kComputed | kMaterial)), CKR_ATTRIBUTE_READ_ONLY);
    check_kind(*r, value);
    // Footnote 11: CKA_SENSITIVE may only go to true, CKA_EXTRACTABLE to false.
    if (type == CKA_SENSITIVE && flag_of(a, CKA_SENSITIVE))
      require(value[0] != 0, CKR_ATTRIBUTE_READ_ONLY);
    if (type == CKA_EXTRACTABLE && !flag_of(a, CKA_EXTRACTABLE))
      require(value[0] == 0, CKR_ATTRIBUTE_READ_ONLY);
  }
  for (const auto& [type, value] : changes) a[type] = value;
}

bool is_secret_attr(const AttrMap& a, CK_ATTRIBUTE_TYPE type) {
  CK_ULONG c = 0;
  auto cls = a.find(CKA_CLASS);
  if (cls == a.end() || cls->second.size() != sizeof c) return false;
  std::memcpy(&c, cls->second.data(), sizeof c);
  const AttrRule* r = find_rule(c, subtype_of(a), type);
  return r != nullptr && (r->flags & kSensitive);
}

bool is_hidden(const AttrMap& a, CK_ATTRIBUTE_TYPE type) {
  if (!is_secret_attr(a, type)) return false;
  return flag_of(a, CKA_SENSITIVE) || !flag_of(a, CKA_EXTRACTABLE);
}

Secret secret_value_len(const AttrMap& a) {
  Object o{a, 0, 0, nullptr};
  CK_ULONG len = o.get(CKA_VALUE).size();
  if (o.ulong(CKA_KEY_TYPE) == CKK_AES)
    require(len == 16 || len == 24 || len == 32, CKR_ATTRIBUTE_VALUE_INVALID);
  if (o.has(CKA_VALUE_LEN)) require(o.ulong(CKA_VALUE_LEN) == len, CKR_TEMPLATE_INCONSISTENT);
  return ulong_value(len);
}

bool matches(const AttrMap& a, const AttrMap& want) {
  return std::all_of(want.begin(), want.end(), [&](const auto& kv) {
    auto it = a.find(kv.first);
    return it != a.end() && it->second == kv.second && !is_hidden(a, kv.first);
  });
}

}  // namespace tk
