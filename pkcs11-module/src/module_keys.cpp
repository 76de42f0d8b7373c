// Secret key generation and unwrapping (PKCS#11 v2.40 section 5.14).
#include <cstring>

#include "attributes.h"
#include "error.h"
#include "module.h"
#include "pkey.h"

namespace tk {
namespace {

void default_ulong(AttrMap& a, CK_ATTRIBUTE_TYPE type, CK_ULONG want, CK_RV wrong) {
  auto it = a.find(type);
  if (it == a.end()) {
    a[type] = ulong_value(want);
    return;
  }
  require(it->second == ulong_value(want), wrong);
}

// The key a wrapping mechanism works with: an RSA key of the given class,
// or for AES key wrap a secret key.
KeyRef wrapping_ref(const Mechanism& mech, const Object& k, CK_OBJECT_CLASS asym_class,
                    CK_ATTRIBUTE_TYPE usage, CK_RV wrong_type) {
  CK_OBJECT_CLASS want = mech.secret_key() ? CKO_SECRET_KEY : asym_class;
  require(k.cls() == want && k.ulong(CKA_KEY_TYPE) == mech.key_type, wrong_type);
  require(k.flag(usage), CKR_KEY_FUNCTION_NOT_PERMITTED);
  KeyRef ref;
  if (want == CKO_SECRET_KEY) {
    require(k.has(CKA_VALUE), CKR_USER_NOT_LOGGED_IN);
    ref.value = k.get(CKA_VALUE);
  }
  return ref;
}

}  // namespace

CK_OBJECT_HANDLE Module::generate_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, AttrMap attrs) {
  Session& s = session(h);
  const Mechanism& mech = mechanism(m.mechanism);
  require(mech.generate_secret != nullptr, CKR_MECHANISM_INVALID);
  default_ulong(attrs, CKA_CLASS, CKO_SECRET_KEY, CKR_TEMPLATE_INCONSISTENT);
  default_ulong(attrs, CKA_KEY_TYPE, mech.key_type, CKR_TEMPLATE_INCONSISTENT);
  attrs = complete_template(std::move(attrs), Mode::kGenerate);
  check_writable(s, attrs);
  mech.generate_secret(m, attrs);
  set_origin(attrs, true, m.mechanism);
  return store_object(s, std::move(attrs));
}

// 5.14 C_WrapKey with an RSA public key or an AES key (key wrap): the value
// of an extractable secret key, encrypted. Private keys are not wrappable
// here.
void Module::wrap_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, CK_OBJECT_HANDLE wrapping,
                      CK_OBJECT_HANDLE key_handle, uint8_t* out, CK_ULONG* out_len) {
  Session& s = session(h);
  require(out_len != nullptr, CKR_ARGUMENTS_BAD);
  const Mechanism& mech = mechanism(m.mechanism);
  require((mech.flags & CKF_WRAP) && mech.start, CKR_MECHANISM_INVALID);
  std::shared_ptr<Object> wk, key;
  try {
    wk = object(s, wrapping);
  } catch (const Error& e) {
    if (e.rv == CKR_OBJECT_HANDLE_INVALID) fail(CKR_WRAPPING_KEY_HANDLE_INVALID);
    throw;
  }
  try {
    key = object(s, key_handle);
  } catch (const Error& e) {
    if (e.rv == CKR_OBJECT_HANDLE_INVALID) fail(CKR_KEY_HANDLE_INVALID);
    throw;
  }
  KeyRef ref =
      wrapping_ref(mech, *wk, CKO_PUBLIC_KEY, CKA_WRAP, CKR_WRAPPING_KEY_TYPE_INCONSISTENT);
  if (!mech.secret_key()) ref.pkey = pkey_of(*wk);
  require(key->cls() == CKO_SECRET_KEY, CKR_KEY_NOT_WRAPPABLE);
  require(key->flag(CKA_EXTRACTABLE), CKR_KEY_UNEXTRACTABLE);
  require(key->has(CKA_VALUE), CKR_USER_NOT_LOGGED_IN);
  auto op = mech.start(m, OpKind::kEncrypt, ref);
  if (out == nullptr) {
    *out_len = op->output_size(0);
    return;
  }
  const Secret& value = key->get(CKA_VALUE);
  op->update(value.data(), value.size());
  Bytes wrapped = op->finish();
  if (*out_len < wrapped.size()) {
    *out_len = wrapped.size();
    fail(CKR_BUFFER_TOO_SMALL);
  }
  std::memcpy(out, wrapped.data(), wrapped.size());
  *out_len = wrapped.size();
}

