#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "cli.hpp"
#include "doctor.hpp"
#include "token/engine.hpp"
#include "token/error.hpp"

namespace tokenkit::doctor {

using token::Error;
using token::ErrorKind;

const char* severity_name(Severity s) {
  return s == Severity::Ok ? "ok" : s == Severity::Warning ? "warning" : "error";
}

namespace {
Bytes strip_leading_zeros(Bytes b) {
  auto it = std::find_if(b.begin(), b.end(), [](unsigned char c) { return c != 0; });
  return Bytes(it, b.end());
}

// CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40 section 2.3.3); some
// tokens store the bare point.
Bytes ec_point(const Bytes& v) {
  const unsigned char* p = v.data();
  ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(v.size()));
  if (!os || p != v.data() + v.size()) {
    ASN1_OCTET_STRING_free(os);
    return v;
  }
  Bytes out(os->data, os->data + os->length);
  ASN1_OCTET_STRING_free(os);
  return out;
}

// The public key of a certificate as tokens hold it: the RSA modulus, or the
// EC point.
Bytes cert_public(X509* x) {
  EVP_PKEY* k = X509_get0_pubkey(x);
  if (!k) return {};
  if (EVP_PKEY_is_a(k, "RSA")) {
    BIGNUM* n = nullptr;
    if (!EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n)) return {};
    Bytes b(static_cast<std::size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, b.data());
    BN_free(n);
    return b;
  }
  std::size_t len = 0;
  if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &len))
    return {};
  Bytes b(len);
  if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, b.data(), len, &len))
    return {};
  b.resize(len);
  return b;
}

}  // namespace

std::vector<Obj> gather(const token::Session& s) {
  std::vector<Obj> out;
  for (CK_OBJECT_CLASS cls : {CKO_CERTIFICATE, CKO_PRIVATE_KEY, CKO_PUBLIC_KEY}) {
    token::AttributeTemplate t;
    t.add(CKA_CLASS, cls);
    for (CK_OBJECT_HANDLE h : s.find(t)) {
      const CK_ATTRIBUTE_TYPE types[] = {
          CKA_ID,      CKA_LABEL,    CKA_PRIVATE,         CKA_KEY_TYPE,
          CKA_MODULUS, CKA_EC_POINT, CKA_CERTIFICATE_TYPE};
      auto v = s.read(h, types);
      Obj o;
      o.handle = h;
      o.cls = cls;
      if (const auto* b = v.bytes(CKA_ID)) o.id = *b;
      o.label = v.string_value(CKA_LABEL).value_or("");
      o.is_private = v.bool_value(CKA_PRIVATE).value_or(false);
      if (cls == CKO_CERTIFICATE) {
        if (v.ulong_value(CKA_CERTIFICATE_TYPE).value_or(CKC_X_509) != CKC_X_509) continue;
        const CK_ATTRIBUTE_TYPE val[] = {CKA_VALUE};
        auto d = s.read(h, val);
        if (const auto* b = d.bytes(CKA_VALUE)) o.der = *b;
        const unsigned char* p = o.der.data();
        X509* x = d2i_X509(nullptr, &p, static_cast<long>(o.der.size()));
        if (x) {
          o.cert.reset(x, X509_free);
          o.pub = cert_public(x);
          o.is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
        }
      } else if (const auto* m = v.bytes(CKA_MODULUS); m && !m->empty()) {
        o.pub = strip_leading_zeros(*m);
      } else if (const auto* e = v.bytes(CKA_EC_POINT); e && !e->empty()) {
        o.pub = ec_point(*e);
      }
      out.push_back(std::move(o));
    }
  }
  return out;
}

// The public key of a private key: its own, or that of the public-key object
// with its id (EC private keys often carry no point).
Bytes key_public(const Obj& k, const std::vector<Obj>& all) {
  if (!k.pub.empty()) return k.pub;
  for (const auto& o : all)
    if (o.cls == CKO_PUBLIC_KEY && o.id == k.id && !o.id.empty()) return o.pub;
  return {};
}

