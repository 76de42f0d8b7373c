// apply_import: write the plan as one unit, verify, or leave no trace.
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/rand.h>
#include <algorithm>
#include <functional>

#include "keys.hpp"
#include "token/error.hpp"
#include "token/names.hpp"
#include "token/provision.hpp"

namespace token {

using namespace provision;

namespace {

// Some tokens refuse the full private-key template with
// CKR_ATTRIBUTE_TYPE_INVALID and take only the CRT parts (ykcs11); others
// want the opposite (OpenSC's PIV driver). Try the full one first.
CK_RV create(Session& s, PlannedObject& o, CK_OBJECT_HANDLE& h) {
  const Module& m = s.module();
  CK_RV rv = m.invoke("C_CreateObject", m.functions()->C_CreateObject, s.handle(), o.attrs.data(),
                      o.attrs.size(), &h);
  if (rv != CKR_ATTRIBUTE_TYPE_INVALID || o.cls != CKO_PRIVATE_KEY) return rv;
  AttributeTemplate crt = crt_only(o.attrs);
  return m.invoke("C_CreateObject", m.functions()->C_CreateObject, s.handle(), crt.data(),
                  crt.size(), &h);
}

CK_OBJECT_HANDLE find_one(const Session& s, CK_OBJECT_CLASS cls, const Bytes& id) {
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(cls)).add(CKA_ID, id);
  auto found = s.find(t);
  if (found.empty()) {
    throw Error(ErrorKind::Verification, "the " + class_name(cls) + " with id " + to_hex(id) +
                                             " is not on " + s.context() + " after writing it");
  }
  return found.front();
}

ossl::X509Ptr stored_certificate(const Session& s, const Bytes& id) {
  const CK_ATTRIBUTE_TYPE want[] = {CKA_VALUE};
  auto v = s.read(find_one(s, CKO_CERTIFICATE, id), want);
  const Bytes* der = v.bytes(CKA_VALUE);
  const unsigned char* p = der ? der->data() : nullptr;
  ossl::X509Ptr x(p ? d2i_X509(nullptr, &p, static_cast<long>(der->size())) : nullptr);
  if (!x)
    throw Error(ErrorKind::Verification,
                "the stored certificate " + to_hex(id) + " cannot be read back");
  return x;
}

bool has_mechanism(const Session& s, CK_MECHANISM_TYPE m) {
  for (const auto& mi : s.module().mechanisms(s.slot())) {
    if (mi.type == m) return true;
  }
  return false;
}

// Called right after C_SignInit/C_DecryptInit: the context-specific login a
// CKA_ALWAYS_AUTHENTICATE key needs (PKCS#11 2.40 §4.9), or nothing.
using AfterInit = std::function<void()>;

Bytes token_sign(Session& s, CK_OBJECT_HANDLE key, CK_MECHANISM_TYPE mech, const Bytes& data,
                 const AfterInit& after_init) {
  const Module& m = s.module();
  CK_MECHANISM mechanism{mech, nullptr, 0};
  m.call("C_SignInit", m.functions()->C_SignInit, s.context(), s.handle(), &mechanism, key);
  if (after_init) after_init();
  CK_ULONG len = 0;
  auto* in = const_cast<unsigned char*>(data.data());
  m.call("C_Sign", m.functions()->C_Sign, s.context(), s.handle(), in, CK_ULONG(data.size()),
         nullptr, &len);
  Bytes sig(len);
  m.call("C_Sign", m.functions()->C_Sign, s.context(), s.handle(), in, CK_ULONG(data.size()),
         sig.data(), &len);
  sig.resize(len);
  return sig;
}

// PKCS#11 ECDSA signatures are r || s; OpenSSL verifies DER.
Bytes ecdsa_der(const Bytes& raw) {
  const std::size_t half = raw.size() / 2;
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(raw.data(), static_cast<int>(half), nullptr),
                 BN_bin2bn(raw.data() + half, static_cast<int>(half), nullptr));
  int n = i2d_ECDSA_SIG(sig, nullptr);
  Bytes der(static_cast<std::size_t>(std::max(n, 0)));
  unsigned char* p = der.data();
  i2d_ECDSA_SIG(sig, &p);
  ECDSA_SIG_free(sig);
  return der;
}

