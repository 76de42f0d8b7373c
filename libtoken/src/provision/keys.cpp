#include "keys.hpp"

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509v3.h>

#include "token/error.hpp"
#include "token/secret.hpp"

namespace token::provision {

namespace {

Bytes bn_param(const EVP_PKEY* key, const char* name, std::size_t pad = 0) {
  BIGNUM* raw = nullptr;
  if (!EVP_PKEY_get_bn_param(key, name, &raw)) {
    throw Error(ErrorKind::Input, std::string("the key has no ") + name);
  }
  ossl::Bn bn(raw);
  std::size_t n = static_cast<std::size_t>(BN_num_bytes(bn.get()));
  Bytes out(std::max(n, pad));
  BN_bn2binpad(bn.get(), out.data(), static_cast<int>(out.size()));
  return out;
}

int curve_nid(const EVP_PKEY* key) {
  char name[64];
  if (!EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof name, nullptr)) {
    throw Error(ErrorKind::Input, "the EC key names no curve");
  }
  int nid = OBJ_sn2nid(name);
  if (nid == NID_undef) nid = EC_curve_nist2nid(name);
  if (nid == NID_undef) throw Error(ErrorKind::Input, std::string("unknown EC curve ") + name);
  return nid;
}

Bytes ec_params(const EVP_PKEY* key) {
  // PKCS#11 3.0 2.3.7: a Montgomery key's CKA_EC_PARAMS is the curve's OID.
  ASN1_OBJECT* oid = OBJ_nid2obj(EVP_PKEY_get_base_id(key) == EVP_PKEY_X25519 ? NID_X25519
                                                                               : curve_nid(key));
  int n = i2d_ASN1_OBJECT(oid, nullptr);
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  i2d_ASN1_OBJECT(oid, &p);
  return out;
}

template <class F>
Bytes der(F encode) {
  int n = encode(nullptr);
  if (n <= 0) throw Error(ErrorKind::Input, "cannot encode a certificate field");
  Bytes out(static_cast<std::size_t>(n));
  unsigned char* p = out.data();
  encode(&p);
  return out;
}

}  // namespace

KeyKind kind_of(const EVP_PKEY* key) {
  switch (EVP_PKEY_get_base_id(key)) {
    case EVP_PKEY_RSA: return KeyKind::Rsa;
    case EVP_PKEY_EC: return KeyKind::Ec;
    case EVP_PKEY_X25519: return KeyKind::X25519;
    default: return KeyKind::Unsupported;
  }
}

std::string describe_key(const EVP_PKEY* key) {
  switch (kind_of(key)) {
    case KeyKind::Rsa: return "RSA " + std::to_string(EVP_PKEY_get_bits(key));
    case KeyKind::Ec: {
      const char* nist = EC_curve_nid2nist(curve_nid(key));
      return std::string("EC ") + (nist ? nist : OBJ_nid2sn(curve_nid(key)));
    }
    default: return EVP_PKEY_get0_type_name(key) ? EVP_PKEY_get0_type_name(key) : "unknown";
  }
}

void add_private_components(AttributeTemplate& t, const EVP_PKEY* key) {
  if (kind_of(key) == KeyKind::Rsa) {
    t.add(CKA_KEY_TYPE, CK_ULONG(CKK_RSA))
        .add(CKA_MODULUS, bn_param(key, OSSL_PKEY_PARAM_RSA_N))
        .add(CKA_PUBLIC_EXPONENT, bn_param(key, OSSL_PKEY_PARAM_RSA_E))
        .add(CKA_PRIVATE_EXPONENT, bn_param(key, OSSL_PKEY_PARAM_RSA_D));
    add_crt_components(t, key);
  } else {
    const CK_ULONG type = kind_of(key) == KeyKind::X25519 ? CKK_EC_MONTGOMERY : CKK_EC;
    t.add(CKA_KEY_TYPE, type).add(CKA_EC_PARAMS, ec_params(key));
    add_crt_components(t, key);
  }
}

void add_crt_components(AttributeTemplate& t, const EVP_PKEY* key) {
  if (kind_of(key) == KeyKind::Rsa) {
    t.add(CKA_PRIME_1, bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR1))
        .add(CKA_PRIME_2, bn_param(key, OSSL_PKEY_PARAM_RSA_FACTOR2))
        .add(CKA_EXPONENT_1, bn_param(key, OSSL_PKEY_PARAM_RSA_EXPONENT1))
        .add(CKA_EXPONENT_2, bn_param(key, OSSL_PKEY_PARAM_RSA_EXPONENT2))
        .add(CKA_COEFFICIENT, bn_param(key, OSSL_PKEY_PARAM_RSA_COEFFICIENT1));
  } else if (kind_of(key) == KeyKind::X25519) {
    // PKCS#11 3.0 §2.3.7: CKA_VALUE is the 32-byte private key of RFC 7748.
    std::size_t n = 32;
    Bytes v(n);
    if (EVP_PKEY_get_raw_private_key(key, v.data(), &n) != 1 || n != 32)
      throw Error(ErrorKind::Input, "the X25519 key has no private value");
    t.add(CKA_VALUE, v);
    OPENSSL_cleanse(v.data(), v.size());
  } else {
    // PKCS#11 2.40 §2.3.4: CKA_VALUE is the private scalar d, big-endian;
    // padded to the order's length, as tokens compare lengths.
    const std::size_t len = static_cast<std::size_t>((EVP_PKEY_get_bits(key) + 7) / 8);
    t.add(CKA_VALUE, bn_param(key, OSSL_PKEY_PARAM_PRIV_KEY, len));
  }
}

