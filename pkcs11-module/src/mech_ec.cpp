// Elliptic-curve mechanisms (PKCS#11 v2.40 section 2.3): key pair generation
// on P-256/384/521, ECDSA on a given hash and ECDSA with SHA-1/SHA-2.
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>

#include "error.h"
#include "mechanism.h"
#include "pkey.h"

namespace tk {
namespace {

struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

struct SigFree {
  void operator()(ECDSA_SIG* s) const { ECDSA_SIG_free(s); }
};
using Sig = std::unique_ptr<ECDSA_SIG, SigFree>;

// Bytes of the group order: r and s each take this many (2.3.1: "the
// signature is r || s, each ... of the length of the order").
size_t order_bytes(EVP_PKEY* k) { return (static_cast<size_t>(EVP_PKEY_get_bits(k)) + 7) / 8; }

// The largest DER ECDSA signature of the curves we have (P-521: a SEQUENCE
// with a two-byte length of two INTEGERs of up to 67 bytes: 141 bytes).
constexpr size_t kMaxDer = 160;

Bytes der_to_raw(const uint8_t* der, size_t len, size_t n) {
  const unsigned char* p = der;
  Sig sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  require(sig != nullptr, CKR_FUNCTION_FAILED);
  Bytes out(2 * n);
  require(BN_bn2binpad(ECDSA_SIG_get0_r(sig.get()), out.data(), static_cast<int>(n)) > 0 &&
              BN_bn2binpad(ECDSA_SIG_get0_s(sig.get()), out.data() + n, static_cast<int>(n)) > 0,
          CKR_FUNCTION_FAILED);
  return out;
}

Bytes raw_to_der(const uint8_t* sig, size_t len, size_t n) {
  require(len == 2 * n, CKR_SIGNATURE_LEN_RANGE);
  Sig s(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(sig, static_cast<int>(n), nullptr);
  BIGNUM* t = BN_bin2bn(sig + n, static_cast<int>(n), nullptr);
  if (!s || !r || !t || ECDSA_SIG_set0(s.get(), r, t) != 1) {
    BN_free(r);
    BN_free(t);
    fail(CKR_HOST_MEMORY);
  }
  unsigned char* der = nullptr;
  int dlen = i2d_ECDSA_SIG(s.get(), &der);
  require(dlen > 0, CKR_FUNCTION_FAILED);
  Bytes out(der, der + dlen);
  OPENSSL_free(der);
  return out;
}

// CKM_ECDSA: the input is the hash, signed as given.
class EcdsaRaw : public OneShot {
 public:
  explicit EcdsaRaw(std::shared_ptr<EVP_PKEY> key)
      : key_(std::move(key)), n_(order_bytes(key_.get())) {}
  size_t output_size(size_t) const override { return 2 * n_; }
  Bytes finish() override {
    require(!input_.empty() && input_.size() <= 64, CKR_DATA_LEN_RANGE);
    PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    // Into a buffer of the largest DER signature, not after a size query
    // (which costs OpenSSL an encoding of a dummy signature).
    uint8_t der[kMaxDer];
    size_t len = sizeof der;
    require(c && EVP_PKEY_sign_init(c.get()) == 1 &&
                EVP_PKEY_sign(c.get(), der, &len, input_.data(), input_.size()) == 1,
            CKR_FUNCTION_FAILED);
    return der_to_raw(der, len, n_);
  }
  void verify(const uint8_t* sig, size_t n) override {
    Bytes der = raw_to_der(sig, n, n_);
    PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    require(c && EVP_PKEY_verify_init(c.get()) == 1, CKR_FUNCTION_FAILED);
    require(EVP_PKEY_verify(c.get(), der.data(), der.size(), input_.data(), input_.size()) == 1,
            CKR_SIGNATURE_INVALID);
  }

 private:
  std::shared_ptr<EVP_PKEY> key_;
  size_t n_;
};

// CKM_ECDSA_SHAx: multi-part hash and sign.
class EcdsaHash : public Operation {
 public:
  EcdsaHash(OpKind kind, const EVP_MD* md, std::shared_ptr<EVP_PKEY> key)
      : kind_(kind), key_(std::move(key)), n_(order_bytes(key_.get())), ctx_(EVP_MD_CTX_new()) {
    int rc = kind == OpKind::kSign ? EVP_DigestSignInit(ctx_, nullptr, md, nullptr, key_.get())
                                   : EVP_DigestVerifyInit(ctx_, nullptr, md, nullptr, key_.get());
    require(ctx_ && rc == 1, CKR_FUNCTION_FAILED);
  }
  ~EcdsaHash() override { EVP_MD_CTX_free(ctx_); }
  EcdsaHash(const EcdsaHash&) = delete;
  EcdsaHash& operator=(const EcdsaHash&) = delete;
  void update(const uint8_t* data, size_t n) override {
    int rc = kind_ == OpKind::kSign ? EVP_DigestSignUpdate(ctx_, data, n)
                                    : EVP_DigestVerifyUpdate(ctx_, data, n);
    require(rc == 1, CKR_FUNCTION_FAILED);
  }
  size_t output_size(size_t) const override { return 2 * n_; }
  Bytes finish() override {
    uint8_t der[kMaxDer];
    size_t len = sizeof der;
    require(EVP_DigestSignFinal(ctx_, der, &len) == 1, CKR_FUNCTION_FAILED);
    return der_to_raw(der, len, n_);
  }
  void verify(const uint8_t* sig, size_t n) override {
    Bytes der = raw_to_der(sig, n, n_);
    require(EVP_DigestVerifyFinal(ctx_, der.data(), der.size()) == 1, CKR_SIGNATURE_INVALID);
  }

 private:
  OpKind kind_;
  std::shared_ptr<EVP_PKEY> key_;
  size_t n_;
  EVP_MD_CTX* ctx_;
};

const EVP_MD* hash_of(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_ECDSA_SHA1:
      return EVP_sha1();
    case CKM_ECDSA_SHA224:
      return EVP_sha224();
    case CKM_ECDSA_SHA256:
      return EVP_sha256();
    case CKM_ECDSA_SHA384:
      return EVP_sha384();
    case CKM_ECDSA_SHA512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef& ref) {
  std::shared_ptr<EVP_PKEY> key = ref.pkey;
  require(key != nullptr, CKR_KEY_TYPE_INCONSISTENT);
  require(EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_EC, CKR_KEY_TYPE_INCONSISTENT);
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  if (m.mechanism == CKM_ECDSA) return std::make_unique<EcdsaRaw>(std::move(key));
  return std::make_unique<EcdsaHash>(kind, hash_of(m.mechanism), std::move(key));
}

void generate(const CK_MECHANISM& m, KeyPair& pair) {
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  Secret params = pair.pub[CKA_EC_PARAMS];
  std::string curve = curve_name(params);
  PkeyCtx c(key_ctx("EC"));
  EVP_PKEY* raw = nullptr;
  require(c && EVP_PKEY_keygen_init(c.get()) == 1 &&
              EVP_PKEY_CTX_set_group_name(c.get(), curve.c_str()) == 1 &&
              EVP_PKEY_keygen(c.get(), &raw) == 1,
          CKR_FUNCTION_FAILED);
  Pkey k(raw);
  size_t len = 0;
  require(EVP_PKEY_get_octet_string_param(k.get(), OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len) == 1,
          CKR_FUNCTION_FAILED);
  Bytes point(len);
  require(EVP_PKEY_get_octet_string_param(k.get(), OSSL_PKEY_PARAM_PUB_KEY, point.data(), len,
                                          &len) == 1,
          CKR_FUNCTION_FAILED);
  Bytes der = ec_point_der(point);
  pair.pub[CKA_EC_POINT] = Secret(der.begin(), der.end());
  pair.priv[CKA_EC_PARAMS] = params;
  // The private value, padded to the order's length as 2.3.4 shows it.
  Secret d = bn_param(k.get(), OSSL_PKEY_PARAM_PRIV_KEY);
  size_t n = order_bytes(k.get());
  if (d.size() < n) d.insert(d.begin(), n - d.size(), 0);
  pair.priv[CKA_VALUE] = std::move(d);
}

const char* kdf_digest(CK_ULONG kdf) {
  switch (kdf) {
    case CKD_SHA1_KDF:
      return "SHA1";
    case CKD_SHA224_KDF:
      return "SHA224";
    case CKD_SHA256_KDF:
      return "SHA256";
    case CKD_SHA384_KDF:
      return "SHA384";
    case CKD_SHA512_KDF:
      return "SHA512";
    default:
      fail(CKR_MECHANISM_PARAM_INVALID);
  }
}

// ANSI X9.63 KDF (2.3.16 CKD_SHAx_KDF) over the shared secret.
Secret x963(const Secret& z, CK_ULONG kdf, const Bytes& info, size_t len) {
  require(len > 0, CKR_TEMPLATE_INCOMPLETE);
  EVP_KDF* k = EVP_KDF_fetch(nullptr, "X963KDF", nullptr);
  EVP_KDF_CTX* c = k ? EVP_KDF_CTX_new(k) : nullptr;
  EVP_KDF_free(k);
  require(c != nullptr, CKR_FUNCTION_FAILED);
  std::string md = kdf_digest(kdf);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md.data(), 0),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(z.data()), z.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_INFO, const_cast<uint8_t*>(info.data()), info.size()),
                         OSSL_PARAM_construct_end()};
  Secret out(len);
  int ok = EVP_KDF_derive(c, out.data(), len, params);
  EVP_KDF_CTX_free(c);
  require(ok == 1, CKR_FUNCTION_FAILED);
  return out;
}

