// plan_import: what an import will write, decided before anything is written.
#include <openssl/asn1.h>
#include <openssl/core_names.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <optional>

#include "keys.hpp"
#include "token/error.hpp"
#include "token/provision.hpp"

namespace token {

using namespace provision;

Bytes nss_key_id(const EVP_PKEY* key) {
  if (kind_of(key) == KeyKind::Rsa) {
    BIGNUM* n = nullptr;
    EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_RSA_N, &n);
    ossl::Bn owner(n);
    Bytes mod(static_cast<std::size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, mod.data());
    return sha1(mod);
  }
  std::size_t len = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &len);
  Bytes point(len);
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), len, &len);
  return sha1(point);
}

namespace {

std::string label_for(const P12Key& key, const P12Cert& cert) {
  if (!key.friendly_name.empty()) return key.friendly_name;
  if (!cert.friendly_name.empty()) return cert.friendly_name;
  if (auto cn = common_name(cert.cert.get()); !cn.empty()) return cn;
  if (auto e = first_email(cert.cert.get()); !e.empty()) return e;
  return "key-" + to_hex(nss_key_id(key.key.get()));
}

// Handles of objects of `cls` with this id already on the token.
std::vector<CK_OBJECT_HANDLE> with_id(const Session& s, CK_OBJECT_CLASS cls, const Bytes& id) {
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(cls)).add(CKA_ID, id);
  return s.find(t);
}

bool cert_on_token(const Session& s, const X509* x) {
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(CKO_CERTIFICATE)).add(CKA_VALUE, der_of(x));
  return !s.find(t).empty();
}

// Whether the private key under `id` on the token is `k` itself, judged by
// the public value NSS's id hashes (the modulus, or the EC point) of the
// public key object with that id, else of the private key object. nullopt
// when the token shows neither.
std::optional<bool> same_key_there(const Session& s, const Bytes& id, const EVP_PKEY* k) {
  const Bytes want = nss_key_id(k);
  for (CK_OBJECT_CLASS cls : {CKO_PUBLIC_KEY, CKO_PRIVATE_KEY}) {
    for (CK_OBJECT_HANDLE h : with_id(s, cls, id)) {
      const CK_ATTRIBUTE_TYPE attrs[] = {CKA_MODULUS, CKA_EC_POINT};
      const AttributeValues v = s.read(h, attrs);
      if (const Bytes* n = v.bytes(CKA_MODULUS); n != nullptr && !n->empty()) {
        Bytes m(std::find_if(n->begin(), n->end(), [](unsigned char c) { return c != 0; }),
                n->end());
        return sha1(m) == want;
      }
      if (const Bytes* p = v.bytes(CKA_EC_POINT); p != nullptr && !p->empty()) {
        // DER OCTET STRING around the point (PKCS#11 2.40), or the bare point.
        const unsigned char* d = p->data();
        ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &d, static_cast<long>(p->size()));
        Bytes point = *p;
        if (os != nullptr) {
          point.assign(ASN1_STRING_get0_data(os),
                       ASN1_STRING_get0_data(os) + ASN1_STRING_length(os));
          ASN1_OCTET_STRING_free(os);
        }
        return sha1(point) == want;
      }
    }
  }
  return std::nullopt;
}

void plan_identity(ImportPlan& plan, const P12Key& key, const P12Cert& cert, const Session& s,
                   const ImportOptions& opts) {
  const EVP_PKEY* k = key.key.get();
  const X509* x = cert.cert.get();
  const KeyKind kind = kind_of(k);
  PlannedIdentity id;
  id.id = opts.id ? *opts.id : nss_key_id(k);
  id.label = opts.label ? *opts.label : label_for(key, cert);
  id.subject = subject_text(x);
  id.fingerprint_sha256 = sha256_fingerprint(x);
  const Usage use = usage_of(x, kind);
  if (use.sign) id.usage.emplace_back("sign");
  if (use.decrypt) id.usage.insert(id.usage.end(), {"decrypt", "unwrap"});
  if (use.derive) id.usage.emplace_back("derive");

  auto keys_there = with_id(s, CKO_PRIVATE_KEY, id.id);
  bool key_there = false;
  if (!keys_there.empty()) {
    // The same identity imported before (a re-run) is fine; anything else
    // under this id would leave NSS pairing the wrong key and certificate.
    if (cert_on_token(s, x) && !with_id(s, CKO_CERTIFICATE, id.id).empty()) {
      id.already_present = true;
      plan.identities.push_back(std::move(id));
      return;
    }
    // This key without its certificate: a run that stopped midway (the token
    // pulled out, a PIV card that cannot delete the key it wrote). Finish it.
    if (same_key_there(s, id.id, k) != true) {
      throw Error(ErrorKind::Conflict, s.context() +
                                           " already holds a different private key with id " +
                                           to_hex(id.id) + "; choose another with --id");
    }
    key_there = true;
  }
  const std::string desc = describe_key(k);
  const std::string slot = plan.profile.piv_slot_ids ? " in PIV slot " + piv_slot_name(id.id) : "";
  PlannedObject priv{CKO_PRIVATE_KEY, id.label, id.id, desc + " private key" + slot, key_there, {}};
  priv.attrs.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY))
      .add_bool(CKA_TOKEN, true)
      .add_bool(CKA_PRIVATE, true)
      .add_bool(CKA_SENSITIVE, true)
      .add_bool(CKA_EXTRACTABLE, opts.extractable)
      .add(CKA_ID, id.id)
      .add(CKA_LABEL, id.label)
      .add(CKA_SUBJECT, subject_der(x))
      .add_bool(CKA_SIGN, use.sign)
      .add_bool(CKA_DECRYPT, use.decrypt)
      .add_bool(CKA_UNWRAP, use.decrypt)
      .add_bool(CKA_DERIVE, use.derive);
  add_private_components(priv.attrs, k);
  if (!plan.profile.key_attributes.empty())
    priv.attrs = priv.attrs.only(plan.profile.key_attributes);

  PlannedObject pub{CKO_PUBLIC_KEY,
                    id.label,
                    id.id,
                    desc + " public key",
                    key_there && !with_id(s, CKO_PUBLIC_KEY, id.id).empty(),
                    {}};
  pub.attrs.add(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY))
      .add_bool(CKA_TOKEN, true)
      .add_bool(CKA_PRIVATE, false)
      .add(CKA_ID, id.id)
      .add(CKA_LABEL, id.label)
      .add(CKA_SUBJECT, subject_der(x))
      .add_bool(CKA_VERIFY, use.sign)
      .add_bool(CKA_ENCRYPT, use.decrypt)
      .add_bool(CKA_WRAP, use.decrypt)
      .add_bool(CKA_DERIVE, use.derive);
  add_public_components(pub.attrs, k);

  PlannedObject crt{CKO_CERTIFICATE, id.label,
                    id.id,           "certificate " + id.subject,
                    false,           cert_template(x, id.label, id.id, 1)};
  if (!plan.profile.cert_attributes.empty())
    crt.attrs = crt.attrs.only(plan.profile.cert_attributes);
  plan.objects.push_back(std::move(priv));
  if (plan.profile.writes_public_key) plan.objects.push_back(std::move(pub));
  plan.objects.push_back(std::move(crt));
  plan.identities.push_back(std::move(id));
}

