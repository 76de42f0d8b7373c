// tokenkit's S/MIME signing: OpenSSL CMS in the token key's library
// context, streaming, with the signed attributes RFC 8551 asks for.
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>

#include "crlf_bio.hpp"
#include "seven_bit.hpp"
#include "token/smime.hpp"

namespace token::smime {

namespace {

struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;

// RFC 8551 section 2.5.2: what we can decrypt, strongest first. Only what
// tokenkit really supports: AES-GCM and AES-CBC content (no DES, 3DES or
// RC2), and for EC keys the key agreement decrypt() handles (RFC 5753
// dhSinglePass-stdDH-sha256kdf-scheme with AES-256 key wrap).
void add_capabilities(CMS_SignerInfo* si, const TokenKey& key) {
  STACK_OF(X509_ALGOR)* caps = nullptr;
  bool ok = CMS_add_simple_smimecap(&caps, NID_aes_256_gcm, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_128_gcm, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1);
  if (ok && EVP_PKEY_is_a(key.pkey(), "EC")) {
    X509_ALGOR* wrap = X509_ALGOR_new();
    X509_ALGOR* ka = X509_ALGOR_new();
    ok = wrap != nullptr && ka != nullptr &&
         X509_ALGOR_set0(wrap, OBJ_nid2obj(NID_id_aes256_wrap), V_ASN1_UNDEF, nullptr) == 1;
    unsigned char* der = nullptr;
    const int n = ok ? i2d_X509_ALGOR(wrap, &der) : -1;
    ASN1_STRING* param = n > 0 ? ASN1_STRING_new() : nullptr;
    ok = param != nullptr && ASN1_STRING_set(param, der, n) == 1 &&
         X509_ALGOR_set0(ka, OBJ_nid2obj(NID_dhSinglePass_stdDH_sha256kdf_scheme), V_ASN1_SEQUENCE,
                         param) == 1;
    if (!ok) ASN1_STRING_free(param);
    OPENSSL_free(der);
    X509_ALGOR_free(wrap);
    ok = ok && sk_X509_ALGOR_push(caps, ka) > 0;
    if (!ok) X509_ALGOR_free(ka);
  }
  ok = ok && CMS_add_smimecap(si, caps);
  sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
  if (!ok) rethrow_engine_error("cannot add SMIMECapabilities", ErrorKind::Internal);
}

void der_length(Bytes& out, std::size_t n) {
  if (n < 0x80) {
    out.push_back(static_cast<unsigned char>(n));
    return;
  }
  Bytes be;
  for (; n > 0; n >>= 8) be.insert(be.begin(), static_cast<unsigned char>(n & 0xff));
  out.push_back(static_cast<unsigned char>(0x80 | be.size()));
  out.insert(out.end(), be.begin(), be.end());
}

template <class T>
Bytes der(const T* obj, int (*i2d)(const T*, unsigned char**)) {
  unsigned char* p = nullptr;
  int n = i2d(obj, &p);
  if (n <= 0) throw Error(ErrorKind::Internal, "DER encoding failed");
  Bytes b(p, p + n);
  OPENSSL_free(p);
  return b;
}

// RFC 8551 section 2.5.3: SMIMEEncryptionKeyPreference, the choice
// issuerAndSerialNumber [0] (IMPLICIT, the module's default tagging): which
// certificate to encrypt to. Ours signs and decrypts with the same key.
void add_key_preference(CMS_SignerInfo* si, X509* cert) {
  Bytes body = der(X509_get_issuer_name(cert), i2d_X509_NAME);
  Bytes serial = der(X509_get0_serialNumber(cert), i2d_ASN1_INTEGER);
  body.insert(body.end(), serial.begin(), serial.end());
  Bytes value{0xa0};
  der_length(value, body.size());
  value.insert(value.end(), body.begin(), body.end());
  if (!CMS_signed_add1_attr_by_NID(si, NID_id_smime_aa_encrypKeyPref, V_ASN1_SEQUENCE, value.data(),
                                   static_cast<int>(value.size()))) {
    rethrow_engine_error("cannot add SMIMEEncryptionKeyPreference", ErrorKind::Internal);
  }
}

void use_pss(CMS_SignerInfo* si, const EVP_MD* md, const TokenKey& key) {
  EVP_PKEY_CTX* pctx = CMS_SignerInfo_get0_pkey_ctx(si);
  if (!EVP_PKEY_is_a(key.pkey(), "RSA")) {
    throw Error(ErrorKind::Usage, "--pss needs an RSA key; " + key.description() + " is not one");
  }
  if (pctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0) {
    rethrow_engine_error("cannot set RSA-PSS for " + key.description());
  }
}

CMS_SignerInfo* add_signer(CMS_ContentInfo* cms, const TokenKey& key, const SignOptions& o) {
  // RFC 8419 section 3.1: with Ed25519 "the digestAlgorithm ... MUST be
  // id-sha512"; it hashes the content for messageDigest, and the token signs
  // the signed attributes with pure Ed25519 (engine/eddsa.cpp).
  const bool ed25519 = EVP_PKEY_is_a(key.pkey(), "ED25519");
  if (ed25519 && o.pss) {
    throw Error(ErrorKind::Usage, "--pss needs an RSA key; " + key.description() + " is Ed25519");
  }
  const std::string digest = ed25519 ? "SHA512" : o.digest;
  EVP_MD* md = EVP_MD_fetch(key.libctx(), digest.c_str(), nullptr);
  if (md == nullptr) throw Error(ErrorKind::Usage, "unknown digest \"" + digest + "\"");
  // CMS_CADES adds signingCertificateV2 (RFC 5035); our own capabilities
  // replace OpenSSL's default list, which names DES, 3DES and RC2.
  const unsigned flags = CMS_NOSMIMECAP | CMS_CADES | (o.pss ? CMS_KEY_PARAM : 0);
  CMS_SignerInfo* si = CMS_add1_signer(cms, key.certificate(), key.pkey(), md, flags);
  if (si != nullptr && o.pss) use_pss(si, md, key);
  if (si != nullptr && ed25519) {
    // OpenSSL 3.0 sets the signature algorithm for RSA and EC keys only
    // (cms_sd_asn1_ctrl); RFC 8419 section 3.2: id-Ed25519, parameters
    // absent.
    X509_ALGOR* alg = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &alg);
    if (alg == nullptr ||
        X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, nullptr) != 1) {
      EVP_MD_free(md);
      rethrow_engine_error("cannot set the Ed25519 signature algorithm", ErrorKind::Internal);
    }
  }
  EVP_MD_free(md);
  if (si == nullptr) rethrow_engine_error("cannot sign with " + key.description());
  return si;
}

}  // namespace

