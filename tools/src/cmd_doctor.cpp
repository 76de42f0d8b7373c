// tokenkit doctor: what a mail client (NSS: Thunderbird, Evolution, Firefox)
// needs from a token, checked one finding at a time, each with its fix; and
// --fix for what can be repaired safely on the token (ids and labels).
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli.hpp"
#include "commands.hpp"
#include "mailclients.hpp"
#include "token/engine.hpp"
#include "token/error.hpp"
#include "token/ossl.hpp"

namespace fs = std::filesystem;

namespace tokenkit {

namespace {

using token::Bytes;
using token::Error;
using token::ErrorKind;

enum class Severity { Ok, Warning, Error };
const char* severity_name(Severity s) {
  return s == Severity::Ok ? "ok" : s == Severity::Warning ? "warning" : "error";
}

struct Finding {
  Severity severity;
  std::string check;   // "ids", "label", "key usage", ...
  std::string object;  // what it is about
  std::string message;
  std::string fix;          // empty when nothing is to be done
  bool repairable = false;  // --fix repairs it
};

// One object as the checks see it.
struct Obj {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_OBJECT_CLASS cls = 0;
  Bytes id, pub, der;
  std::string label;
  bool is_private = false;
  std::shared_ptr<X509> cert;
  bool is_ca = false;
  std::string describe() const {
    const char* what = cls == CKO_CERTIFICATE   ? "certificate"
                       : cls == CKO_PRIVATE_KEY ? "private key"
                                                : "public key";
    return std::string(what) + " \"" + label + "\" (id " +
           (id.empty() ? "none" : token::to_hex(id)) + ")";
  }
};

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

struct Repair {
  CK_OBJECT_HANDLE handle;
  std::string object;
  CK_ATTRIBUTE_TYPE attr;
  Bytes value;
  std::string what;
};

struct Report {
  std::vector<Finding> findings;
  std::vector<Repair> repairs;
  void add(Severity s, std::string check, std::string object, std::string message,
           std::string fix = {}) {
    findings.push_back(
        {s, std::move(check), std::move(object), std::move(message), std::move(fix)});
  }
  // Marks the last finding as one --fix repairs, with its repair.
  void repair(Repair rep) {
    findings.back().repairable = true;
    repairs.push_back(std::move(rep));
  }
  bool has_error(bool repaired) const {
    return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) {
      return f.severity == Severity::Error && !(repaired && f.repairable);
    });
  }
};

// The public key of a private key: its own, or that of the public-key object
// with its id (EC private keys often carry no point).
Bytes key_public(const Obj& k, const std::vector<Obj>& all) {
  if (!k.pub.empty()) return k.pub;
  for (const auto& o : all)
    if (o.cls == CKO_PUBLIC_KEY && o.id == k.id && !o.id.empty()) return o.pub;
  return {};
}

