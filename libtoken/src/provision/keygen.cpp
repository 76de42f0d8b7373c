// Key pairs generated on the token; certificates stored next to their key.
#include "token/keygen.hpp"

#include <openssl/core_names.h>
#include <openssl/objects.h>

#include <algorithm>

#include "keys.hpp"
#include "token/error.hpp"
#include "token/names.hpp"
#include "token/ossl.hpp"
#include "token/profile.hpp"

namespace token {

using namespace provision;

namespace {

// DER OIDs for CKA_EC_PARAMS.
Bytes curve_oid(const std::string& curve) {
  int nid = curve == "P-256"    ? NID_X9_62_prime256v1
            : curve == "P-384"  ? NID_secp384r1
            : curve == "P-521"  ? NID_secp521r1
            : curve == "x25519" ? NID_X25519
                                : NID_ED25519;
  ASN1_OBJECT* oid = OBJ_nid2obj(nid);
  Bytes out(static_cast<std::size_t>(i2d_ASN1_OBJECT(oid, nullptr)));
  unsigned char* p = out.data();
  i2d_ASN1_OBJECT(oid, &p);
  return out;
}

// The octets NSS hashes for its id: the modulus, or the EC point inside the
// DER OCTET STRING of CKA_EC_POINT.
Bytes public_octets(const Session& s, CK_OBJECT_HANDLE pub, KeySpec::Type type) {
  const CK_ATTRIBUTE_TYPE want[] = {CKA_MODULUS, CKA_EC_POINT};
  AttributeValues v = s.read(pub, want);
  if (type == KeySpec::Type::Rsa && v.bytes(CKA_MODULUS)) {
    Bytes n = *v.bytes(CKA_MODULUS);
    n.erase(n.begin(), std::find_if(n.begin(), n.end(), [](unsigned char c) { return c != 0; }));
    return n;
  }
  const Bytes* ec = v.bytes(CKA_EC_POINT);
  if (ec == nullptr) return {};  // not a key of this type
  const unsigned char* p = ec->data();
  ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(ec->size()));
  if (os == nullptr) return *ec;  // a bare point
  Bytes out(ASN1_STRING_get0_data(os), ASN1_STRING_get0_data(os) + ASN1_STRING_length(os));
  ASN1_OCTET_STRING_free(os);
  return out;
}

void set_id(Session& s, CK_OBJECT_HANDLE h, const Bytes& id) {
  AttributeTemplate t;
  t.add(CKA_ID, id);
  s.module().call("C_SetAttributeValue", s.module().functions()->C_SetAttributeValue, s.context(),
                  s.handle(), h, t.data(), t.size());
}

// Before C_GenerateKeyPair, what the token can be told: the mechanism it
// lists, the id a PIV card needs, and no second key under a taken id (a PIV
// slot holds one key: generating into it destroys the one there).
void check_keygen(const Session& s, const TokenProfile& profile, const KeySpec& k,
                  CK_MECHANISM_TYPE mech, const std::optional<Bytes>& id) {
  const auto mechs = s.module().mechanisms(s.slot());
  if (std::none_of(mechs.begin(), mechs.end(),
                   [mech](const MechanismInfo& m) { return m.type == mech; })) {
    std::string msg = s.context() + " cannot generate " + describe(k) +
                      " keys: its module lists no " + mechanism_name(mech);
    if (!profile.keygen_hint.empty()) msg += " (" + std::string(profile.keygen_hint) + ")";
    throw Error(ErrorKind::Token, msg);
  }
  if (profile.piv_slot_ids && (!id || piv_slot_name(*id).empty())) {
    throw Error(ErrorKind::Usage,
                s.context() + " (" + std::string(profile.name) +
                    ") names keys by PIV slot: choose one with --piv-slot 9a, 9c, "
                    "9d or 9e");
  }
  if (!id) return;
  AttributeTemplate taken;
  taken.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)).add(CKA_ID, *id);
  if (!s.find(taken).empty()) {
    const std::string slot = profile.piv_slot_ids ? " (PIV slot " + piv_slot_name(*id) + ")" : "";
    throw Error(ErrorKind::Usage, s.context() + " already holds a private key with id " +
                                      to_hex(*id) + slot +
                                      "; a new key there would replace or shadow it: choose "
                                      "another id or slot");
  }
}

}  // namespace

