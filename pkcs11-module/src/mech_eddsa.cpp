// Ed25519 (PKCS#11 3.0 sections 6.3.6-6.3.8, usable from a 2.40 module:
// the key type and mechanisms are plain numbers): key pair generation and
// pure EdDSA. Ed25519ph and contexts (CK_EDDSA_PARAMS) are refused.
#include "error.h"
#include "mechanism.h"
#include "pkey.h"

namespace tk {
namespace {

constexpr size_t kKey = 32, kSig = 64;

class EdDsa : public OneShot {
 public:
  EdDsa(OpKind kind, std::shared_ptr<EVP_PKEY> key) : kind_(kind), key_(std::move(key)) {}
  size_t output_size(size_t) const override { return kSig; }
  Bytes finish() override {
    Bytes sig(kSig);
    size_t len = sig.size();
    require(
        start() && EVP_DigestSign(ctx_.get(), sig.data(), &len, input_.data(), input_.size()) == 1,
        CKR_FUNCTION_FAILED);
    sig.resize(len);
    return sig;
  }
  void verify(const uint8_t* sig, size_t n) override {
    require(n == kSig, CKR_SIGNATURE_LEN_RANGE);
    require(start(), CKR_FUNCTION_FAILED);
    require(EVP_DigestVerify(ctx_.get(), sig, n, input_.data(), input_.size()) == 1,
            CKR_SIGNATURE_INVALID);
  }

 private:
  struct CtxFree {
    void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
  };
  // Ed25519 is one-shot in OpenSSL: no digest, the whole message at once.
  bool start() {
    ctx_.reset(EVP_MD_CTX_new());
    if (!ctx_) return false;
    return kind_ == OpKind::kSign
               ? EVP_DigestSignInit(ctx_.get(), nullptr, nullptr, nullptr, key_.get()) == 1
               : EVP_DigestVerifyInit(ctx_.get(), nullptr, nullptr, nullptr, key_.get()) == 1;
  }
  OpKind kind_;
  std::shared_ptr<EVP_PKEY> key_;
  std::unique_ptr<EVP_MD_CTX, CtxFree> ctx_;
};

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef& ref) {
  require(ref.pkey && EVP_PKEY_get_base_id(ref.pkey.get()) == EVP_PKEY_ED25519,
          CKR_KEY_TYPE_INCONSISTENT);
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  return std::make_unique<EdDsa>(kind, ref.pkey);
}

void generate(const CK_MECHANISM& m, KeyPair& pair) {
  generate_raw_25519(m, pair, is_ed25519, "ED25519");
}

}  // namespace

void register_eddsa(std::vector<Mechanism>& out) {
  out.push_back({CKM_EC_EDWARDS_KEY_PAIR_GEN, CKK_EC_EDWARDS, 255, 255, CKF_GENERATE_KEY_PAIR,
                 nullptr, generate});
  out.push_back({CKM_EDDSA, CKK_EC_EDWARDS, 255, 255, CKF_SIGN | CKF_VERIFY, start, nullptr});
}

void generate_raw_25519(const CK_MECHANISM& m, KeyPair& pair, bool (*curve_ok)(const Secret&),
                        const char* algorithm) {
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  Secret params = pair.pub[CKA_EC_PARAMS];
  require(curve_ok(params), CKR_CURVE_NOT_SUPPORTED);
  Pkey k(EVP_PKEY_Q_keygen(libctx(), nullptr, algorithm));
  require(k != nullptr, CKR_FUNCTION_FAILED);
  Bytes pub(kKey);
  Secret priv(kKey);
  size_t plen = pub.size(), klen = priv.size();
  require(EVP_PKEY_get_raw_public_key(k.get(), pub.data(), &plen) == 1 &&
              EVP_PKEY_get_raw_private_key(k.get(), priv.data(), &klen) == 1,
          CKR_FUNCTION_FAILED);
  Bytes der = ec_point_der(pub);
  pair.pub[CKA_EC_POINT] = Secret(der.begin(), der.end());
  pair.priv[CKA_EC_PARAMS] = params;
  pair.priv[CKA_VALUE] = std::move(priv);
}

}  // namespace tk