static std::string cert_name(X509* x) {
  for (const std::string& e : [&] {
         std::vector<std::string> v;
         STACK_OF(OPENSSL_STRING)* emails = X509_get1_email(x);
         for (int i = 0; i < sk_OPENSSL_STRING_num(emails); ++i)
           v.push_back(sk_OPENSSL_STRING_value(emails, i));
         X509_email_free(emails);
         return v;
       }())
    return e;
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) > 0)
    return cn;
  return {};
}

void check_pairing(const std::vector<Obj>& objs, Report& r) {
  for (const auto& k : objs) {
    if (k.cls != CKO_PRIVATE_KEY) continue;
    const Bytes pub = key_public(k, objs);
    const bool has_cert = std::any_of(objs.begin(), objs.end(), [&](const Obj& c) {
      return c.cls == CKO_CERTIFICATE && (pub.empty() ? c.id == k.id : c.pub == pub);
    });
    if (!has_cert)
      r.add(Severity::Warning, "ids", k.describe(),
            "has no certificate on the token: mail clients offer certificates, not keys",
            "tokenkit csr for it, then tokenkit import-cert with what the CA returns");
  }
  for (const auto& c : objs) {
    if (c.cls != CKO_CERTIFICATE || !c.cert || c.pub.empty()) continue;
    std::vector<const Obj*> keys, pubs;
    for (const auto& k : objs) {
      if (k.cls == CKO_PRIVATE_KEY && key_public(k, objs) == c.pub) keys.push_back(&k);
      if (k.cls == CKO_PUBLIC_KEY && k.pub == c.pub) pubs.push_back(&k);
    }
    if (keys.size() > 1) {
      r.add(Severity::Warning, "ids", c.describe(),
            std::to_string(keys.size()) + " private keys on the token hold this certificate's key",
            "remove the duplicate key objects (not repaired automatically)");
      continue;
    }
    if (keys.empty()) {
      // Before login the private key is invisible: its public key speaks
      // for it, but only the key itself makes a repair safe.
      for (const Obj* p : pubs)
        if (p->id != c.id)
          r.add(Severity::Error, "ids", c.describe(),
                "its public key is " + p->describe() +
                    ", with another CKA_ID: NSS pairs keys and certificates only by equal CKA_ID",
                "give the PIN and run tokenkit doctor --fix");
      continue;  // a CA certificate has no key here
    }
    const Obj& k = *keys[0];
    if (c.id == k.id) {
      r.add(Severity::Ok, "ids", c.describe(), "shares its CKA_ID with " + k.describe());
    } else {
      r.add(Severity::Error, "ids", c.describe(),
            "its key is " + k.describe() +
                ", with another CKA_ID: NSS pairs keys and certificates only by equal CKA_ID, so "
                "Thunderbird does not offer this certificate",
            "tokenkit doctor --fix sets the certificate's CKA_ID to " + token::to_hex(k.id));
      r.repair({c.handle, c.describe(), CKA_ID, k.id,
                "set CKA_ID of " + c.describe() + " to " + token::to_hex(k.id)});
    }
    for (const Obj* p : pubs)
      if (p->id != k.id) {
        r.add(Severity::Error, "ids", p->describe(),
              "the public key of " + k.describe() + " has another CKA_ID",
              "tokenkit doctor --fix sets it to " + token::to_hex(k.id));
        r.repair({p->handle, p->describe(), CKA_ID, k.id,
                  "set CKA_ID of " + p->describe() + " to " + token::to_hex(k.id)});
      }
  }
}

