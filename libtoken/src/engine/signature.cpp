// The provider's signatures: the host hashes, the token signs the digest
// with the mechanism that carries the padding and its parameters, so that
// PSS reaches the token as PSS (never as raw RSA).
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <cstring>

#include "internal.hpp"
#include "params.hpp"
#include "token/ossl.hpp"

namespace token::engine {

namespace {

struct SigCtx {  // NOLINT(cppcoreguidelines-special-member-functions): made, duplicated and
                 // freed only by the provider callbacks, which take their own references
  std::shared_ptr<TokenOps> ops;
  EVP_PKEY* pub = nullptr;
  int type = EVP_PKEY_RSA;
  int pad = RSA_PKCS1_PADDING;
  EVP_MD* md = nullptr;
  EVP_MD* mgf1 = nullptr;
  // RFC 8551 practice (and what gpgsm accepts): salt length = hash length.
  int saltlen = RSA_PSS_SALTLEN_DIGEST;
  EVP_MD_CTX* mdctx = nullptr;

  ~SigCtx() {
    EVP_PKEY_free(pub);
    EVP_MD_free(md);
    EVP_MD_free(mgf1);
    EVP_MD_CTX_free(mdctx);
  }
};

SigCtx* as_ctx(void* p) { return static_cast<SigCtx*>(p); }

void* new_rsa(void*, const char*) { return new (std::nothrow) SigCtx{}; }
void* new_ecdsa(void*, const char*) {
  auto* c = new (std::nothrow) SigCtx{};
  if (c) c->type = EVP_PKEY_EC;
  return c;
}
void free_ctx(void* c) { delete as_ctx(c); }

void* dup_ctx(void* p) {
  const SigCtx* s = as_ctx(p);
  auto* d = new (std::nothrow) SigCtx{s->ops, s->pub, s->type, s->pad, s->md, s->mgf1, s->saltlen};
  if (d == nullptr) return nullptr;
  // Each pointer taken over is one more reference.
  if ((d->pub && !EVP_PKEY_up_ref(d->pub)) || (d->md && !EVP_MD_up_ref(d->md)) ||
      (d->mgf1 && !EVP_MD_up_ref(d->mgf1))) {
    d->pub = nullptr, d->md = nullptr, d->mgf1 = nullptr;
    delete d;
    return nullptr;
  }
  if (s->mdctx) {
    d->mdctx = EVP_MD_CTX_new();
    if (d->mdctx == nullptr || !EVP_MD_CTX_copy_ex(d->mdctx, s->mdctx)) {
      delete d;
      return nullptr;
    }
  }
  return d;
}

void set_md(EVP_MD*& slot, EVP_MD* md) {
  EVP_MD_free(slot);
  slot = md;
}

int set_params(void* p, const OSSL_PARAM params[]) {
  SigCtx* c = as_ctx(p);
  return guarded([&] {
    if (params == nullptr) return 1;
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) {
      set_md(c->md, fetch_md(param_string(q).c_str()));
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) {
      set_md(c->mgf1, fetch_md(param_string(q).c_str()));
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) {
      c->pad = param_padding(q);
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) {
      c->saltlen = param_saltlen(q);
    }
    return 1;
  });
}

CK_ULONG pss_salt(const SigCtx& c);

// The signature's AlgorithmIdentifier (sha256WithRSAEncryption, RSASSA-PSS
// with its parameters, ecdsa-with-SHA256), which OpenSSL 3.0's CMS and X.509
// code ask the signature for. The default provider encodes it from the same
// settings and our public key: the encoding needs no private key.
int put_algorithm_id(OSSL_PARAM* q, const SigCtx& c) {
  if (c.md == nullptr || c.pub == nullptr) return 0;
  EVP_PKEY_CTX* v = EVP_PKEY_CTX_new_from_pkey(engine_libctx(), c.pub, "provider=default");
  unsigned char aid[256];
  OSSL_PARAM get[] = {OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, aid, sizeof aid),
                      OSSL_PARAM_END};
  const EVP_MD* mgf = c.mgf1 ? c.mgf1 : c.md;
  bool ok =
      v != nullptr && EVP_PKEY_verify_init(v) == 1 && EVP_PKEY_CTX_set_signature_md(v, c.md) == 1;
  if (ok && c.type == EVP_PKEY_RSA && c.pad == RSA_PKCS1_PSS_PADDING) {
    ok = EVP_PKEY_CTX_set_rsa_padding(v, RSA_PKCS1_PSS_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(v, static_cast<int>(pss_salt(c))) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(v, mgf) == 1;
  }
  ok = ok && EVP_PKEY_CTX_get_params(v, get) == 1 && OSSL_PARAM_modified(get) &&
       get[0].return_size > 0 && get[0].return_size <= sizeof aid;
  EVP_PKEY_CTX_free(v);
  // A failure must be reported as one: OpenSSL 3.0's CMS decodes whatever
  // comes back and frees the signer's algorithm on a decoding error.
  return ok && OSSL_PARAM_set_octet_string(q, aid, get[0].return_size);
}

int get_params(void* p, OSSL_PARAM params[]) {
  SigCtx* c = as_ctx(p);
  OSSL_PARAM* q;
  if ((q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID)) &&
      !put_algorithm_id(q, *c))
    return 0;
  if ((q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) && !put_padding(q, c->pad))
    return 0;
  if ((q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) &&
      !put_saltlen(q, c->saltlen))
    return 0;
  const EVP_MD* md = c->md;
  if ((q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_DIGEST)) && md &&
      !OSSL_PARAM_set_utf8_string(q, md_short_name(md)))
    return 0;
  const EVP_MD* mgf = c->mgf1 ? c->mgf1 : md;
  if ((q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) && mgf &&
      !OSSL_PARAM_set_utf8_string(q, md_short_name(mgf)))
    return 0;
  return 1;
}