KeySpec parse_key_spec(const std::string& text) {
  std::string t = text;
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  KeySpec k;
  auto bad = [&text]() {
    return Error(ErrorKind::Usage, "unknown key type \"" + text +
                                       "\": use rsa:2048, rsa:3072, rsa:4096, ec:p256, ec:p384, "
                                       "ec:p521, ed25519 or x25519");
  };
  if (t == "rsa" || t.rfind("rsa:", 0) == 0) {
    k.type = KeySpec::Type::Rsa;
    if (t.size() > 4) {
      const std::string bits = t.substr(4);
      if (bits != "2048" && bits != "3072" && bits != "4096") throw bad();
      k.rsa_bits = static_cast<unsigned>(std::stoul(bits));
    }
  } else if (t == "ec" || t.rfind("ec:", 0) == 0) {
    k.type = KeySpec::Type::Ec;
    std::string c = t.size() > 3 ? t.substr(3) : "p256";
    c.erase(std::remove(c.begin(), c.end(), '-'), c.end());
    if (c == "p256" || c == "prime256v1")
      k.curve = "P-256";
    else if (c == "p384" || c == "secp384r1")
      k.curve = "P-384";
    else if (c == "p521" || c == "secp521r1")
      k.curve = "P-521";
    else
      throw bad();
  } else if (t == "ed25519") {
    k.type = KeySpec::Type::Ed25519;
  } else if (t == "x25519") {
    k.type = KeySpec::Type::X25519;
  } else {
    throw bad();
  }
  return k;
}

std::string describe(const KeySpec& k) {
  switch (k.type) {
    case KeySpec::Type::Rsa:
      return "RSA " + std::to_string(k.rsa_bits);
    case KeySpec::Type::Ec:
      return "EC " + k.curve;
    case KeySpec::Type::Ed25519:
      return "Ed25519";
    case KeySpec::Type::X25519:
      return "X25519";
  }
  return {};
}