std::string cert_name(X509* x) {
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

// Key, public key and certificate: one CKA_ID, paired by public key.
void check_pairing(const std::vector<Obj>& objs, Report& r) {
  for (const auto& c : objs) {
    if (c.cls != CKO_CERTIFICATE || !c.cert || c.pub.empty()) continue;
    std::vector<const Obj*> keys;
    for (const auto& k : objs)
      if (k.cls == CKO_PRIVATE_KEY && key_public(k, objs) == c.pub) keys.push_back(&k);
    if (keys.empty()) {
      // Before login private keys are invisible; a CA certificate has none.
      continue;
    }
    if (keys.size() > 1) {
      r.add(Severity::Warning, "ids", c.describe(),
            std::to_string(keys.size()) + " private keys on the token hold this certificate's key",
            "remove the duplicate key objects (not repaired automatically)");
      continue;
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
    for (const auto& p : objs)
      if (p.cls == CKO_PUBLIC_KEY && p.pub == c.pub && p.id != k.id) {
        r.add(Severity::Error, "ids", p.describe(),
              "the public key of " + k.describe() + " has another CKA_ID",
              "tokenkit doctor --fix sets it to " + token::to_hex(k.id));
        r.repair({p.handle, p.describe(), CKA_ID, k.id,
                  "set CKA_ID of " + p.describe() + " to " + token::to_hex(k.id)});
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

struct CheckOptions {
  std::optional<std::string> email;
  std::vector<std::string> ca_files;
};

void check_chain(const Obj& c, const std::vector<Obj>& objs, const CheckOptions& o, Report& r) {
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

// A real signature and decryption (or key agreement) with the token's key.
void check_key_operations(const token::Session& s, const Obj& c, const Obj& key, Report& r) {
  token::Uri uri = token::Uri::parse("pkcs11:id=" + [&] {
    std::string pct;
    for (unsigned char b : key.id) {
      static const char* hex = "0123456789abcdef";
      pct += '%';
      pct += hex[b >> 4];
      pct += hex[b & 15];
    }
    return pct;
  }() + ";type=private");
  token::TokenKey k = token::open_private_key(s, uri);
  EVP_PKEY* pub = X509_get0_pubkey(c.cert.get());
  // Sign.
  {
    const unsigned char msg[] = "tokenkit doctor test signature";
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    std::size_t len = 0;
    Bytes sig;
    bool ok =
        EVP_DigestSignInit_ex(md, nullptr, "SHA256", k.libctx(), nullptr, k.pkey(), nullptr) == 1 &&
        EVP_DigestSign(md, nullptr, &len, msg, sizeof msg) == 1;
    if (ok) {
      sig.resize(len);
      ok = EVP_DigestSign(md, sig.data(), &len, msg, sizeof msg) == 1;
      sig.resize(len);
    }
    EVP_MD_CTX_free(md);
    bool verified = false;
    if (ok) {
      EVP_MD_CTX* v = EVP_MD_CTX_new();
      verified =
          EVP_DigestVerifyInit_ex(v, nullptr, "SHA256", nullptr, nullptr, pub, nullptr) == 1 &&
          EVP_DigestVerify(v, sig.data(), sig.size(), msg, sizeof msg) == 1;
      EVP_MD_CTX_free(v);
    }
    token::clear_engine_error();
    if (verified)
      r.add(Severity::Ok, "sign", key.describe(),
            "signed a test message; the certificate verifies it");
    else
      r.add(Severity::Error, "sign", key.describe(),
            ok ? "its test signature does not verify with " + c.describe() + ": they are not a pair"
               : "cannot sign (CKA_SIGN false, or the token refused)",
            "check the key's CKA_SIGN and that the certificate belongs to it");
  }
  // Decrypt (RSA, PKCS#1 v1.5 as NSS unwraps session keys) or derive (EC).
  unsigned char secret[32];
  RAND_bytes(secret, sizeof secret);
  bool ok = false;
  if (EVP_PKEY_is_a(pub, "RSA")) {
    EVP_PKEY_CTX* e = EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr);
    std::size_t elen = 0;
    Bytes ct;
    if (EVP_PKEY_encrypt_init(e) == 1 && EVP_PKEY_CTX_set_rsa_padding(e, RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_encrypt(e, nullptr, &elen, secret, sizeof secret) == 1) {
      ct.resize(elen);
      if (EVP_PKEY_encrypt(e, ct.data(), &elen, secret, sizeof secret) == 1) ct.resize(elen);
    }
    EVP_PKEY_CTX_free(e);
    EVP_PKEY_CTX* d = EVP_PKEY_CTX_new_from_pkey(k.libctx(), k.pkey(), nullptr);
    std::size_t dlen = 0;
    Bytes pt;
    if (d && EVP_PKEY_decrypt_init(d) == 1 &&
        EVP_PKEY_CTX_set_rsa_padding(d, RSA_PKCS1_PADDING) == 1 &&
        EVP_PKEY_decrypt(d, nullptr, &dlen, ct.data(), ct.size()) == 1) {
      pt.resize(dlen);
      if (EVP_PKEY_decrypt(d, pt.data(), &dlen, ct.data(), ct.size()) == 1) {
        pt.resize(dlen);
        ok = pt == Bytes(secret, secret + sizeof secret);
      }
    }
    EVP_PKEY_CTX_free(d);
  } else if (EVP_PKEY_is_a(pub, "EC")) {
    // An ephemeral key on the same curve, as an S/MIME sender makes one.
    EVP_PKEY* eph = nullptr;
    EVP_PKEY_CTX* g = EVP_PKEY_CTX_new_from_pkey(nullptr, pub, nullptr);
    if (EVP_PKEY_keygen_init(g) == 1) EVP_PKEY_keygen(g, &eph);
    EVP_PKEY_CTX_free(g);
    auto derive = [](EVP_PKEY* self, EVP_PKEY* peer, OSSL_LIB_CTX* lib) {
      Bytes z;
      EVP_PKEY_CTX* x = EVP_PKEY_CTX_new_from_pkey(lib, self, nullptr);
      std::size_t n = 0;
      if (x && EVP_PKEY_derive_init(x) == 1 && EVP_PKEY_derive_set_peer(x, peer) == 1 &&
          EVP_PKEY_derive(x, nullptr, &n) == 1) {
        z.resize(n);
        if (EVP_PKEY_derive(x, z.data(), &n) == 1)
          z.resize(n);
        else
          z.clear();
      }
      EVP_PKEY_CTX_free(x);
      return z;
    };
    if (eph) {
      Bytes a = derive(eph, pub, nullptr);
      Bytes b = derive(k.pkey(), eph, k.libctx());
      ok = !a.empty() && a == b;
      EVP_PKEY_free(eph);
    }
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

struct Places {
  std::optional<std::string> thunderbird, profile_dir, nss_db;
  bool p11kit = false;
};

void check_registration(const std::string& module, const Places& pl, Report& r) {
  auto in_db = [&](const std::string& dir) {
    auto text = mail::read_text(dir + "/pkcs11.txt");
    if (!text) return false;
    std::error_code ec;
    for (const auto& m : mail::parse_pkcs11_txt(*text))
      if (!m.library.empty() && (m.library == module || fs::equivalent(m.library, module, ec)))
        return true;
    return false;
  };
  int registered = 0;
  auto judge = [&](const std::string& where, bool yes, const std::string& fix) {
    if (yes) ++registered;
    r.add(yes ? Severity::Ok : Severity::Warning, "registered", where,
          yes ? "loads " + module : "does not load " + module, yes ? "" : fix);
  };
  const bool named = pl.thunderbird || pl.profile_dir || pl.nss_db || pl.p11kit;
  // The Thunderbird profile named, or the default one when there is one.
  std::optional<std::string> profile = pl.profile_dir;
  if (!profile && (pl.thunderbird || !named)) {
    const char* home = std::getenv("HOME");
    try {
      if (home) profile = mail::find_profile(home, pl.thunderbird.value_or("")).path;
    } catch (const Error&) {
      if (pl.thunderbird) throw;
    }
  }
  if (profile)
    judge("Thunderbird profile " + *profile, in_db(*profile),
          "tokenkit register --profile-dir " + *profile);
  std::string db;
  if (pl.nss_db)
    db = pl.nss_db->empty() ? mail::default_nss_db() : *pl.nss_db;
  else if (!named && std::getenv("HOME"))
    db = mail::default_nss_db();
  if (!db.empty() && (pl.nss_db || mail::nss_db_exists(db)))
    judge("NSS database " + db, in_db(db), "tokenkit register --nss-db " + db);
  if (pl.p11kit || !named) {
    bool yes = false;
    std::error_code ec;
    for (const auto& m : token::registered_modules())
      if (m.path == module || fs::equivalent(m.path, module, ec)) yes = true;
    if (yes || pl.p11kit) judge("p11-kit", yes, "tokenkit register --p11-kit");
  }
  if (registered == 0)
    r.add(
        Severity::Warning, "registered", module, "no mail client found that loads this module",
        "tokenkit register --thunderbird (Thunderbird), --nss-db (Evolution, Chromium), --p11-kit");
}

void print_report(const Report& r, std::ostream& out) {
  for (const auto& f : r.findings) {
    out << severity_name(f.severity) << ": [" << f.check << "] " << f.object << ": " << f.message
        << "\n";
    if (!f.fix.empty()) out << "    fix: " << f.fix << "\n";
  }
}

Json report_json(const Report& r) {
  Json j{{"errors", 0}, {"warnings", 0}, {"findings", Json::array()}};
  for (const auto& f : r.findings) {
    if (f.severity == Severity::Error) j["errors"] = j["errors"].get<int>() + 1;
    if (f.severity == Severity::Warning) j["warnings"] = j["warnings"].get<int>() + 1;
    j["findings"].push_back({{"severity", severity_name(f.severity)},
                             {"check", f.check},
                             {"object", f.object},
                             {"message", f.message},
                             {"fix", f.fix}});
  }
  return j;
}

bool pin_available(const PinOptions& pin, const token::Uri& uri) {
  return pin.login || std::getenv("TOKENKIT_PIN") || uri.pin_value() || uri.pin_source() ||
         ::isatty(0);
}

}  // namespace

int cmd_doctor(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("uri", po::value<std::string>(),
                                              "pkcs11: URI of the token")(
      "key", po::value<std::string>(), "pkcs11: URI of the key (or certificate) to check")(
      "email", po::value<std::string>(), "the address the certificate must carry")(
      "ca-file", po::value<std::vector<std::string>>(),
      "trusted CA certificates (PEM), repeatable")(
      "thunderbird", po::value<std::string>()->implicit_value(""),
      "check this Thunderbird profile (default: the default one)")(
      "profile-dir", po::value<std::string>(), "check this Thunderbird profile directory")(
      "nss-db", po::value<std::string>()->implicit_value(""), "check this NSS database")(
      "p11-kit", "check p11-kit's configuration")("fix", "repair ids and labels on the token")(
      "yes", "with --fix: do not ask")("json", "print JSON");
  add_token_options(d);
  add_pin_options(d);
  po::positional_options_description pos;
  pos.add("uri", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit doctor [URI] [--key URI] [--email ADDR] [--fix [--yes]]",
               "Checks what mail clients need from a token and prints each finding with its\n"
               "fix: key, public key and certificate share one CKA_ID; certificates have\n"
               "labels; key usage, emailProtection, address, validity, a chain to a trusted\n"
               "CA; a real signature and decryption with the key (after the PIN); certificates\n"
               "listable without login; the module registered where clients look. --fix\n"
               "repairs ids and labels on the token after showing the plan. Exits 1 when a\n"
               "finding is an error.",
               "tokenkit doctor --key 'pkcs11:token=mail;object=alice' --email alice@example.org",
               d);
    return kExitOk;
  }
  TokenOptions topts = token_options(p.vm);
  std::optional<std::string> key_uri;
  if (p.vm.count("key")) key_uri = p.vm["key"].as<std::string>();
  if (!topts.uri && key_uri) topts.uri = key_uri;
  PinOptions pin = pin_options(p.vm);
  CheckOptions co;
  if (p.vm.count("email")) co.email = p.vm["email"].as<std::string>();
  if (p.vm.count("ca-file")) co.ca_files = p.vm["ca-file"].as<std::vector<std::string>>();
  Places places;
  if (p.vm.count("thunderbird")) places.thunderbird = p.vm["thunderbird"].as<std::string>();
  if (p.vm.count("profile-dir")) places.profile_dir = p.vm["profile-dir"].as<std::string>();
  if (p.vm.count("nss-db")) places.nss_db = p.vm["nss-db"].as<std::string>();
  places.p11kit = p.vm.count("p11-kit") != 0;
  const bool fix = p.vm.count("fix") != 0;
  const bool json = p.vm.count("json") != 0;

  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id, fix);
  Report r;

  // Before login: what NSS sees when it lists certificates.
  const auto before = gather(session);
  const bool login_required = slot.token.flags & CKF_LOGIN_REQUIRED;
  if (!login_required || has_public_certificates_profile(session))
    r.add(Severity::Ok, "public certificates", session.context(),
          "certificates can be listed without login");
  else
    r.add(Severity::Warning, "public certificates", session.context(),
          "the token needs a login and does not say its certificates are public (no "
          "CKO_PROFILE CKP_PUBLIC_CERTIFICATES_TOKEN): NSS asks for the PIN just to list them",
          "a module that offers the profile object (tokenkit's does), or accept the prompt");

  std::vector<Obj> objs = before;
  bool logged_in = false;
  if (login_required && pin_available(pin, t.selector.uri)) {
    login(session, pin, t.selector.uri);
    logged_in = true;
    objs = gather(session);
  }
  // Certificates NSS cannot see before login.
  for (const auto& o : objs)
    if (o.cls == CKO_CERTIFICATE && std::none_of(before.begin(), before.end(), [&](const Obj& b) {
          return b.handle == o.handle;
        }))
      r.add(Severity::Error, "public certificates", o.describe(),
            "is private (CKA_PRIVATE true): NSS does not see it until the user logs in",
            "store certificates with CKA_PRIVATE false (tokenkit import-p12 does)");

  // The certificates to judge: the --key one, or each that is not a CA.
  std::vector<const Obj*> certs;
  if (key_uri) {
    auto kc = mail::certificate_for_key(session, token::Uri::parse(*key_uri));
    for (const auto& o : objs)
      if (o.handle == kc.handle) certs.push_back(&o);
  } else {
    // A certificate is the user's when the token holds its key (or, before
    // login, its public key); a CA certificate without one is not judged.
    for (const auto& o : objs) {
      if (o.cls != CKO_CERTIFICATE || !o.cert) continue;
      const bool has_key = std::any_of(objs.begin(), objs.end(), [&](const Obj& k) {
        return k.cls != CKO_CERTIFICATE && !o.pub.empty() && key_public(k, objs) == o.pub;
      });
      if (has_key || !o.is_ca) certs.push_back(&o);
    }
  }
  if (certs.empty())
    r.add(Severity::Error, "certificates", session.context(), "holds no user certificate",
          "tokenkit import-p12, or tokenkit csr and import-cert");

  check_labels(objs, r);
  check_pairing(objs, r);
  for (const Obj* c : certs) {
    check_certificate(*c, objs, co, r);
    if (!logged_in && login_required) {
      r.add(Severity::Warning, "sign", c->describe(), "key operations not tested: no PIN given",
            "give the PIN (--pin-file, --pin-env, TOKENKIT_PIN) to test signing and decryption");
      continue;
    }
    const Obj* key = nullptr;
    for (const auto& k : objs)
      if (k.cls == CKO_PRIVATE_KEY && key_public(k, objs) == c->pub) key = &k;
    if (!key) {
      r.add(Severity::Error, "key", c->describe(), "has no private key on this token",
            "import the key with its certificate (tokenkit import-p12)");
      continue;
    }
    if (key->id != c->id) continue;  // the ids finding says it; tested after --fix
    check_key_operations(session, *c, *key, r);
  }
  check_registration(t.module.path(), places, r);

  if (fix && !r.repairs.empty()) {
    std::ostream& plan = json ? std::cerr : out;
    plan << "Plan (" << r.repairs.size() << " repairs on " << session.context() << "):\n";
    for (const auto& rep : r.repairs) plan << "  " << rep.what << "\n";
    if (!p.vm.count("yes")) {
      if (!::isatty(0))
        throw Error(ErrorKind::Usage,
                    "--fix changes the token: confirm with --yes (no terminal to ask)");
      std::cerr << "Apply? [y/N] ";
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "yes") {
        plan << "Nothing changed.\n";
        return kExitFailure;
      }
    }
    if (!logged_in && login_required) login(session, pin, t.selector.uri);
    for (const auto& rep : r.repairs) {
      CK_ATTRIBUTE a{rep.attr, const_cast<unsigned char*>(rep.value.data()),
                     static_cast<CK_ULONG>(rep.value.size())};
      t.module.call("C_SetAttributeValue", t.module.functions()->C_SetAttributeValue,
                    rep.object + " on " + session.context(), session.handle(), rep.handle, &a,
                    CK_ULONG{1});
      plan << "  done: " << rep.what << "\n";
    }
    plan << "Run tokenkit doctor again to check.\n";
  }
  if (json) {
    Json j = report_json(r);
    j["token"] = token::pkcs11_text(slot.token.label);
    j["repaired"] = fix ? r.repairs.size() : 0;
    out << j.dump(2) << "\n";
  } else {
    print_report(r, out);
  }
  return r.has_error(fix && !r.repairs.empty()) ? kExitFailure : kExitOk;
}

}  // namespace tokenkit