void verify_signature(Session& s, CK_OBJECT_HANDLE key, EVP_PKEY* pub, KeyKind kind,
                      const AfterInit& after_init) {
  Bytes challenge(32);
  RAND_bytes(challenge.data(), 32);
  Bytes digest(32);
  unsigned int n = 0;
  EVP_Digest(challenge.data(), challenge.size(), digest.data(), &n, EVP_sha256(), nullptr);
  Bytes sig;
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new(pub, nullptr));
  EVP_PKEY_verify_init(ctx.get());
  if (kind == KeyKind::Rsa) {
    if (has_mechanism(s, CKM_SHA256_RSA_PKCS)) {
      sig = token_sign(s, key, CKM_SHA256_RSA_PKCS, challenge, after_init);
    } else {
      // DigestInfo for SHA-256 (RFC 8017 §9.2 note 1) followed by the digest.
      Bytes info = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                    0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
      info.insert(info.end(), digest.begin(), digest.end());
      sig = token_sign(s, key, CKM_RSA_PKCS, info, after_init);
    }
    EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  } else {
    sig = ecdsa_der(token_sign(s, key, CKM_ECDSA, digest, after_init));
  }
  EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256());
  if (EVP_PKEY_verify(ctx.get(), sig.data(), sig.size(), digest.data(), digest.size()) != 1) {
    throw Error(ErrorKind::Verification,
                "a test signature by the stored key does not verify "
                "with the stored certificate");
  }
}

void verify_decryption(Session& s, CK_OBJECT_HANDLE key, EVP_PKEY* pub,
                       const AfterInit& after_init) {
  Bytes secret(32), enc;
  RAND_bytes(secret.data(), 32);
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new(pub, nullptr));
  std::size_t len = 0;
  EVP_PKEY_encrypt_init(ctx.get());
  EVP_PKEY_CTX_set_rsa_padding(ctx.get(), RSA_PKCS1_PADDING);
  EVP_PKEY_encrypt(ctx.get(), nullptr, &len, secret.data(), secret.size());
  enc.resize(len);
  EVP_PKEY_encrypt(ctx.get(), enc.data(), &len, secret.data(), secret.size());
  const Module& m = s.module();
  CK_MECHANISM mech{CKM_RSA_PKCS, nullptr, 0};
  m.call("C_DecryptInit", m.functions()->C_DecryptInit, s.context(), s.handle(), &mech, key);
  if (after_init) after_init();
  Bytes out(enc.size());
  CK_ULONG out_len = out.size();
  m.call("C_Decrypt", m.functions()->C_Decrypt, s.context(), s.handle(), enc.data(),
         CK_ULONG(enc.size()), out.data(), &out_len);
  out.resize(out_len);
  if (out != secret) {
    throw Error(ErrorKind::Verification,
                "a test decryption by the stored key gives the wrong result");
  }
}

// ECDH on the token against an ephemeral key must give what OpenSSL derives
// from the ephemeral private key and the certificate's public key.
void verify_derivation(Session& s, CK_OBJECT_HANDLE key, EVP_PKEY* pub) {
  ossl::PkeyCtx gen(EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr));
  EVP_PKEY* raw = nullptr;
  const bool x25519 = EVP_PKEY_get_base_id(pub) == EVP_PKEY_X25519;
  if (x25519) {
    raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
    if (raw == nullptr)
      throw Error(ErrorKind::Internal,
                  "cannot make an ephemeral X25519 key: " + ossl::last_error());
  } else if (EVP_PKEY_keygen_init(gen.get()) != 1 ||
             EVP_PKEY_CTX_set_group_name(gen.get(), EVP_PKEY_get_bits(pub) == 256 ? "P-256"
                                                    : EVP_PKEY_get_bits(pub) == 384
                                                        ? "P-384"
                                                        : "P-521") != 1 ||
             EVP_PKEY_keygen(gen.get(), &raw) != 1) {
    throw Error(ErrorKind::Internal, "cannot make an ephemeral EC key: " + ossl::last_error());
  }
  ossl::Pkey eph(raw);
  Bytes expected;
  std::size_t len = 0;
  ossl::PkeyCtx dctx(EVP_PKEY_CTX_new(eph.get(), nullptr));
  EVP_PKEY_derive_init(dctx.get());
  EVP_PKEY_derive_set_peer(dctx.get(), pub);
  EVP_PKEY_derive(dctx.get(), nullptr, &len);
  expected.resize(len);
  EVP_PKEY_derive(dctx.get(), expected.data(), &len);

  std::size_t plen = 0;
  EVP_PKEY_get_octet_string_param(eph.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &plen);
  Bytes point(plen);
  EVP_PKEY_get_octet_string_param(eph.get(), OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), plen,
                                  &plen);
  CK_ECDH1_DERIVE_PARAMS params{CKD_NULL, 0, nullptr, CK_ULONG(point.size()), point.data()};
  CK_MECHANISM mech{CKM_ECDH1_DERIVE, &params, sizeof params};
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY))
      .add(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET))
      .add_bool(CKA_TOKEN, false)
      .add_bool(CKA_SENSITIVE, false)
      .add_bool(CKA_EXTRACTABLE, true)
      .add(CKA_VALUE_LEN, CK_ULONG(expected.size()));
  const Module& m = s.module();
  CK_OBJECT_HANDLE derived = CK_INVALID_HANDLE;
  m.call("C_DeriveKey", m.functions()->C_DeriveKey, s.context(), s.handle(), &mech, key, t.data(),
         t.size(), &derived);
  const CK_ATTRIBUTE_TYPE want[] = {CKA_VALUE};
  AttributeValues v = s.read(derived, want);
  m.invoke("C_DestroyObject", m.functions()->C_DestroyObject, s.handle(), derived);
  if (!v.bytes(CKA_VALUE) || *v.bytes(CKA_VALUE) != expected) {
    throw Error(ErrorKind::Verification,
                "a test key agreement with the stored key gives the wrong result");
  }
}

