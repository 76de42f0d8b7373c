// The provider's ECDH: the shared secret Z is derived on the token; the X9.63
// KDF that CMS (RFC 5753) asks for runs on the host over Z, which is not
// key material of the token key.
#include <openssl/core_names.h>
#include <openssl/kdf.h>

#include <cstring>

#include "internal.hpp"
#include "params.hpp"

namespace token::engine {

namespace {

struct ExchCtx {  // NOLINT(cppcoreguidelines-special-member-functions): made, duplicated and
              // freed only by the provider callbacks, which take their own references
  std::shared_ptr<TokenOps> ops;
  std::size_t field = 0;
  Bytes peer;
  bool x963 = false;
  EVP_MD* kdf_md = nullptr;
  std::size_t kdf_outlen = 0;
  Bytes ukm;
  ~ExchCtx() { EVP_MD_free(kdf_md); }
};

ExchCtx* as_ctx(void* p) { return static_cast<ExchCtx*>(p); }
void* new_ctx(void*) { return new (std::nothrow) ExchCtx{}; }
void free_ctx(void* p) { delete as_ctx(p); }

void* dup_ctx(void* p) {
  const ExchCtx* s = as_ctx(p);
  auto* d = new (std::nothrow)
      ExchCtx{s->ops, s->field, s->peer, s->x963, s->kdf_md, s->kdf_outlen, s->ukm};
  if (d && d->kdf_md && !EVP_MD_up_ref(d->kdf_md)) d->kdf_md = nullptr;
  return d;
}

int set_params(void* p, const OSSL_PARAM params[]) {
  ExchCtx* c = as_ctx(p);
  return guarded([&] {
    if (params == nullptr) return 1;
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_KDF_TYPE)) {
      const std::string t = param_string(q);
      if (!t.empty() && t != OSSL_KDF_NAME_X963KDF) {
        throw Error(ErrorKind::Usage,
                    "ECDH with a token key supports the X9.63 KDF only, not " + t);
      }
      c->x963 = !t.empty();
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_KDF_DIGEST)) {
      EVP_MD_free(c->kdf_md);
      c->kdf_md = fetch_md(param_string(q).c_str());
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_KDF_OUTLEN)) {
      if (!OSSL_PARAM_get_size_t(q, &c->kdf_outlen)) return 0;
    }
    if (auto* q = OSSL_PARAM_locate_const(params, OSSL_EXCHANGE_PARAM_KDF_UKM)) {
      const void* v = nullptr;
      std::size_t n = 0;
      if (q->data != nullptr && !OSSL_PARAM_get_octet_string_ptr(q, &v, &n)) return 0;
      const auto* b = static_cast<const unsigned char*>(v);
      c->ukm.assign(b, b + n);
    }
    // Cofactor ECDH equals plain ECDH on the curves tokens offer (P-256,
    // P-384, P-521 have cofactor 1), so the flag is accepted and changes
    // nothing.
    return 1;
  });
}

int get_params(void* p, OSSL_PARAM params[]) {
  ExchCtx* c = as_ctx(p);
  OSSL_PARAM* q;
  if ((q = OSSL_PARAM_locate(params, OSSL_EXCHANGE_PARAM_KDF_TYPE)) &&
      !OSSL_PARAM_set_utf8_string(q, c->x963 ? OSSL_KDF_NAME_X963KDF : ""))
    return 0;
  if ((q = OSSL_PARAM_locate(params, OSSL_EXCHANGE_PARAM_KDF_OUTLEN)) &&
      !OSSL_PARAM_set_size_t(q, c->kdf_outlen))
    return 0;
  if ((q = OSSL_PARAM_locate(params, OSSL_EXCHANGE_PARAM_KDF_DIGEST)) && c->kdf_md &&
      !OSSL_PARAM_set_utf8_string(q, md_short_name(c->kdf_md)))
    return 0;
  if ((q = OSSL_PARAM_locate(params, OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE)) &&
      !OSSL_PARAM_set_int(q, 0))
    return 0;
  return 1;
}

const OSSL_PARAM kParams[] = {OSSL_PARAM_int(OSSL_EXCHANGE_PARAM_EC_ECDH_COFACTOR_MODE, nullptr),
                              OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_TYPE, nullptr, 0),
                              OSSL_PARAM_utf8_string(OSSL_EXCHANGE_PARAM_KDF_DIGEST, nullptr, 0),
                              OSSL_PARAM_size_t(OSSL_EXCHANGE_PARAM_KDF_OUTLEN, nullptr),
                              OSSL_PARAM_octet_string(OSSL_EXCHANGE_PARAM_KDF_UKM, nullptr, 0),
                              OSSL_PARAM_END};