// A PIV card keeps keys in slots, and ykcs11 names each slot by a one-byte
// CKA_ID; an NSS-style id (20 bytes of SHA-1) names no slot.
void check_piv_id(const ImportOptions& opts, const std::string& context) {
  const char* choose =
      "choose the PIV slot with --piv-slot 9a|9c|9d|9e (or --id 01..04; "
      "05..18 for the retired slots 82..95)";
  if (!opts.id) {
    throw Error(ErrorKind::Usage,
                context + " is a PIV card, which keeps keys in fixed slots: " + choose);
  }
  if (piv_slot_name(*opts.id).empty()) {
    throw Error(ErrorKind::Usage,
                "id " + to_hex(*opts.id) + " names no PIV slot on " + context +
                    (opts.id->size() == 20 ? " (an NSS-style SHA-1 id cannot be used "
                                             "on a PIV card)"
                                           : "") +
                    ": " + choose);
  }
}

}  // namespace

ImportPlan plan_import(const P12Contents& p12, const Session& s, const ImportOptions& opts,
                       const std::string& source) {
  if (p12.keys.empty()) throw Error(ErrorKind::Input, source + " holds no private key");
  if (opts.id && p12.keys.size() > 1) {
    throw Error(ErrorKind::Usage, source + " holds " + std::to_string(p12.keys.size()) +
                                      " keys: --id can name only one");
  }
  ImportPlan plan;
  plan.profile = token_profile(s);
  if (plan.profile.import != ImportSupport::Yes) {
    throw Error(ErrorKind::Token,
                s.context() + " (" + std::string(plan.profile.name) +
                    ") cannot take an imported key: " + std::string(plan.profile.refusal));
  }
  if (plan.profile.piv_slot_ids) check_piv_id(opts, s.context());
  std::vector<bool> used(p12.certs.size(), false);
  for (std::size_t k = 0; k < p12.keys.size(); ++k) {
    const EVP_PKEY* key = p12.keys[k].key.get();
    if (kind_of(key) == KeyKind::Unsupported) {
      throw Error(ErrorKind::Input, "key " + std::to_string(k + 1) + " in " + source + " is " +
                                        describe_key(key) +
                                        ": tokenkit imports RSA, EC and X25519 keys");
    }
    std::size_t match = p12.certs.size();
    for (std::size_t c = 0; c < p12.certs.size() && match == p12.certs.size(); ++c) {
      if (EVP_PKEY_eq(key, X509_get0_pubkey(p12.certs[c].cert.get())) == 1) match = c;
    }
    if (match == p12.certs.size()) {
      throw Error(ErrorKind::Verification,
                  "key " + std::to_string(k + 1) + " (" + describe_key(key) + ") in " + source +
                      " matches none of its certificates: not importing a key that no "
                      "certificate vouches for");
    }
    used[match] = true;
    plan_identity(plan, p12.keys[k], p12.certs[match], s, opts);
  }
  // A PIV card holds only the certificates of its key slots: no place for CAs.
  const bool chain = opts.chain && !plan.profile.piv_slot_ids;
  if (opts.chain && !chain && p12.certs.size() > p12.keys.size()) {
    plan.notes.push_back(
        "the CA certificates are not stored: a PIV card holds only the "
        "certificates of its key slots");
  }
  for (std::size_t c = 0; chain && c < p12.certs.size(); ++c) {
    const X509* x = p12.certs[c].cert.get();
    if (used[c] || X509_check_ca(const_cast<X509*>(x)) == 0) continue;
    std::string label = common_name(x);
    if (label.empty()) label = subject_text(x);
    Bytes id = sha1(der_of(x));
    id.resize(8);  // a short, stable id that never collides with a key's
    PlannedObject ca{CKO_CERTIFICATE,
                     label,
                     id,
                     "CA certificate " + subject_text(x),
                     cert_on_token(s, x),
                     cert_template(x, label, id, 2)};
    plan.objects.push_back(std::move(ca));
  }
  return plan;
}

}  // namespace token
