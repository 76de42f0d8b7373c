// The provider's RSA decryption: PKCS#1 v1.5 and OAEP with the hash, MGF1
// hash and label OpenSSL asks for, passed to the token as they are. A token
// that refuses them gives its error; there is no fallback to raw RSA.
#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include <cstring>

#include "internal.hpp"
#include "params.hpp"

namespace token::engine {

namespace {

struct CipherCtx {  // NOLINT(cppcoreguidelines-special-member-functions): made, duplicated and
              // freed only by the provider callbacks, which take their own references
  std::shared_ptr<TokenOps> ops;
  std::size_t size = 0;
  int pad = RSA_PKCS1_PADDING;
  EVP_MD* oaep = nullptr;  // OpenSSL's default for OAEP is SHA-1
  EVP_MD* mgf1 = nullptr;  // default: the OAEP hash
  Bytes label;
  ~CipherCtx() {
    EVP_MD_free(oaep);
    EVP_MD_free(mgf1);
  }
};

CipherCtx* as_ctx(void* p) { return static_cast<CipherCtx*>(p); }
void* new_ctx(void*) { return new (std::nothrow) CipherCtx{}; }
void free_ctx(void* p) { delete as_ctx(p); }

void replace(EVP_MD*& slot, EVP_MD* md) {
  EVP_MD_free(slot);
  slot = md;
}

int set_params(void* p, const OSSL_PARAM params[]) {
  CipherCtx* c = as_ctx(p);
  return guarded([&] {
    if (params == nullptr) return 1;
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) {
      c->pad = param_padding(q);
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) {
      replace(c->oaep, fetch_md(param_string(q).c_str()));
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) {
      replace(c->mgf1, fetch_md(param_string(q).c_str()));
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL)) {
      const void* v = nullptr;
      std::size_t n = 0;
      if (!OSSL_PARAM_get_octet_string_ptr(q, &v, &n)) return 0;
      const auto* b = static_cast<const unsigned char*>(v);
      c->label.assign(b, b + n);
    }
    return 1;
  });
}

int get_params(void* p, OSSL_PARAM params[]) {
  CipherCtx* c = as_ctx(p);
  OSSL_PARAM* q;
  if ((q = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_PAD_MODE)) && !put_padding(q, c->pad))
    return 0;
  const EVP_MD* md = c->oaep;
  if ((q = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST)) && md &&
      !OSSL_PARAM_set_utf8_string(q, md_short_name(md)))
    return 0;
  const EVP_MD* mgf = c->mgf1 ? c->mgf1 : md;
  if ((q = OSSL_PARAM_locate(params, OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST)) && mgf &&
      !OSSL_PARAM_set_utf8_string(q, md_short_name(mgf)))
    return 0;
  return 1;
}

const OSSL_PARAM kParams[] = {
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_PAD_MODE, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_OAEP_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_ASYM_CIPHER_PARAM_MGF1_DIGEST, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM* params_list(void*, void*) { return kParams; }

int decrypt_init(void* p, void* kd, const OSSL_PARAM params[]) {
  CipherCtx* c = as_ctx(p);
  const KeyData* k = static_cast<const KeyData*>(kd);
  if (k == nullptr || !k->ops) return 0;
  c->ops = k->ops;
  c->size = key_size_bytes(*k);
  return set_params(p, params);
}

Bytes run(CipherCtx& c, const unsigned char* in, std::size_t len) {
  if (c.pad == RSA_PKCS1_PADDING) {
    c.ops->require(CKM_RSA_PKCS, "RSA PKCS#1 v1.5 decryption");
    CK_MECHANISM m{CKM_RSA_PKCS, nullptr, 0};
    return c.ops->decrypt(m, in, len, "CKM_RSA_PKCS");
  }
  if (c.pad != RSA_PKCS1_OAEP_PADDING) {
    throw Error(ErrorKind::Usage, "RSA decryption supports PKCS#1 v1.5 and OAEP padding only");
  }
  c.ops->require(CKM_RSA_PKCS_OAEP, "RSA-OAEP decryption");
  if (c.oaep == nullptr) c.oaep = fetch_md("SHA1");
  const EVP_MD* mgf = c.mgf1 ? c.mgf1 : c.oaep;
  CK_RSA_PKCS_OAEP_PARAMS oaep{hash_mechanism(c.oaep), mgf_for(mgf), CKZ_DATA_SPECIFIED,
                               c.label.empty() ? nullptr : c.label.data(),
                               CK_ULONG(c.label.size())};
  CK_MECHANISM m{CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
  return c.ops->decrypt(
      m, in, len,
      std::string("CKM_RSA_PKCS_OAEP, ") + md_short_name(c.oaep) + ", MGF1 " + md_short_name(mgf));
}

int decrypt(void* p, unsigned char* out, size_t* outlen, size_t outsize, const unsigned char* in,
            size_t inlen) {
  CipherCtx* c = as_ctx(p);
  if (!c->ops) return 0;
  if (out == nullptr) {
    *outlen = c->size;
    return 1;
  }
  return guarded([&] {
    Bytes plain = run(*c, in, inlen);
    if (plain.size() > outsize) throw Error(ErrorKind::Internal, "decryption buffer too small");
    std::memcpy(out, plain.data(), plain.size());
    *outlen = plain.size();
    wipe(plain.data(), plain.size());
    return 1;
  });
}

}  // namespace

const OSSL_DISPATCH kCipherRsa[] = {{OSSL_FUNC_ASYM_CIPHER_NEWCTX, fn(new_ctx)},
                                    {OSSL_FUNC_ASYM_CIPHER_FREECTX, fn(free_ctx)},
                                    {OSSL_FUNC_ASYM_CIPHER_DECRYPT_INIT, fn(decrypt_init)},
                                    {OSSL_FUNC_ASYM_CIPHER_DECRYPT, fn(decrypt)},
                                    {OSSL_FUNC_ASYM_CIPHER_GET_CTX_PARAMS, fn(get_params)},
                                    {OSSL_FUNC_ASYM_CIPHER_GETTABLE_CTX_PARAMS, fn(params_list)},
                                    {OSSL_FUNC_ASYM_CIPHER_SET_CTX_PARAMS, fn(set_params)},
                                    {OSSL_FUNC_ASYM_CIPHER_SETTABLE_CTX_PARAMS, fn(params_list)},
                                    {0, nullptr}};

}  // namespace token::engine