const OSSL_PARAM* params_list(void*, void*) { return kParams; }

int init(void* p, void* kd, const OSSL_PARAM params[]) {
  ExchCtx* c = as_ctx(p);
  const KeyData* k = static_cast<const KeyData*>(kd);
  if (k == nullptr || !k->ops) return 0;
  c->ops = k->ops;
  c->field = key_size_bytes(*k);
  return set_params(p, params);
}

int set_peer(void* p, void* kd) {
  ExchCtx* c = as_ctx(p);
  const KeyData* k = static_cast<const KeyData*>(kd);
  if (k == nullptr || k->pub == nullptr) return 0;
  unsigned char* point = nullptr;
  std::size_t n = EVP_PKEY_get1_encoded_public_key(k->pub, &point);
  if (n == 0) return 0;
  c->peer.assign(point, point + n);
  OPENSSL_free(point);
  return 1;
}

Bytes x963(const ExchCtx& c, const Bytes& z) {
  EVP_KDF* kdf = EVP_KDF_fetch(engine_libctx(), OSSL_KDF_NAME_X963KDF, nullptr);
  EVP_KDF_CTX* kctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  Bytes out(c.kdf_outlen);
  std::string md = md_short_name(c.kdf_md);
  OSSL_PARAM ps[] = {
      OSSL_PARAM_utf8_string(OSSL_KDF_PARAM_DIGEST, md.data(), 0),
      OSSL_PARAM_octet_string(OSSL_KDF_PARAM_KEY, const_cast<unsigned char*>(z.data()), z.size()),
      OSSL_PARAM_octet_string(OSSL_KDF_PARAM_INFO, const_cast<unsigned char*>(c.ukm.data()),
                              c.ukm.size()),
      OSSL_PARAM_END};
  const bool ok = kctx != nullptr && EVP_KDF_derive(kctx, out.data(), out.size(), ps) == 1;
  EVP_KDF_CTX_free(kctx);
  if (!ok) throw Error(ErrorKind::Internal, "the X9.63 KDF failed");
  return out;
}

int derive(void* p, unsigned char* secret, size_t* secretlen, size_t outlen) {
  ExchCtx* c = as_ctx(p);
  if (!c->ops) return 0;
  const std::size_t want = c->x963 ? c->kdf_outlen : c->field;
  if (secret == nullptr) {
    *secretlen = want;
    return 1;
  }
  return guarded([&] {
    if (c->peer.empty()) throw Error(ErrorKind::Usage, "ECDH without a peer key");
    if (c->x963 && (c->kdf_md == nullptr || c->kdf_outlen == 0)) {
      throw Error(ErrorKind::Usage, "the X9.63 KDF needs a digest and an output length");
    }
    if (outlen < want) throw Error(ErrorKind::Internal, "ECDH output buffer too small");
    Bytes z = c->ops->derive_ecdh(c->peer, c->field);
    Bytes out = c->x963 ? x963(*c, z) : z;
    std::memcpy(secret, out.data(), out.size());
    *secretlen = out.size();
    wipe(z.data(), z.size());
    wipe(out.data(), out.size());
    return 1;
  });
}

}  // namespace

const OSSL_DISPATCH kExchangeEcdh[] = {{OSSL_FUNC_KEYEXCH_NEWCTX, fn(new_ctx)},
                                       {OSSL_FUNC_KEYEXCH_FREECTX, fn(free_ctx)},
                                       {OSSL_FUNC_KEYEXCH_DUPCTX, fn(dup_ctx)},
                                       {OSSL_FUNC_KEYEXCH_INIT, fn(init)},
                                       {OSSL_FUNC_KEYEXCH_SET_PEER, fn(set_peer)},
                                       {OSSL_FUNC_KEYEXCH_DERIVE, fn(derive)},
                                       {OSSL_FUNC_KEYEXCH_SET_CTX_PARAMS, fn(set_params)},
                                       {OSSL_FUNC_KEYEXCH_SETTABLE_CTX_PARAMS, fn(params_list)},
                                       {OSSL_FUNC_KEYEXCH_GET_CTX_PARAMS, fn(get_params)},
                                       {OSSL_FUNC_KEYEXCH_GETTABLE_CTX_PARAMS, fn(params_list)},
                                       {0, nullptr}};

}  // namespace token::engine
