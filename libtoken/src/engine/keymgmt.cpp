// The provider's key management for RSA, EC, Ed25519 and X25519 token keys. The public half
// is an ordinary default-provider key, so size, match and public export are
// delegated to it; the private half never leaves the token, and an export
// that asks for it is refused, which is also what keeps OpenSSL from moving
// a token key to another provider's signature or cipher.
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "internal.hpp"

namespace token::engine {

namespace {

KeyData* as_key(void* p) { return static_cast<KeyData*>(p); }
const KeyData* as_key(const void* p) { return static_cast<const KeyData*>(p); }

void* new_rsa(void*) { return new (std::nothrow) KeyData{EVP_PKEY_RSA, nullptr, nullptr}; }
void* new_ec(void*) { return new (std::nothrow) KeyData{EVP_PKEY_EC, nullptr, nullptr}; }
void* new_ed25519(void*) { return new (std::nothrow) KeyData{EVP_PKEY_ED25519, nullptr, nullptr}; }
void* new_x25519(void*) { return new (std::nothrow) KeyData{EVP_PKEY_X25519, nullptr, nullptr}; }
void free_key(void* k) { delete as_key(k); }

int has(const void* kd, int selection) {
  const KeyData* k = as_key(kd);
  if (k == nullptr || k->pub == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !k->ops) return 0;
  // An EC key made from domain parameters alone has no point yet.
  std::size_t len = 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) && k->type == EVP_PKEY_EC &&
      EVP_PKEY_get_octet_string_param(k->pub, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len) != 1) {
    return 0;
  }
  return 1;
}

int match(const void* a, const void* b, int selection) {
  const KeyData* x = as_key(a);
  const KeyData* y = as_key(b);
  if (x->pub == nullptr || y->pub == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) == 0)
    return EVP_PKEY_parameters_eq(x->pub, y->pub) == 1;
  return EVP_PKEY_eq(x->pub, y->pub) == 1;
}

// From open_private_key(): the seed. From OpenSSL moving an ordinary key to
// us (a certificate's key to compare, an ECDH peer): its public parameters.
int import_key(void* kd, int selection, const OSSL_PARAM params[]) {
  KeyData* k = as_key(kd);
  if (const OSSL_PARAM* p = OSSL_PARAM_locate_const(params, kSeedParam)) {
    const KeySeed* seed = *static_cast<const KeySeed* const*>(p->data);
    if (!EVP_PKEY_up_ref(seed->pub)) return 0;
    k->pub = seed->pub;
    k->ops = seed->ops;
    return 1;
  }
  // Domain parameters alone: CMS builds an ECDH originator key by copying
  // our key's curve (EVP_PKEY_copy_parameters) and then setting the point.
  const bool public_key = (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) != 0;
  if (!public_key &&
      (k->type != EVP_PKEY_EC || !(selection & OSSL_KEYMGMT_SELECT_ALL_PARAMETERS))) {
    return 0;
  }
  EVP_PKEY_CTX* ctx =
      EVP_PKEY_CTX_new_from_name(engine_libctx(), key_type_name(k->type), "provider=default");
  EVP_PKEY* pub = nullptr;
  const int what = public_key ? EVP_PKEY_PUBLIC_KEY : EVP_PKEY_KEY_PARAMETERS;
  int ok = ctx != nullptr && EVP_PKEY_fromdata_init(ctx) == 1 &&
           EVP_PKEY_fromdata(ctx, &pub, what, const_cast<OSSL_PARAM*>(params)) == 1;
  EVP_PKEY_CTX_free(ctx);
  if (!ok) return 0;
  EVP_PKEY_free(k->pub);
  k->pub = pub;
  return 1;
}

const OSSL_PARAM kRsaImport[] = {OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
                                 OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM kEcImport[] = {OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
                                OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                OSSL_PARAM_END};
const OSSL_PARAM kEdImport[] = {OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
                                OSSL_PARAM_END};
const OSSL_PARAM* rsa_types(int) { return kRsaImport; }
const OSSL_PARAM* ed_types(int) { return kEdImport; }
const OSSL_PARAM* ec_types(int) { return kEcImport; }

int export_key(void* kd, int selection, OSSL_CALLBACK* cb, void* cbarg) {
  KeyData* k = as_key(kd);
  if (k->pub == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && k->ops) return 0;
  return EVP_PKEY_export(k->pub, selection & ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY, cb, cbarg);
}

int get_params(void* kd, OSSL_PARAM params[]) {
  KeyData* k = as_key(kd);
  return k->pub != nullptr && EVP_PKEY_get_params(k->pub, params) == 1;
}

// Only for keys that are not on the token: the point of an ECDH peer.
int set_params(void* kd, const OSSL_PARAM params[]) {
  KeyData* k = as_key(kd);
  return !k->ops && k->pub != nullptr &&
         EVP_PKEY_set_params(k->pub, const_cast<OSSL_PARAM*>(params)) == 1;
}

const OSSL_PARAM kSettable[] = {
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0), OSSL_PARAM_END};
const OSSL_PARAM* settable(void*) { return kSettable; }

