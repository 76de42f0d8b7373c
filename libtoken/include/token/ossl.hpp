// Owning pointers for the OpenSSL types libtoken uses.
#pragma once

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pkcs12.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace token::ossl {

template <class T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;
using X509Ptr = std::unique_ptr<X509, Free<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Free<BIO, BIO_free_all>>;
using Bn = std::unique_ptr<BIGNUM, Free<BIGNUM, BN_clear_free>>;
using P12 = std::unique_ptr<PKCS12, Free<PKCS12, PKCS12_free>>;

// The DER encoding of `obj` by OpenSSL's i2d function `i2d` (i2d_X509,
// i2d_ECDSA_SIG, ...); empty when it cannot be encoded.
template <class T, class I2d>
std::vector<unsigned char> der(const T* obj, I2d i2d) {
  unsigned char* p = nullptr;
  const int n = i2d(obj, &p);
  if (n <= 0) return {};
  std::vector<unsigned char> out(p, p + n);
  OPENSSL_free(p);
  return out;
}

// The reason OpenSSL gave for the last failure (and clears its error queue).
std::string last_error();

}  // namespace token::ossl