SignResult sign(const TokenKey& key, BIO* in, BIO* out, const SignOptions& o) {
  clear_engine_error();
  if (EVP_PKEY_is_a(key.pkey(), "X25519")) {
    throw Error(ErrorKind::Usage, key.description() +
                                      " is an X25519 key, which only agrees keys (RFC 8410): "
                                      "it decrypts mail but cannot sign it");
  }
  if (key.certificate() == nullptr) {
    throw Error(ErrorKind::NotFound, "no certificate with the CKA_ID of " + key.description() +
                                         " on the token: S/MIME needs the signer's certificate");
  }
  // CMS_STREAM: the content is hashed as it is written out, in one pass.
  // Without CMS_BINARY, OpenSSL canonicalises each line to CRLF as it
  // signs (RFC 8551 section 3.1.1).
  const unsigned flags = CMS_PARTIAL | CMS_STREAM | (o.opaque ? 0 : CMS_DETACHED);
  CmsPtr cms(CMS_sign_ex(nullptr, nullptr, nullptr, nullptr, flags, key.libctx(), nullptr));
  if (!cms) rethrow_engine_error("cannot start a CMS SignedData", ErrorKind::Internal);
  CMS_SignerInfo* si = add_signer(cms.get(), key, o);
  add_capabilities(si, key);
  add_key_preference(si, key.certificate());
  BIO* crlf = new_crlf_filter();
  BIO* chain = BIO_push(crlf, out);
  SevenBit body = make_seven_bit(in);
  // In streaming mode the signature is made when the content has been
  // written, inside OpenSSL's stream callbacks, and OpenSSL 3.0's
  // SMIME_write_CMS does not pass a failure there back up (the signature
  // part then comes out empty): the signature is checked to be there.
  const int ok =
      SMIME_write_CMS(chain, cms.get(), body.source.get(), static_cast<int>(flags)) == 1 &&
      BIO_flush(chain) == 1 && !has_engine_error() &&
      ASN1_STRING_length(CMS_SignerInfo_get0_signature(si)) > 0;
  SignResult r{body.eight_bit, body.encoded};
  BIO_pop(crlf);
  BIO_free(crlf);
  if (!ok) rethrow_engine_error("signing with " + key.description() + " failed");
  return r;
}

}  // namespace token::smime
