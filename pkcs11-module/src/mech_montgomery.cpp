// Montgomery-curve keys (PKCS#11 3.0 sections 2.3.7, 6.3.8; usable from a
// 2.40 module, the names are plain numbers): X25519 key pair generation
// (CKM_EC_MONTGOMERY_KEY_PAIR_GEN) and CKM_ECDH1_DERIVE on X25519 keys, the
// key agreement of S/MIME's RFC 8418. X448 is refused (CKR_CURVE_NOT_SUPPORTED).
#include "error.h"
#include "mechanism.h"
#include "pkey.h"

namespace tk {
namespace {

constexpr size_t kKey = 32;

struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

// 2.3.7: CKA_EC_PARAMS names the curve; CKA_EC_POINT is the public key's 32
// bytes (RFC 7748 u-coordinate), stored as a DER OCTET STRING like the EC
// and Edwards points here; CKA_VALUE the 32-byte private scalar.
void generate(const CK_MECHANISM& m, KeyPair& pair) {
  generate_raw_25519(m, pair, is_x25519, "X25519");
}

// CKM_ECDH1_DERIVE (2.3.15 with 6.3.8's Montgomery keys): Z is RFC 7748's
// X25519(d, u_peer); the peer's public data is its 32 bytes, raw or as a
// DER OCTET STRING. OpenSSL refuses a peer that gives an all-zero Z (a
// small-order point, RFC 7748 section 6.1): CKR_MECHANISM_PARAM_INVALID.
Secret derive(const CK_MECHANISM& m, const KeyRef& base, size_t len) {
  const auto& p = params_as<CK_ECDH1_DERIVE_PARAMS>(m);
  require(p.pPublicData && p.ulPublicDataLen, CKR_MECHANISM_PARAM_INVALID);
  require(p.pSharedData || !p.ulSharedDataLen, CKR_MECHANISM_PARAM_INVALID);
  require(p.kdf != CKD_NULL || p.ulSharedDataLen == 0, CKR_MECHANISM_PARAM_INVALID);
  require(base.pkey && EVP_PKEY_is_a(base.pkey.get(), "X25519"), CKR_KEY_TYPE_INCONSISTENT);
  Bytes given = to_bytes(p.pPublicData, p.ulPublicDataLen);
  Bytes raw = ec_point_raw(Secret(given.begin(), given.end()));
  require(raw.size() == kKey, CKR_MECHANISM_PARAM_INVALID);
  Pkey peer(EVP_PKEY_new_raw_public_key_ex(libctx(), "X25519", nullptr, raw.data(), raw.size()));
  require(peer != nullptr, CKR_MECHANISM_PARAM_INVALID);
  PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(libctx(), base.pkey.get(), nullptr));
  size_t zlen = kKey;
  Secret z(kKey);
  require(
      c && EVP_PKEY_derive_init(c.get()) == 1 && EVP_PKEY_derive_set_peer(c.get(), peer.get()) == 1,
      CKR_MECHANISM_PARAM_INVALID);
  require(EVP_PKEY_derive(c.get(), z.data(), &zlen) == 1 && zlen == kKey,
          CKR_MECHANISM_PARAM_INVALID);
  return ecdh_kdf(std::move(z), p, len);
}

}  // namespace

void register_montgomery(std::vector<Mechanism>& out) {
  // Key sizes in bits, as for the Edwards keys (6.3.8 leaves them to the
  // token): curve25519 only.
  out.push_back({CKM_EC_MONTGOMERY_KEY_PAIR_GEN, CKK_EC_MONTGOMERY, 255, 255, CKF_GENERATE_KEY_PAIR,
                 nullptr, generate});
  out.push_back({CKM_ECDH1_DERIVE, CKK_EC_MONTGOMERY, 255, 255, CKF_DERIVE, nullptr, nullptr,
                 nullptr, derive});
}

}  // namespace tk