// A peer's public key is checked by the default provider before the token
// derives with it (a point off the curve would leak key bits).
int validate(const void* kd, int selection, int checktype) {
  const KeyData* k = as_key(kd);
  if (k->pub == nullptr) return 0;
  if ((selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) == 0) return 1;
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_pkey(engine_libctx(), k->pub, "provider=default");
  const int ok = ctx != nullptr &&
                 (checktype == OSSL_KEYMGMT_VALIDATE_QUICK_CHECK ? EVP_PKEY_public_check_quick(ctx)
                                                                 : EVP_PKEY_public_check(ctx)) == 1;
  EVP_PKEY_CTX_free(ctx);
  return ok;
}

const OSSL_PARAM kGettable[] = {
    OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, nullptr),
    OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, nullptr),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, nullptr, 0),
    OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, nullptr, 0),
    OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_N, nullptr, 0),
    OSSL_PARAM_BN(OSSL_PKEY_PARAM_RSA_E, nullptr, 0),
    OSSL_PARAM_END};
const OSSL_PARAM* gettable(void*) { return kGettable; }

const char* rsa_operation(int) { return "RSA"; }
const char* ec_operation(int op) { return op == OSSL_OP_KEYEXCH ? "ECDH" : "ECDSA"; }
const char* ed_operation(int) { return "ED25519"; }
const char* x_operation(int) { return "X25519"; }

}  // namespace

#define TOKENKIT_KEYMGMT_COMMON                                                                   \
  {OSSL_FUNC_KEYMGMT_FREE, fn(free_key)}, {OSSL_FUNC_KEYMGMT_HAS, fn(has)},                       \
      {OSSL_FUNC_KEYMGMT_MATCH, fn(match)}, {OSSL_FUNC_KEYMGMT_IMPORT, fn(import_key)},           \
      {OSSL_FUNC_KEYMGMT_EXPORT, fn(export_key)}, {OSSL_FUNC_KEYMGMT_GET_PARAMS, fn(get_params)}, \
      {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, fn(gettable)},                                          \
      {OSSL_FUNC_KEYMGMT_SET_PARAMS, fn(set_params)},                                             \
      {OSSL_FUNC_KEYMGMT_SETTABLE_PARAMS, fn(settable)}, {                                        \
    OSSL_FUNC_KEYMGMT_VALIDATE, fn(validate)                                                      \
  }

const OSSL_DISPATCH kKeymgmtRsa[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(new_rsa)},
                                     TOKENKIT_KEYMGMT_COMMON,
                                     {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(rsa_types)},
                                     {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(rsa_types)},
                                     {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(rsa_operation)},
                                     {0, nullptr}};

const OSSL_DISPATCH kKeymgmtEc[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(new_ec)},
                                    TOKENKIT_KEYMGMT_COMMON,
                                    {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(ec_types)},
                                    {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(ec_types)},
                                    {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(ec_operation)},
                                    {0, nullptr}};

}  // namespace token::engine

namespace token::engine {

const OSSL_DISPATCH kKeymgmtEd25519[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(new_ed25519)},
                                         TOKENKIT_KEYMGMT_COMMON,
                                         {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(ed_types)},
                                         {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(ed_types)},
                                         {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(ed_operation)},
                                         {0, nullptr}};

// X25519 (RFC 7748): key agreement only, through the ECDH exchange below.
const OSSL_DISPATCH kKeymgmtX25519[] = {{OSSL_FUNC_KEYMGMT_NEW, fn(new_x25519)},
                                        TOKENKIT_KEYMGMT_COMMON,
                                        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, fn(ed_types)},
                                        {OSSL_FUNC_KEYMGMT_EXPORT_TYPES, fn(ed_types)},
                                        {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, fn(x_operation)},
                                        {0, nullptr}};

}  // namespace token::engine