AttributeTemplate crt_only(const AttributeTemplate& full) {
  return full.only(
      {CKA_CLASS,           CKA_KEY_TYPE,    CKA_TOKEN,       CKA_PRIVATE, CKA_SENSITIVE,
       CKA_PUBLIC_EXPONENT, CKA_EXTRACTABLE, CKA_ID,          CKA_LABEL,   CKA_SIGN,
       CKA_DECRYPT,         CKA_UNWRAP,      CKA_DERIVE,      CKA_PRIME_1, CKA_PRIME_2,
       CKA_EXPONENT_1,      CKA_EXPONENT_2,  CKA_COEFFICIENT, CKA_VALUE,   CKA_EC_PARAMS});
}

void add_public_components(AttributeTemplate& t, const EVP_PKEY* key) {
  if (kind_of(key) == KeyKind::Rsa) {
    t.add(CKA_KEY_TYPE, CK_ULONG(CKK_RSA))
        .add(CKA_MODULUS, bn_param(key, OSSL_PKEY_PARAM_RSA_N))
        .add(CKA_PUBLIC_EXPONENT, bn_param(key, OSSL_PKEY_PARAM_RSA_E));
    return;
  }
  std::size_t n = 0;
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0, &n);
  Bytes point(n);
  EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point.data(), n, &n);
  // CKA_EC_POINT is the DER encoding of an OCTET STRING holding the point.
  ASN1_OCTET_STRING* os = ASN1_OCTET_STRING_new();
  ASN1_OCTET_STRING_set(os, point.data(), static_cast<int>(point.size()));
  Bytes wrapped = der([os](unsigned char** p) { return i2d_ASN1_OCTET_STRING(os, p); });
  ASN1_OCTET_STRING_free(os);
  const CK_ULONG type = kind_of(key) == KeyKind::X25519 ? CKK_EC_MONTGOMERY : CKK_EC;
  t.add(CKA_KEY_TYPE, type).add(CKA_EC_PARAMS, ec_params(key)).add(CKA_EC_POINT, std::move(wrapped));
}

Bytes der_of(const X509* cert) {
  return der([cert](unsigned char** p) { return i2d_X509(cert, p); });
}
Bytes subject_der(const X509* cert) {
  return der([cert](unsigned char** p) { return i2d_X509_NAME(X509_get_subject_name(cert), p); });
}
Bytes issuer_der(const X509* cert) {
  return der([cert](unsigned char** p) { return i2d_X509_NAME(X509_get_issuer_name(cert), p); });
}
Bytes serial_der(const X509* cert) {
  return der([cert](unsigned char** p) { return i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), p); });
}

std::string subject_text(const X509* cert) {
  ossl::Bio b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  long n = BIO_get_mem_data(b.get(), &data);
  return std::string(data, static_cast<std::size_t>(std::max(n, 0L)));
}

std::string common_name(const X509* cert) {
  const X509_NAME* name = X509_get_subject_name(cert);
  int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (i < 0) return {};
  unsigned char* utf8 = nullptr;
  int n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
  if (n < 0) return {};
  std::string s(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(n));
  OPENSSL_free(utf8);
  return s;
}

std::string first_email(const X509* cert) {
  STACK_OF(OPENSSL_STRING)* emails = X509_get1_email(const_cast<X509*>(cert));
  std::string s = sk_OPENSSL_STRING_num(emails) > 0 ? sk_OPENSSL_STRING_value(emails, 0) : "";
  X509_email_free(emails);
  return s;
}

std::string sha256_fingerprint(const X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  return to_hex(Bytes(md, md + n));
}

Bytes sha1(const Bytes& data) {
  Bytes out(20);
  unsigned int n = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &n, EVP_sha1(), nullptr);
  return out;
}

AttributeTemplate cert_template(const X509* x, const std::string& label, const Bytes& id,
                                CK_ULONG category) {
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(CKO_CERTIFICATE))
      .add(CKA_CERTIFICATE_TYPE, CK_ULONG(CKC_X_509))
      .add_bool(CKA_TOKEN, true)
      .add_bool(CKA_PRIVATE, false)  // NSS lists public certificates without a PIN
      .add(CKA_LABEL, label)
      .add(CKA_ID, id)
      .add(CKA_SUBJECT, subject_der(x))
      .add(CKA_ISSUER, issuer_der(x))
      .add(CKA_SERIAL_NUMBER, serial_der(x))
      .add(CKA_VALUE, der_of(x))
      .add(CKA_CERTIFICATE_CATEGORY, category);
  return t;
}

Usage usage_of(const X509* cert, KeyKind kind) {
  Usage u;
  uint32_t ku = X509_get_key_usage(const_cast<X509*>(cert));
  if (ku == UINT32_MAX) {  // no keyUsage extension: anything the key type allows
    u.derive = kind == KeyKind::Ec || kind == KeyKind::X25519;
    u.decrypt = kind == KeyKind::Rsa;
    u.sign = kind != KeyKind::X25519;  // RFC 8410: an X25519 key only agrees keys
    return u;
  }
  u.sign = kind != KeyKind::X25519 && (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0;
  u.decrypt = kind == KeyKind::Rsa && (ku & (KU_KEY_ENCIPHERMENT | KU_DATA_ENCIPHERMENT)) != 0;
  u.derive = (kind == KeyKind::Ec || kind == KeyKind::X25519) && (ku & KU_KEY_AGREEMENT) != 0;
  return u;
}

}  // namespace token::provision