void check_labels(const std::vector<Obj>& objs, Report& r) {
  for (const auto& c : objs) {
    if (c.cls != CKO_CERTIFICATE) continue;
    if (!c.label.empty()) {
      r.add(Severity::Ok, "label", c.describe(),
            "has a label (NSS nickname \"TOKEN:" + c.label + "\")");
      continue;
    }
    // The key's label, else the certificate's address or common name.
    std::string label;
    for (const auto& k : objs)
      if (k.cls == CKO_PRIVATE_KEY && !k.id.empty() && k.id == c.id && !k.label.empty())
        label = k.label;
    if (label.empty() && c.cert) label = cert_name(c.cert.get());
    if (label.empty()) label = "certificate-" + token::to_hex(c.id);
    r.add(Severity::Error, "label", c.describe(),
          "has an empty CKA_LABEL: NSS never makes a certificate without a nickname the user's own",
          "tokenkit doctor --fix labels it \"" + label + "\"");
    r.repair({c.handle, c.describe(), CKA_LABEL, Bytes(label.begin(), label.end()),
              "set CKA_LABEL of " + c.describe() + " to \"" + label + "\""});
  }
}

static void check_chain(const Obj& c, const std::vector<Obj>& objs, const CheckOptions& o,
                        Report& r) {
  std::unique_ptr<X509_STORE, decltype(&X509_STORE_free)> store(X509_STORE_new(), X509_STORE_free);
  X509_STORE_set_default_paths(store.get());
  for (const auto& f : o.ca_files)
    if (X509_STORE_load_file(store.get(), f.c_str()) != 1)
      throw Error(ErrorKind::Io, "cannot read CA certificates from " + f);
  // CA certificates on the token count as trusted only as intermediates:
  // a client trusts its own store, not the token.
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (const auto& a : objs)
    if (a.cert && a.handle != c.handle) sk_X509_push(untrusted, a.cert.get());
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store.get(), c.cert.get(), untrusted);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SMIME_SIGN);
  const bool ok = X509_verify_cert(ctx) == 1;
  const int err = X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  sk_X509_free(untrusted);
  if (ok) {
    r.add(Severity::Ok, "chain", c.describe(), "chains to a trusted CA");
    return;
  }
  // Dates and usages have their own findings; here only the chain.
  if (err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID ||
      err == X509_V_ERR_INVALID_PURPOSE) {
    r.add(Severity::Ok, "chain", c.describe(), "chain itself found (see the other findings)");
    return;
  }
  r.add(Severity::Error, "chain", c.describe(),
        std::string("no chain to a trusted CA: ") + X509_verify_cert_error_string(err),
        "import the issuing CA into the mail client (Thunderbird: Settings > Certificates > "
        "Authorities) or name it with --ca-file; keep intermediates on the token");
}

void check_certificate(const Obj& c, const std::vector<Obj>& objs, const CheckOptions& o,
                       Report& r) {
  X509* x = c.cert.get();
  const uint32_t ku = X509_get_key_usage(x);
  const bool sign = ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION);
  const bool enc = ku & (KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT);
  if (sign && enc)
    r.add(Severity::Ok, "key usage", c.describe(), "allows signing and key encipherment/agreement");
  else
    r.add(Severity::Error, "key usage", c.describe(),
          std::string("its key usage lacks ") + (sign ? "" : "digitalSignature") +
              (!sign && !enc ? " and " : "") + (enc ? "" : "keyEncipherment/keyAgreement") +
              ": mail clients will not " + (sign ? "encrypt to" : "sign with") + " it",
          "have the CA issue a certificate with keyUsage digitalSignature, keyEncipherment (RSA) "
          "or keyAgreement (EC)");
  const uint32_t xku = X509_get_extended_key_usage(x);
  if (xku & XKU_SMIME)
    r.add(Severity::Ok, "email protection", c.describe(), "allows email protection");
  else
    r.add(Severity::Error, "email protection", c.describe(),
          "its extended key usage lacks emailProtection: Thunderbird neither signs nor decrypts "
          "with it",
          "have the CA issue a certificate with extendedKeyUsage emailProtection");
  std::vector<std::string> emails;
  STACK_OF(OPENSSL_STRING)* es = X509_get1_email(x);
  for (int i = 0; i < sk_OPENSSL_STRING_num(es); ++i)
    emails.push_back(sk_OPENSSL_STRING_value(es, i));
  X509_email_free(es);
  if (o.email) {
    if (X509_check_email(x, o.email->c_str(), o.email->size(), 0) == 1)
      r.add(Severity::Ok, "email", c.describe(), "carries " + *o.email);
    else
      r.add(Severity::Error, "email", c.describe(),
            "does not carry " + *o.email +
                " (it has: " + (emails.empty() ? "none" : join(emails, ", ")) +
                "): mail from that address cannot be signed with it",
            "use a certificate issued for " + *o.email);
  } else if (emails.empty()) {
    r.add(Severity::Warning, "email", c.describe(), "carries no email address",
          "mail clients match certificates to senders by address; get one issued with it");
  }
  const int before = X509_cmp_current_time(X509_get0_notBefore(x));
  const int after = X509_cmp_current_time(X509_get0_notAfter(x));
  if (before > 0)
    r.add(Severity::Error, "validity", c.describe(), "is not valid yet",
          "wait, or check the clock");
  else if (after < 0)
    r.add(Severity::Error, "validity", c.describe(), "has expired",
          "renew it: tokenkit csr, then tokenkit import-cert");
  else
    r.add(Severity::Ok, "validity", c.describe(), "is valid today");
  check_chain(c, objs, o, r);
}

