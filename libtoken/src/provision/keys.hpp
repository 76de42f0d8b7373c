// OpenSSL keys and certificates as PKCS#11 attribute values.
#pragma once

#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/ossl.hpp"

namespace token::provision {

enum class KeyKind { Rsa, Ec, X25519, Unsupported };
KeyKind kind_of(const EVP_PKEY* key);
// "RSA 2048", "EC P-256", "X25519"
std::string describe_key(const EVP_PKEY* key);

// The private key's template: class, type, components. Sensitive values are
// written straight into the template (wiped with it).
void add_private_components(AttributeTemplate& t, const EVP_PKEY* key);
// The CRT-only template some hardware wants (ykcs11): the RSA CRT parts or
// the EC scalar, without the modulus and private exponent.
void add_crt_components(AttributeTemplate& t, const EVP_PKEY* key);
// `full`, a private-key template with every component, cut down to the
// CRT-only one (attributes other than components are kept).
AttributeTemplate crt_only(const AttributeTemplate& full);
void add_public_components(AttributeTemplate& t, const EVP_PKEY* key);

Bytes der_of(const X509* cert);
Bytes subject_der(const X509* cert);
Bytes issuer_der(const X509* cert);
Bytes serial_der(const X509* cert);  // DER INTEGER, as NSS wants CKA_SERIAL_NUMBER
std::string subject_text(const X509* cert);
std::string common_name(const X509* cert);
std::string first_email(const X509* cert);
std::string sha256_fingerprint(const X509* cert);
Bytes sha1(const Bytes& data);

// A certificate object as NSS wants it: public, with subject, issuer and
// serial; category 1 (the user's own) or 2 (an authority).
AttributeTemplate cert_template(const X509* x, const std::string& label, const Bytes& id,
                                CK_ULONG category);

// What the certificate's keyUsage allows (all, when it has none).
struct Usage {
  bool sign = true, decrypt = true, derive = true;
};
Usage usage_of(const X509* cert, KeyKind kind);

}  // namespace token::provision