// CKM_ECDH1_DERIVE (2.3.15): Z = x coordinate of d * Q_peer, then the KDF.
Secret derive(const CK_MECHANISM& m, const KeyRef& base, size_t len) {
  const auto& p = params_as<CK_ECDH1_DERIVE_PARAMS>(m);
  require(p.pPublicData && p.ulPublicDataLen, CKR_MECHANISM_PARAM_INVALID);
  require(p.pSharedData || !p.ulSharedDataLen, CKR_MECHANISM_PARAM_INVALID);
  // 2.3.15: with CKD_NULL there is no shared data.
  require(p.kdf != CKD_NULL || p.ulSharedDataLen == 0, CKR_MECHANISM_PARAM_INVALID);
  Bytes point = to_bytes(p.pPublicData, p.ulPublicDataLen);
  Secret wrapped(point.begin(), point.end());
  Bytes raw = ec_point_raw(wrapped);
  char group[32] = {};
  size_t glen = 0;
  require(EVP_PKEY_get_utf8_string_param(base.pkey.get(), OSSL_PKEY_PARAM_GROUP_NAME, group,
                                         sizeof group, &glen) == 1,
          CKR_FUNCTION_FAILED);
  OSSL_PARAM pp[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
      OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, raw.data(), raw.size()),
      OSSL_PARAM_construct_end()};
  PkeyCtx fc(key_ctx("EC"));
  EVP_PKEY* peer_raw = nullptr;
  require(fc && EVP_PKEY_fromdata_init(fc.get()) == 1 &&
              EVP_PKEY_fromdata(fc.get(), &peer_raw, EVP_PKEY_PUBLIC_KEY, pp) == 1,
          CKR_MECHANISM_PARAM_INVALID);
  Pkey peer(peer_raw);
  PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, base.pkey.get(), nullptr));
  size_t zlen = 0;
  require(c && EVP_PKEY_derive_init(c.get()) == 1 &&
              EVP_PKEY_derive_set_peer(c.get(), peer.get()) == 1 &&
              EVP_PKEY_derive(c.get(), nullptr, &zlen) == 1,
          CKR_MECHANISM_PARAM_INVALID);
  Secret z(zlen);
  require(EVP_PKEY_derive(c.get(), z.data(), &zlen) == 1, CKR_FUNCTION_FAILED);
  z.resize(zlen);
  return ecdh_kdf(std::move(z), p, len);
}

}  // namespace