bool always_authenticate(const Session& s, CK_OBJECT_HANDLE key) {
  const CK_ATTRIBUTE_TYPE want[] = {CKA_ALWAYS_AUTHENTICATE};
  return s.read(key, want).bool_value(CKA_ALWAYS_AUTHENTICATE).value_or(false);
}

// Destroys what this run wrote, newest first, with the login that wrote it.
// A token whose profile cannot destroy keys (a PIV card before YubiKey 5.7)
// keeps the key; the error says so (see rollback_note).
void roll_back(Session& s, const std::vector<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_CLASS>>& created,
               const ImportPlan& plan, const ImportLogins& logins) {
  try {
    if (logins.to_write) logins.to_write();
  } catch (...) {
    // Without the writing login the destroys below fail too; they are tried anyway.
  }
  const Module& m = s.module();
  for (auto it = created.rbegin(); it != created.rend(); ++it) {
    if (it->second == CKO_PRIVATE_KEY && !plan.profile.can_destroy_keys) continue;
    m.invoke("C_DestroyObject", m.functions()->C_DestroyObject, s.handle(), it->first);
  }
}

std::string rollback_note(const std::vector<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_CLASS>>& created,
                          const ImportPlan& plan) {
  if (plan.profile.can_destroy_keys) return {};
  for (const auto& [h, cls] : created) {
    if (cls == CKO_PRIVATE_KEY) {
      return "; the private key stays in its slot (" + std::string(plan.profile.name) +
             " cannot delete keys), anything else written was removed again: run the import "
             "again to finish it";
    }
  }
  return {};
}

void verify(const ImportPlan& plan, Session& s, const ImportLogins& logins, ImportResult& result) {
  for (const auto& id : plan.identities) {
    CK_OBJECT_HANDLE key = find_one(s, CKO_PRIVATE_KEY, id.id);
    ossl::X509Ptr cert = stored_certificate(s, id.id);
    EVP_PKEY* pub = X509_get0_pubkey(cert.get());
    const KeyKind kind = kind_of(pub);
    const AfterInit after_init =
        always_authenticate(s, key) ? logins.context_specific : AfterInit{};
    auto uses = [&id](const char* u) {
      return std::find(id.usage.begin(), id.usage.end(), u) != id.usage.end();
    };
    if (uses("sign")) {
      verify_signature(s, key, pub, kind, after_init);
      result.verified.push_back(id.label + ": signature");
    }
    if (uses("decrypt")) {
      verify_decryption(s, key, pub, after_init);
      result.verified.push_back(id.label + ": decryption");
    }
    if (uses("derive") && has_mechanism(s, CKM_ECDH1_DERIVE)) {
      verify_derivation(s, key, pub);
      result.verified.push_back(id.label + ": key agreement");
    } else if (uses("derive")) {
      result.untested.push_back(id.label + ": key agreement (the token has no CKM_ECDH1_DERIVE)");
    }
  }
}

}  // namespace

ImportResult apply_import(ImportPlan& plan, Session& s, const ImportLogins& logins) {
  ImportResult result;
  std::vector<std::pair<CK_OBJECT_HANDLE, CK_OBJECT_CLASS>> created;
  try {
    if (logins.to_write) logins.to_write();
    for (auto& o : plan.objects) {
      if (o.already_present) continue;
      CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
      CK_RV rv = create(s, o, h);
      if (rv != CKR_OK)
        throw Error::from_rv("C_CreateObject", rv, s.context() + " (writing the " + o.what + ")");
      created.emplace_back(h, o.cls);
      result.created.push_back(h);
    }
    if (logins.to_use) logins.to_use();
    verify(plan, s, logins, result);
  } catch (const Error& e) {
    roll_back(s, created, plan, logins);
    const std::string note = rollback_note(created, plan);
    if (note.empty()) throw;
    throw Error(e.kind(), e.what() + note, e.rv(), e.operation());
  } catch (...) {
    roll_back(s, created, plan, logins);
    throw;
  }
  return result;
}

}  // namespace token