// 5.14 C_UnwrapKey with an RSA private key: the key's value is decrypted
// inside the token and becomes a new secret-key object (how NSS opens
// S/MIME mail: CKM_RSA_PKCS into an AES key, then C_Decrypt with it).
CK_OBJECT_HANDLE Module::unwrap_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m,
                                    CK_OBJECT_HANDLE key_handle, const uint8_t* wrapped, CK_ULONG n,
                                    AttrMap attrs) {
  Session& s = session(h);
  const Mechanism& mech = mechanism(m.mechanism);
  require((mech.flags & CKF_UNWRAP) && mech.start, CKR_MECHANISM_INVALID);
  std::shared_ptr<Object> key;
  try {
    key = object(s, key_handle);
  } catch (const Error& e) {
    if (e.rv == CKR_OBJECT_HANDLE_INVALID) fail(CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    throw;
  }
  KeyRef ref =
      wrapping_ref(mech, *key, CKO_PRIVATE_KEY, CKA_UNWRAP, CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
  // A one-call operation has no room for the context-specific login that
  // a CKA_ALWAYS_AUTHENTICATE key asks for before each use (4.9).
  require(!key->flag(CKA_ALWAYS_AUTHENTICATE), CKR_USER_NOT_LOGGED_IN);
  if (!mech.secret_key()) ref.pkey = pkey_of(*key);
  require(wrapped != nullptr, CKR_ARGUMENTS_BAD);
  default_ulong(attrs, CKA_CLASS, CKO_SECRET_KEY, CKR_TEMPLATE_INCONSISTENT);
  require(attrs.count(CKA_KEY_TYPE) != 0, CKR_TEMPLATE_INCOMPLETE);
  attrs = complete_template(std::move(attrs), Mode::kGenerate);
  check_writable(s, attrs);
  auto op = mech.start(m, OpKind::kDecrypt, ref);
  op->update(wrapped, n);
  Bytes value;
  try {
    value = op->finish();
  } catch (const Error& e) {
    if (e.rv == CKR_ENCRYPTED_DATA_LEN_RANGE) fail(CKR_WRAPPED_KEY_LEN_RANGE);
    if (e.rv == CKR_ENCRYPTED_DATA_INVALID) fail(CKR_WRAPPED_KEY_INVALID);
    throw;
  }
  attrs[CKA_VALUE] = Secret(value.begin(), value.end());
  OPENSSL_cleanse(value.data(), value.size());
  attrs[CKA_VALUE_LEN] = secret_value_len(attrs);
  set_origin(attrs, false, 0);
  audit(s.slot, *key, m.mechanism, "unwrap");
  return store_object(s, std::move(attrs));
}

// 5.14 C_DeriveKey: a secret key from a private key and the peer's public
// value (CKM_ECDH1_DERIVE).
CK_OBJECT_HANDLE Module::derive_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m,
                                    CK_OBJECT_HANDLE base_handle, AttrMap attrs) {
  Session& s = session(h);
  require(mechanism(m.mechanism).derive != nullptr, CKR_MECHANISM_INVALID);
  std::shared_ptr<Object> base;
  try {
    base = object(s, base_handle);
  } catch (const Error& e) {
    if (e.rv == CKR_OBJECT_HANDLE_INVALID) fail(CKR_KEY_HANDLE_INVALID);
    throw;
  }
  require(base->cls() == CKO_PRIVATE_KEY, CKR_KEY_TYPE_INCONSISTENT);
  // The entry for the base key's type: ECDH on EC and on Montgomery keys.
  const Mechanism& mech = mechanism(m.mechanism, base->ulong(CKA_KEY_TYPE));
  require(mech.derive != nullptr, CKR_KEY_TYPE_INCONSISTENT);
  require(base->flag(CKA_DERIVE), CKR_KEY_FUNCTION_NOT_PERMITTED);
  require(!base->flag(CKA_ALWAYS_AUTHENTICATE), CKR_USER_NOT_LOGGED_IN);  // as in unwrap_key
  default_ulong(attrs, CKA_CLASS, CKO_SECRET_KEY, CKR_TEMPLATE_INCONSISTENT);
  require(attrs.count(CKA_KEY_TYPE) != 0, CKR_TEMPLATE_INCOMPLETE);
  attrs = complete_template(std::move(attrs), Mode::kGenerate);
  check_writable(s, attrs);
  Object probe{attrs, 0, 0, nullptr};
  size_t len = probe.has(CKA_VALUE_LEN) ? probe.ulong(CKA_VALUE_LEN) : 0;
  KeyRef ref;
  ref.pkey = pkey_of(*base);
  attrs[CKA_VALUE] = mech.derive(m, ref, len);
  attrs[CKA_VALUE_LEN] = secret_value_len(attrs);
  set_origin(attrs, false, 0);
  audit(s.slot, *base, m.mechanism, "derive");
  return store_object(s, std::move(attrs));
}

}  // namespace tk