GeneratedKey generate_key_pair(Session& s, const KeySpec& k, const std::string& label,
                               const std::optional<Bytes>& id) {
  const bool rsa = k.type == KeySpec::Type::Rsa;
  // An X25519 key agrees keys and nothing else (RFC 8410 section 3).
  const bool signs = k.type != KeySpec::Type::X25519;
  AttributeTemplate pub, priv;
  pub.add_bool(CKA_TOKEN, true)
      .add_bool(CKA_PRIVATE, false)
      .add(CKA_LABEL, label)
      .add_bool(CKA_VERIFY, signs);
  priv.add_bool(CKA_TOKEN, true)
      .add_bool(CKA_PRIVATE, true)
      .add_bool(CKA_SENSITIVE, true)
      .add_bool(CKA_EXTRACTABLE, false)
      .add(CKA_LABEL, label)
      .add_bool(CKA_SIGN, signs);
  if (id) {
    pub.add(CKA_ID, *id);
    priv.add(CKA_ID, *id);
  }
  const TokenProfile& profile = token_profile(s);
  CK_MECHANISM mech{CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  if (rsa) {
    pub.add(CKA_MODULUS_BITS, CK_ULONG(k.rsa_bits))
        .add(CKA_PUBLIC_EXPONENT, Bytes{0x01, 0x00, 0x01})
        .add_bool(CKA_ENCRYPT, true)
        .add_bool(CKA_WRAP, true);
    priv.add_bool(CKA_DECRYPT, true).add_bool(CKA_UNWRAP, true);
  } else if (k.type == KeySpec::Type::Ec) {
    mech.mechanism = CKM_EC_KEY_PAIR_GEN;
    pub.add(CKA_EC_PARAMS, curve_oid(k.curve));
    priv.add_bool(CKA_DERIVE, true);  // ECDH: how S/MIME decrypts to EC keys
  } else if (k.type == KeySpec::Type::X25519) {
    mech.mechanism = CKM_EC_MONTGOMERY_KEY_PAIR_GEN;
    pub.add(CKA_EC_PARAMS, curve_oid("x25519")).add_bool(CKA_ENCRYPT, false);
    // S/MIME decryption is ECDH with the sender's ephemeral key, not C_Decrypt.
    priv.add_bool(CKA_DERIVE, true).add_bool(CKA_DECRYPT, false).add_bool(CKA_UNWRAP, false);
  } else {
    mech.mechanism = CKM_EC_EDWARDS_KEY_PAIR_GEN;
    pub.add(CKA_EC_PARAMS, curve_oid("ed25519"));
  }
  check_keygen(s, profile, k, mech.mechanism, id);
  if (!profile.keygen_public_attributes.empty()) pub = pub.only(profile.keygen_public_attributes);
  if (!profile.keygen_private_attributes.empty())
    priv = priv.only(profile.keygen_private_attributes);
  GeneratedKey g;
  const Module& m = s.module();
  m.call("C_GenerateKeyPair", m.functions()->C_GenerateKeyPair,
         s.context() + " (" + describe(k) + ")", s.handle(), &mech, pub.data(), pub.size(),
         priv.data(), priv.size(), &g.public_key, &g.private_key);
  try {
    Bytes octets = public_octets(s, g.public_key, k.type);
    if (octets.empty()) {
      throw Error(ErrorKind::Token,
                  "the new public key on " + s.context() + " has no public value");
    }
    g.id = id ? *id : sha1(octets);
    if (!id) {
      set_id(s, g.public_key, g.id);
      set_id(s, g.private_key, g.id);
    }
  } catch (...) {
    // Half a key pair (no id, so no pairing) is worse than none.
    m.invoke("C_DestroyObject", m.functions()->C_DestroyObject, s.handle(), g.private_key);
    m.invoke("C_DestroyObject", m.functions()->C_DestroyObject, s.handle(), g.public_key);
    throw;
  }
  return g;
}

StoredCertificate import_certificate(Session& s, const Bytes& der,
                                     const std::optional<std::string>& label,
                                     const std::string& source) {
  const unsigned char* p = der.data();
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) throw Error(ErrorKind::Input, source + " is not an X.509 certificate");
  EVP_PKEY* cert_key = X509_get0_pubkey(x.get());
  const bool rsa = EVP_PKEY_get_base_id(cert_key) == EVP_PKEY_RSA;
  // What the token's public keys must equal.
  Bytes want;
  if (rsa) {
    BIGNUM* n = nullptr;
    EVP_PKEY_get_bn_param(cert_key, OSSL_PKEY_PARAM_RSA_N, &n);
    ossl::Bn owner(n);
    want.resize(static_cast<std::size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, want.data());
  } else {
    std::size_t len = 0;
    EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &len);
    want.resize(len);
    EVP_PKEY_get_octet_string_param(cert_key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, want.data(), len,
                                    &len);
  }
  AttributeTemplate pubs;
  pubs.add(CKA_CLASS, CK_ULONG(CKO_PUBLIC_KEY));
  for (CK_OBJECT_HANDLE h : s.find(pubs)) {
    const auto type = rsa ? KeySpec::Type::Rsa : KeySpec::Type::Ec;
    if (public_octets(s, h, type) != want) continue;
    const CK_ATTRIBUTE_TYPE attrs[] = {CKA_ID, CKA_LABEL};
    AttributeValues v = s.read(h, attrs);
    StoredCertificate out{v.bytes(CKA_ID) ? *v.bytes(CKA_ID) : Bytes{},
                          label ? *label : v.string_value(CKA_LABEL).value_or(""), false};
    if (out.label.empty()) out.label = common_name(x.get());
    AttributeTemplate same;
    same.add(CKA_CLASS, CK_ULONG(CKO_CERTIFICATE)).add(CKA_VALUE, der);
    if (!s.find(same).empty()) {
      out.already_present = true;
      return out;
    }
    AttributeTemplate t = cert_template(x.get(), out.label, out.id, 1);
    const TokenProfile& profile = token_profile(s);
    if (!profile.cert_attributes.empty()) t = t.only(profile.cert_attributes);
    CK_OBJECT_HANDLE made;
    s.module().call("C_CreateObject", s.module().functions()->C_CreateObject,
                    s.context() + " (writing the certificate from " + source + ")", s.handle(),
                    t.data(), t.size(), &made);
    return out;
  }
  throw Error(ErrorKind::NotFound, "no key on " + s.context() + " matches the certificate in " +
                                       source + " (" + subject_text(x.get()) + ")");
}

}  // namespace token
