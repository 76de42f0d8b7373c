// The tokenkit provider and the private library context it lives in.
// Registered with OSSL_PROVIDER_add_builtin in that context only, beside the
// default provider: nothing changes for keys in OpenSSL's global context.
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/provider.h>

#include "internal.hpp"

namespace token::engine {

namespace {

// "provider=tokenkit" lets open_private_key() pick our keymgmt; the other
// operations are found through the key's keymgmt (query_operation_name).
constexpr const char* kProps = "provider=tokenkit";

// The tables hold the addresses of other files' dispatch tables: address
// constants, fixed at link time, whatever the order of initialisation.
// NOLINTBEGIN(cppcoreguidelines-interfaces-global-init)
const OSSL_ALGORITHM kKeymgmt[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProps, kKeymgmtRsa, "RSA key on a PKCS#11 token"},
    {"EC:id-ecPublicKey:1.2.840.10045.2.1", kProps, kKeymgmtEc, "EC key on a PKCS#11 token"},
    {"ED25519:1.3.101.112", kProps, kKeymgmtEd25519, "Ed25519 key on a PKCS#11 token"},
    {"X25519:1.3.101.110", kProps, kKeymgmtX25519, "X25519 key on a PKCS#11 token"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kSignature[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProps, kSignatureRsa, "RSA on a token"},
    {"ECDSA", kProps, kSignatureEcdsa, "ECDSA on a token"},
    {"ED25519:1.3.101.112", kProps, kSignatureEd25519, "pure Ed25519 on a token (CKM_EDDSA)"},
    {nullptr, nullptr, nullptr, nullptr}};
const OSSL_ALGORITHM kCipher[] = {
    {"RSA:rsaEncryption:1.2.840.113549.1.1.1", kProps, kCipherRsa, "RSA on a token"},
    {nullptr, nullptr, nullptr, nullptr}};
// X25519 shares the ECDH exchange: CKM_ECDH1_DERIVE takes both key types
// (PKCS#11 3.0 section 6.3.8), and RFC 8418's HKDF runs in the caller.
const OSSL_ALGORITHM kExchange[] = {
    {"ECDH", kProps, kExchangeEcdh, "ECDH on a token"},
    {"X25519:1.3.101.110", kProps, kExchangeEcdh, "X25519 on a token (CKM_ECDH1_DERIVE)"},
    {nullptr, nullptr, nullptr, nullptr}};
// NOLINTEND(cppcoreguidelines-interfaces-global-init)

const OSSL_ALGORITHM* query(void*, int operation, int* no_cache) {
  *no_cache = 0;
  switch (operation) {
    case OSSL_OP_KEYMGMT:
      return kKeymgmt;
    case OSSL_OP_SIGNATURE:
      return kSignature;
    case OSSL_OP_ASYM_CIPHER:
      return kCipher;
    case OSSL_OP_KEYEXCH:
      return kExchange;
    default:
      return nullptr;
  }
}

void teardown(void*) {}

const OSSL_DISPATCH kProvider[] = {{OSSL_FUNC_PROVIDER_QUERY_OPERATION, fn(query)},
                                   {OSSL_FUNC_PROVIDER_TEARDOWN, fn(teardown)},
                                   {0, nullptr}};

int provider_init(const OSSL_CORE_HANDLE*, const OSSL_DISPATCH*, const OSSL_DISPATCH** out,
                  void** provctx) {
  *out = kProvider;
  *provctx = const_cast<OSSL_DISPATCH*>(kProvider);  // unused, but must not be null
  return 1;
}

OSSL_LIB_CTX* make_libctx() {
  OSSL_LIB_CTX* ctx = OSSL_LIB_CTX_new();
  if (ctx == nullptr || !OSSL_PROVIDER_add_builtin(ctx, "tokenkit", provider_init) ||
      OSSL_PROVIDER_load(ctx, "default") == nullptr ||
      OSSL_PROVIDER_load(ctx, "tokenkit") == nullptr) {
    throw Error(ErrorKind::Internal, "cannot set up the OpenSSL library context for token keys");
  }
  return ctx;
}

}  // namespace

}  // namespace token::engine

namespace token {

OSSL_LIB_CTX* engine_libctx() {
  // Lives as long as the process: keys handed out may be used until exit.
  static OSSL_LIB_CTX* ctx = engine::make_libctx();
  return ctx;
}

}  // namespace token