const OSSL_PARAM kParams[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, nullptr, 0),
    OSSL_PARAM_END};
const OSSL_PARAM kEcParams[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM* rsa_params(void*, void*) { return kParams; }
const OSSL_PARAM* ec_params(void*, void*) { return kEcParams; }

int sign_init(void* p, void* kd, const OSSL_PARAM params[]) {
  SigCtx* c = as_ctx(p);
  const KeyData* k = static_cast<const KeyData*>(kd);
  if (k == nullptr || !k->ops || !EVP_PKEY_up_ref(k->pub)) return 0;
  EVP_PKEY_free(c->pub);
  c->pub = k->pub;
  c->ops = k->ops;
  return set_params(c, params);
}

int digest_sign_init(void* p, const char* mdname, void* kd, const OSSL_PARAM params[]) {
  SigCtx* c = as_ctx(p);
  if (!sign_init(p, kd, params)) return 0;
  return guarded([&] {
    if (mdname != nullptr && *mdname != '\0') set_md(c->md, fetch_md(mdname));
    if (c->md == nullptr) set_md(c->md, fetch_md("SHA256"));
    EVP_MD_CTX_free(c->mdctx);
    c->mdctx = EVP_MD_CTX_new();
    return c->mdctx != nullptr && EVP_DigestInit_ex2(c->mdctx, c->md, nullptr) == 1;
  });
}

int digest_update(void* p, const unsigned char* data, size_t len) {
  SigCtx* c = as_ctx(p);
  return c->mdctx != nullptr && EVP_DigestUpdate(c->mdctx, data, len) == 1;
}

// DigestInfo (RFC 8017 section 9.2) for CKM_RSA_PKCS, which pads but does
// not hash.
Bytes digest_info(const EVP_MD* md, const unsigned char* d, std::size_t n) {
  X509_SIG* sig = X509_SIG_new();
  X509_ALGOR* alg = nullptr;
  ASN1_OCTET_STRING* digest = nullptr;
  X509_SIG_getm(sig, &alg, &digest);
  X509_ALGOR_set0(alg, OBJ_nid2obj(EVP_MD_get_type(md)), V_ASN1_NULL, nullptr);
  ASN1_OCTET_STRING_set(digest, d, static_cast<int>(n));
  Bytes out = ossl::der(sig, i2d_X509_SIG);
  X509_SIG_free(sig);
  if (out.empty()) throw Error(ErrorKind::Internal, "cannot encode a DigestInfo");
  return out;
}

// CKM_ECDSA gives r||s (PKCS#11 2.40 section 2.3.1); CMS wants ECDSA-Sig-Value.
Bytes ecdsa_der(const Bytes& rs) {
  const int half = static_cast<int>(rs.size() / 2);
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(rs.data(), half, nullptr);
  BIGNUM* s = BN_bin2bn(rs.data() + half, half, nullptr);
  if (sig == nullptr || r == nullptr || s == nullptr || !ECDSA_SIG_set0(sig, r, s)) {
    BN_free(r), BN_free(s), ECDSA_SIG_free(sig);
    throw Error(ErrorKind::Internal, "cannot encode an ECDSA signature");
  }
  Bytes out = ossl::der(sig, i2d_ECDSA_SIG);
  ECDSA_SIG_free(sig);
  if (out.empty()) throw Error(ErrorKind::Internal, "cannot encode an ECDSA signature");
  return out;
}

// PKCS#11's sLen is a byte count; resolve OpenSSL's special values as its
// own PSS code does (RFC 8017 section 9.1.1: emLen - hLen - 2 at most).
CK_ULONG pss_salt(const SigCtx& c) {
  const int hlen = EVP_MD_get_size(c.md);
  if (c.saltlen >= 0) return CK_ULONG(c.saltlen);
  if (c.saltlen == RSA_PSS_SALTLEN_DIGEST) return CK_ULONG(hlen);
  const int bits = EVP_PKEY_get_bits(c.pub);
  int max = (bits + 7) / 8 - hlen - 2;
  if ((bits & 7) == 1) --max;
  return CK_ULONG(max);
}

Bytes sign_rsa(SigCtx& c, const unsigned char* tbs, std::size_t len) {
  if (c.pad == RSA_PKCS1_PSS_PADDING) {
    if (c.md == nullptr) throw Error(ErrorKind::Usage, "RSA-PSS signing needs a digest");
    c.ops->require(CKM_RSA_PKCS_PSS, "RSA-PSS signing");
    const EVP_MD* mgf = c.mgf1 ? c.mgf1 : c.md;
    CK_RSA_PKCS_PSS_PARAMS pss{hash_mechanism(c.md), mgf_for(mgf), pss_salt(c)};
    CK_MECHANISM m{CKM_RSA_PKCS_PSS, &pss, sizeof pss};
    return c.ops->sign(m, tbs, len,
                       std::string("CKM_RSA_PKCS_PSS, ") + md_short_name(c.md) + ", MGF1 " +
                           md_short_name(mgf) + ", salt " + std::to_string(pss.sLen));
  }
  if (c.pad != RSA_PKCS1_PADDING) {
    throw Error(ErrorKind::Usage, "RSA signing supports PKCS#1 v1.5 and PSS padding only");
  }
  c.ops->require(CKM_RSA_PKCS, "RSA PKCS#1 v1.5 signing");
  CK_MECHANISM m{CKM_RSA_PKCS, nullptr, 0};
  if (c.md == nullptr) return c.ops->sign(m, tbs, len, "CKM_RSA_PKCS");
  Bytes di = digest_info(c.md, tbs, len);
  return c.ops->sign(m, di.data(), di.size(),
                     std::string("CKM_RSA_PKCS, ") + md_short_name(c.md) + " DigestInfo");
}

Bytes sign_digest(SigCtx& c, const unsigned char* tbs, std::size_t len) {
  if (c.md && len != std::size_t(EVP_MD_get_size(c.md))) {
    throw Error(ErrorKind::Usage,
                "the data to sign is not a " + std::string(md_short_name(c.md)) + " digest");
  }
  if (c.type == EVP_PKEY_RSA) return sign_rsa(c, tbs, len);
  c.ops->require(CKM_ECDSA, "ECDSA signing");
  CK_MECHANISM m{CKM_ECDSA, nullptr, 0};
  return ecdsa_der(c.ops->sign(m, tbs, len, "CKM_ECDSA"));
}

int sign(void* p, unsigned char* sig, size_t* siglen, size_t sigsize, const unsigned char* tbs,
         size_t tbslen) {
  SigCtx* c = as_ctx(p);
  if (!c->ops) return 0;
  if (sig == nullptr) {
    *siglen = static_cast<size_t>(EVP_PKEY_get_size(c->pub));
    return 1;
  }
  return guarded([&] {
    Bytes s = sign_digest(*c, tbs, tbslen);
    if (s.size() > sigsize) throw Error(ErrorKind::Internal, "signature buffer too small");
    std::memcpy(sig, s.data(), s.size());
    *siglen = s.size();
    return 1;
  });
}

int digest_sign_final(void* p, unsigned char* sig, size_t* siglen, size_t sigsize) {
  SigCtx* c = as_ctx(p);
  if (c->mdctx == nullptr) return 0;
  if (sig == nullptr) return sign(p, nullptr, siglen, sigsize, nullptr, 0);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_DigestFinal_ex(c->mdctx, digest, &n) != 1) return 0;
  return sign(p, sig, siglen, sigsize, digest, n);
}

}  // namespace