namespace {

// Signs a test message with the token key (SHA-256) and verifies it with
// the certificate's public key; nullopt when the token would not sign.
std::optional<bool> test_sign(const token::TokenKey& k, EVP_PKEY* pub) {
  const unsigned char msg[] = "tokenkit doctor test signature";
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::size_t len = 0;
  if (EVP_DigestSignInit_ex(md.get(), nullptr, "SHA256", k.libctx(), nullptr, k.pkey(), nullptr) !=
          1 ||
      EVP_DigestSign(md.get(), nullptr, &len, msg, sizeof msg) != 1)
    return std::nullopt;
  Bytes sig(len);
  if (EVP_DigestSign(md.get(), sig.data(), &len, msg, sizeof msg) != 1) return std::nullopt;
  sig.resize(len);
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> v(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  return EVP_DigestVerifyInit_ex(v.get(), nullptr, "SHA256", nullptr, nullptr, pub, nullptr) == 1 &&
         EVP_DigestVerify(v.get(), sig.data(), sig.size(), msg, sizeof msg) == 1;
}

// A random secret encrypted to the certificate with RSA PKCS#1 v1.5 (as
// NSS wraps S/MIME session keys), decrypted by the token key.
bool test_rsa_decrypt(const token::TokenKey& k, EVP_PKEY* pub) {
  unsigned char secret[32];
  if (RAND_bytes(secret, sizeof secret) != 1) return false;
  using Ctx = std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)>;
  Ctx e(EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr), EVP_PKEY_CTX_free);
  std::size_t elen = 0;
  if (!e || EVP_PKEY_encrypt_init(e.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(e.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_encrypt(e.get(), nullptr, &elen, secret, sizeof secret) != 1)
    return false;
  Bytes ct(elen);
  if (EVP_PKEY_encrypt(e.get(), ct.data(), &elen, secret, sizeof secret) != 1) return false;
  ct.resize(elen);
  Ctx d(EVP_PKEY_CTX_new_from_pkey(k.libctx(), k.pkey(), nullptr), EVP_PKEY_CTX_free);
  std::size_t dlen = 0;
  if (!d || EVP_PKEY_decrypt_init(d.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(d.get(), RSA_PKCS1_PADDING) != 1 ||
      EVP_PKEY_decrypt(d.get(), nullptr, &dlen, ct.data(), ct.size()) != 1)
    return false;
  Bytes pt(dlen);
  if (EVP_PKEY_decrypt(d.get(), pt.data(), &dlen, ct.data(), ct.size()) != 1) return false;
  pt.resize(dlen);
  return pt == Bytes(secret, secret + sizeof secret);
}

Bytes derive(EVP_PKEY* self, EVP_PKEY* peer, OSSL_LIB_CTX* lib) {
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> x(
      EVP_PKEY_CTX_new_from_pkey(lib, self, nullptr), EVP_PKEY_CTX_free);
  std::size_t n = 0;
  if (!x || EVP_PKEY_derive_init(x.get()) != 1 || EVP_PKEY_derive_set_peer(x.get(), peer) != 1 ||
      EVP_PKEY_derive(x.get(), nullptr, &n) != 1)
    return {};
  Bytes z(n);
  if (EVP_PKEY_derive(x.get(), z.data(), &n) != 1) return {};
  z.resize(n);
  return z;
}

// ECDH as an S/MIME sender does it: an ephemeral key on the certificate's
// curve; the token key must agree on the same secret.
bool test_ec_agree(const token::TokenKey& k, EVP_PKEY* pub) {
  EVP_PKEY* eph = nullptr;
  std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> g(
      EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr), EVP_PKEY_CTX_free);
  if (!g || EVP_PKEY_keygen_init(g.get()) != 1 || EVP_PKEY_keygen(g.get(), &eph) != 1) return false;
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> e(eph, EVP_PKEY_free);
  const Bytes a = derive(eph, pub, nullptr);
  const Bytes b = derive(k.pkey(), eph, k.libctx());
  return !a.empty() && a == b;
}

std::string uri_id(const Bytes& id) {
  std::string pct;
  static const char* hex = "0123456789abcdef";
  for (unsigned char b : id) {
    pct += '%';
    pct += hex[b >> 4];
    pct += hex[b & 15];
  }
  return pct;
}

}  // namespace

void check_key_operations(const token::Session& s, const Obj& c, const Obj& key,
                          const token::KeyOptions& ko, Report& r) {
  if (key.id.empty()) {
    r.add(Severity::Error, "sign", key.describe(), "has no CKA_ID, so NSS pairs it with nothing",
          "re-import the key with its certificate (tokenkit import-p12)");
    return;
  }
  std::optional<token::TokenKey> k;
  try {
    k.emplace(token::open_private_key(
        s, token::Uri::parse("pkcs11:id=" + uri_id(key.id) + ";type=private"), ko));
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::PinIncorrect || e.kind() == ErrorKind::PinLocked) throw;
    r.add(Severity::Error, "sign", key.describe(), std::string("cannot be used: ") + e.what(),
          "one private key per CKA_ID, usable after login");
    return;
  }
  EVP_PKEY* pub = X509_get0_pubkey(c.cert.get());
  const std::optional<bool> signed_ok = test_sign(*k, pub);
  token::clear_engine_error();
  if (signed_ok.value_or(false))
    r.add(Severity::Ok, "sign", key.describe(),
          "signed a test message; the certificate verifies it");
  else
    r.add(Severity::Error, "sign", key.describe(),
          signed_ok ? "its test signature does not verify with " + c.describe() + ": not a pair"
                    : "cannot sign (CKA_SIGN false, or the token refused)",
          "check the key's CKA_SIGN and that the certificate belongs to it");
  bool ok = false;
  if (EVP_PKEY_is_a(pub, "RSA")) {
    ok = test_rsa_decrypt(*k, pub);
  } else if (EVP_PKEY_is_a(pub, "EC")) {
    ok = test_ec_agree(*k, pub);
  } else {
    r.add(Severity::Warning, "decrypt", key.describe(), "key type not tested for decryption");
    return;
  }
  token::clear_engine_error();
  if (ok)
    r.add(Severity::Ok, "decrypt", key.describe(), "decrypted (or agreed) a test secret");
  else
    r.add(Severity::Error, "decrypt", key.describe(),
          "cannot decrypt a test secret encrypted to its certificate",
          "check CKA_DECRYPT/CKA_UNWRAP (RSA) or CKA_DERIVE (EC) on the key");
}

bool has_public_certificates_profile(const token::Session& s) {
  token::AttributeTemplate t;
  t.add(CKA_CLASS, static_cast<CK_ULONG>(CKO_PROFILE));
  for (CK_OBJECT_HANDLE h : s.find(t)) {
    const CK_ATTRIBUTE_TYPE types[] = {CKA_PROFILE_ID};
    if (s.read(h, types).ulong_value(CKA_PROFILE_ID) == CKP_PUBLIC_CERTIFICATES_TOKEN) return true;
  }
  return false;
}

}  // namespace tokenkit::doctor
