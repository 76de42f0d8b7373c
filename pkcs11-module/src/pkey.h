// Key objects <-> OpenSSL EVP_PKEY. An object's EVP_PKEY is built once and
// cached on the object (dropped with it at logout), so an operation costs
// what OpenSSL costs.
#pragma once

#include <string>

#include "object.h"

namespace tk {

// The module's own OpenSSL library context (default provider only). The
// module lives in other people's processes: one that has loaded an ENGINE
// for RSA or EC (the openssl CLI with libp11's engine) makes the global
// context build keys through that engine, where EVP_PKEY_fromdata fails.
OSSL_LIB_CTX* libctx();

// A new EVP_PKEY_CTX for "RSA" or "EC" in libctx(), for EVP_PKEY_fromdata
// and key generation, that no ENGINE can take over (null when out of
// memory). OpenSSL 3.0's EVP_PKEY_CTX_new_from_name maps a known key type
// name to its NID and asks the global ENGINE table for a pkey method, in any
// library context: with libp11's engine as the default (openssl -engine
// pkcs11) the context is the engine's, and EVP_PKEY_fromdata_init fails
// ("operation not supported for this keytype"). The provider's OID name
// ("1.2.840.113549.1.1.1") maps to no NID there, so OpenSSL fetches the
// default provider's key manager straight away.
EVP_PKEY_CTX* key_ctx(const char* type);

// The object's key, built on first use. CKR_KEY_TYPE_INCONSISTENT for
// objects that are not RSA or EC keys.
std::shared_ptr<EVP_PKEY> pkey_of(Object& o);

// An unsigned big-endian BIGNUM parameter of a key (OSSL_PKEY_PARAM_*).
Secret bn_param(EVP_PKEY* k, const char* name);

// "P-256", "P-384" or "P-521" for a DER OID in CKA_EC_PARAMS, else
// CKR_CURVE_NOT_SUPPORTED.
std::string curve_name(const Secret& ec_params);

// True for CKA_EC_PARAMS naming Ed25519: the OID 1.3.101.112 or the
// PrintableString "edwards25519" (PKCS#11 3.0 6.3.6 allows both).
bool is_ed25519(const Secret& ec_params);

// True for CKA_EC_PARAMS naming X25519: the OID 1.3.101.110 or the
// PrintableString "curve25519" (PKCS#11 3.0 2.3.7 allows both).
bool is_x25519(const Secret& ec_params);

// CKA_EC_POINT holds the DER OCTET STRING of the point (v2.40 2.3.3); some
// applications pass the bare point: accept both, store DER.
Bytes ec_point_der(const Bytes& raw_point);
Bytes ec_point_raw(const Secret& attr);

}  // namespace tk
