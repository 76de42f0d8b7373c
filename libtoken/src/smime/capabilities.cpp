// What a correspondent's SMIMECapabilities (RFC 8551 section 2.5.2) say
// about the content-encryption algorithms tokenkit can use.
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include <memory>

#include "token/smime.hpp"

namespace token::smime {

namespace {

struct AlgorsFree {
  void operator()(X509_ALGORS* a) const { sk_X509_ALGOR_pop_free(a, X509_ALGOR_free); }
};

}  // namespace

// SMIMECapabilities ::= SEQUENCE OF SMIMECapability
// SMIMECapability ::= SEQUENCE { capabilityID OBJECT IDENTIFIER,
//                                parameters ANY DEFINED BY capabilityID OPTIONAL }
// which is the shape of a SEQUENCE OF AlgorithmIdentifier (OpenSSL reads it
// the same way in PKCS7_get_smimecap).
ContentCiphers announced_ciphers(std::string_view der) {
  ContentCiphers c;
  if (der.empty() || der.size() > kMaxCapabilitiesBytes) return c;
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  const unsigned char* end = p + der.size();
  std::unique_ptr<X509_ALGORS, AlgorsFree> algs(
      d2i_X509_ALGORS(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!algs || p != end) return c;
  c.readable = true;
  for (int i = 0; i < sk_X509_ALGOR_num(algs.get()); ++i) {
    const ASN1_OBJECT* oid = nullptr;
    X509_ALGOR_get0(&oid, nullptr, nullptr, sk_X509_ALGOR_value(algs.get(), i));
    switch (OBJ_obj2nid(oid)) {
      case NID_aes_256_gcm:
        c.aes256_gcm = true;
        break;
      case NID_aes_128_gcm:
        c.aes128_gcm = true;
        break;
      case NID_aes_256_cbc:
        c.aes256_cbc = true;
        break;
      case NID_aes_128_cbc:
        c.aes128_cbc = true;
        break;
      default:
        break;
    }
  }
  return c;
}

std::string cipher_name(const EncryptOptions& o) {
  return std::string(o.aes128 ? "AES-128-" : "AES-256-") + (o.cbc ? "CBC" : "GCM");
}

}  // namespace token::smime