#define TOKENKIT_SIGNATURE_COMMON                                                           \
  {OSSL_FUNC_SIGNATURE_FREECTX, fn(free_ctx)}, {OSSL_FUNC_SIGNATURE_DUPCTX, fn(dup_ctx)},   \
      {OSSL_FUNC_SIGNATURE_SIGN_INIT, fn(sign_init)}, {OSSL_FUNC_SIGNATURE_SIGN, fn(sign)}, \
      {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, fn(digest_sign_init)},                         \
      {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, fn(digest_update)},                          \
      {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, fn(digest_sign_final)},                       \
      {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, fn(get_params)}, {                               \
    OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, fn(set_params)                                      \
  }

const OSSL_DISPATCH kSignatureRsa[] = {{OSSL_FUNC_SIGNATURE_NEWCTX, fn(new_rsa)},
                                       TOKENKIT_SIGNATURE_COMMON,
                                       {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, fn(rsa_params)},
                                       {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, fn(rsa_params)},
                                       {0, nullptr}};

const OSSL_DISPATCH kSignatureEcdsa[] = {{OSSL_FUNC_SIGNATURE_NEWCTX, fn(new_ecdsa)},
                                         TOKENKIT_SIGNATURE_COMMON,
                                         {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, fn(ec_params)},
                                         {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, fn(ec_params)},
                                         {0, nullptr}};

}  // namespace token::engine