Secret ecdh_kdf(Secret z, const CK_ECDH1_DERIVE_PARAMS& p, size_t len) {
  if (p.kdf != CKD_NULL) return x963(z, p.kdf, to_bytes(p.pSharedData, p.ulSharedDataLen), len);
  // CKD_NULL: the raw secret; a shorter key takes its leading bytes.
  require(len <= z.size(), CKR_TEMPLATE_INCONSISTENT);
  if (len) z.resize(len);
  return z;
}

void register_ec(std::vector<Mechanism>& out) {
  constexpr CK_FLAGS kCurves = CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS;
  out.push_back(
      {CKM_EC_KEY_PAIR_GEN, CKK_EC, 256, 521, CKF_GENERATE_KEY_PAIR | kCurves, nullptr, generate});
  out.push_back({CKM_ECDH1_DERIVE, CKK_EC, 256, 521, CKF_DERIVE | kCurves, nullptr, nullptr,
                 nullptr, derive});
  for (CK_MECHANISM_TYPE t : {CKM_ECDSA, CKM_ECDSA_SHA1, CKM_ECDSA_SHA224, CKM_ECDSA_SHA256,
                              CKM_ECDSA_SHA384, CKM_ECDSA_SHA512})
    out.push_back({t, CKK_EC, 256, 521, CKF_SIGN | CKF_VERIFY | kCurves, start, nullptr});
}

}  // namespace tk
