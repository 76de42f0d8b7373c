// The provider's Ed25519 signature: pure EdDSA (RFC 8032), the whole
// message signed on the token with CKM_EDDSA (PKCS#11 3.0 section 2.3.14,
// no parameters = Ed25519 without context).
//
// OpenSSL 3.0's CMS asks for a digest when it signs the signed attributes
// (EVP_DigestSignInit with the SignerInfo's digestAlgorithm), and the
// default provider refuses any digest for Ed25519 ("invalid digest"). RFC
// 8419 section 3.1 says what that digest is for: "the digestAlgorithm ...
// MUST be id-sha512" and it hashes the content for the messageDigest
// attribute; the signature itself is pure Ed25519 over the DER of the
// signed attributes. So this signature accepts SHA-512 (and no digest) as a
// name, hashes nothing, and signs the bytes it was given.
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include <cstring>

#include "internal.hpp"

namespace token::engine {

namespace {

// What one signature may cover: signed attributes and certificate requests
// are a few KiB; a message that big is not signed directly by S/MIME.
constexpr std::size_t kMaxMessage = std::size_t{1} << 20;

struct EdCtx {
  std::shared_ptr<TokenOps> ops;
  Bytes data;
};

EdCtx* as_ctx(void* p) { return static_cast<EdCtx*>(p); }
void* new_ctx(void*, const char*) { return new (std::nothrow) EdCtx{}; }
void free_ctx(void* p) { delete as_ctx(p); }
void* dup_ctx(void* p) { return new (std::nothrow) EdCtx(*as_ctx(p)); }

bool digest_allowed(const char* mdname) {
  if (mdname == nullptr || *mdname == '\0') return true;
  EVP_MD* md = fetch_md(mdname);
  const bool sha512 = EVP_MD_is_a(md, "SHA512");
  EVP_MD_free(md);
  return sha512;
}

int init(void* p, const char* mdname, void* kd, const OSSL_PARAM[]) {
  EdCtx* c = as_ctx(p);
  const KeyData* k = static_cast<const KeyData*>(kd);
  return guarded([&] {
    if (k == nullptr || !k->ops) return 0;
    if (!digest_allowed(mdname)) {
      throw Error(ErrorKind::Usage, "Ed25519 signs the message itself (RFC 8032); the digest " +
                                        std::string(mdname) +
                                        " cannot be used (RFC 8419 names SHA-512)");
    }
    k->ops->require(CKM_EDDSA, "Ed25519 signing");
    c->ops = k->ops;
    c->data.clear();
    return 1;
  });
}

int update(void* p, const unsigned char* data, size_t len) {
  EdCtx* c = as_ctx(p);
  return guarded([&] {
    if (c->data.size() + len > kMaxMessage) {
      throw Error(ErrorKind::Usage, "Ed25519 on a token signs at most 1 MiB in one operation");
    }
    c->data.insert(c->data.end(), data, data + len);
    return 1;
  });
}

constexpr std::size_t kSigLen = 64;  // RFC 8032 section 5.1.6

int sign_bytes(EdCtx* c, unsigned char* sig, size_t* siglen, size_t sigsize,
               const unsigned char* tbs, size_t tbslen) {
  if (!c->ops) return 0;
  if (sig == nullptr) {
    *siglen = kSigLen;
    return 1;
  }
  return guarded([&] {
    CK_MECHANISM m{CKM_EDDSA, nullptr, 0};
    Bytes s = c->ops->sign(m, tbs, tbslen, "CKM_EDDSA");
    if (s.size() != kSigLen || s.size() > sigsize) {
      throw Error(ErrorKind::Token, "C_Sign with CKM_EDDSA on " + c->ops->description() + " gave " +
                                        std::to_string(s.size()) +
                                        " bytes, not a 64-byte Ed25519 signature");
    }
    std::memcpy(sig, s.data(), s.size());
    *siglen = s.size();
    return 1;
  });
}

int final(void* p, unsigned char* sig, size_t* siglen, size_t sigsize) {
  EdCtx* c = as_ctx(p);
  return sign_bytes(c, sig, siglen, sigsize, c->data.data(), c->data.size());
}

int one_shot(void* p, unsigned char* sig, size_t* siglen, size_t sigsize, const unsigned char* tbs,
             size_t tbslen) {
  return sign_bytes(as_ctx(p), sig, siglen, sigsize, tbs, tbslen);
}

// RFC 8410 section 3: id-Ed25519, parameters absent.
constexpr unsigned char kAlgorithmId[] = {0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70};

int get_params(void*, OSSL_PARAM params[]) {
  OSSL_PARAM* q = OSSL_PARAM_locate(params, OSSL_SIGNATURE_PARAM_ALGORITHM_ID);
  return q == nullptr || OSSL_PARAM_set_octet_string(q, kAlgorithmId, sizeof kAlgorithmId);
}
int set_params(void*, const OSSL_PARAM[]) { return 1; }

const OSSL_PARAM kParams[] = {
    OSSL_PARAM_octet_string(OSSL_SIGNATURE_PARAM_ALGORITHM_ID, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kNone[] = {OSSL_PARAM_END};
const OSSL_PARAM* gettable(void*, void*) { return kParams; }
const OSSL_PARAM* settable(void*, void*) { return kNone; }

}  // namespace

const OSSL_DISPATCH kSignatureEd25519[] = {{OSSL_FUNC_SIGNATURE_NEWCTX, fn(new_ctx)},
                                           {OSSL_FUNC_SIGNATURE_FREECTX, fn(free_ctx)},
                                           {OSSL_FUNC_SIGNATURE_DUPCTX, fn(dup_ctx)},
                                           {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, fn(init)},
                                           {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_UPDATE, fn(update)},
                                           {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_FINAL, fn(final)},
                                           {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, fn(one_shot)},
                                           {OSSL_FUNC_SIGNATURE_GET_CTX_PARAMS, fn(get_params)},
                                           {OSSL_FUNC_SIGNATURE_GETTABLE_CTX_PARAMS, fn(gettable)},
                                           {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, fn(set_params)},
                                           {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, fn(settable)},
                                           {0, nullptr}};

}  // namespace token::engine
