// AES (PKCS#11 v2.40 section 2.9-2.11): key generation, ECB, CBC, CBC with
// PKCS#7 padding, GCM. Input is buffered and processed at the end (updates
// return no output), which 5.8/5.9 allow; GCM decryption must see the tag
// before releasing any plaintext anyway.
#include <openssl/evp.h>

#include "crypto.h"
#include "error.h"
#include "mechanism.h"

namespace tk {
namespace {

constexpr size_t kBlock = 16;

struct CipherFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

const EVP_CIPHER* cipher_for(CK_MECHANISM_TYPE m, size_t key_len) {
  bool ecb = m == CKM_AES_ECB, gcm = m == CKM_AES_GCM;
  switch (key_len) {
    case 16:
      return ecb ? EVP_aes_128_ecb() : gcm ? EVP_aes_128_gcm() : EVP_aes_128_cbc();
    case 24:
      return ecb ? EVP_aes_192_ecb() : gcm ? EVP_aes_192_gcm() : EVP_aes_192_cbc();
    case 32:
      return ecb ? EVP_aes_256_ecb() : gcm ? EVP_aes_256_gcm() : EVP_aes_256_cbc();
    default:
      fail(CKR_KEY_SIZE_RANGE);
  }
}

class AesOp : public OneShot {
 public:
  AesOp(const CK_MECHANISM& m, OpKind kind, const Secret& key)
      : mech_(m.mechanism),
        decrypt_(kind == OpKind::kDecrypt),
        key_(key),
        cipher_(cipher_for(m.mechanism, key.size())) {
    if (mech_ == CKM_AES_ECB) {
      require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
    } else if (mech_ == CKM_AES_GCM) {
      const auto& p = params_as<CK_GCM_PARAMS>(m);
      require(p.pIv && p.ulIvLen >= 1 && p.ulIvLen <= 128, CKR_MECHANISM_PARAM_INVALID);
      require(p.ulTagBits >= 96 && p.ulTagBits <= 128 && p.ulTagBits % 8 == 0,
              CKR_MECHANISM_PARAM_INVALID);
      require(p.pAAD || !p.ulAADLen, CKR_MECHANISM_PARAM_INVALID);
      iv_ = to_bytes(p.pIv, p.ulIvLen);
      aad_ = to_bytes(p.pAAD, p.ulAADLen);
      tag_ = p.ulTagBits / 8;
    } else {
      require(m.pParameter && m.ulParameterLen == kBlock, CKR_MECHANISM_PARAM_INVALID);
      iv_ = to_bytes(m.pParameter, kBlock);
    }
  }

  size_t output_size(size_t n) const override {
    size_t total = input_.size() + n;
    if (mech_ == CKM_AES_GCM) return decrypt_ ? (total > tag_ ? total - tag_ : 0) : total + tag_;
    if (mech_ == CKM_AES_CBC_PAD && !decrypt_) return total + kBlock - total % kBlock;
    return total;
  }

  Bytes finish() override {
    size_t n = input_.size();
    if (mech_ != CKM_AES_GCM && (mech_ != CKM_AES_CBC_PAD || decrypt_))
      require(n % kBlock == 0, decrypt_ ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_DATA_LEN_RANGE);
    if (mech_ == CKM_AES_GCM && decrypt_) require(n >= tag_, CKR_ENCRYPTED_DATA_LEN_RANGE);
    std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
    require(c && EVP_CipherInit_ex(c.get(), cipher_, nullptr, nullptr, nullptr, !decrypt_) == 1,
            CKR_HOST_MEMORY);
    size_t body = mech_ == CKM_AES_GCM && decrypt_ ? n - tag_ : n;
    int len = 0;
    bool ok = true;
    if (mech_ == CKM_AES_GCM)
      ok = EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(iv_.size()),
                               nullptr) == 1;
    ok = ok && EVP_CipherInit_ex(c.get(), nullptr, nullptr, key_.data(),
                                 iv_.empty() ? nullptr : iv_.data(), !decrypt_) == 1;
    EVP_CIPHER_CTX_set_padding(c.get(), mech_ == CKM_AES_CBC_PAD ? 1 : 0);
    if (ok && !aad_.empty())
      ok =
          EVP_CipherUpdate(c.get(), nullptr, &len, aad_.data(), static_cast<int>(aad_.size())) == 1;
    if (ok && mech_ == CKM_AES_GCM && decrypt_)
      ok = EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag_),
                               input_.data() + body) == 1;
    require(ok, CKR_FUNCTION_FAILED);
    Bytes out(body + kBlock + tag_);
    int total = 0;
    require(EVP_CipherUpdate(c.get(), out.data(), &len, input_.data(), static_cast<int>(body)) == 1,
            CKR_FUNCTION_FAILED);
    total = len;
    // A failed final is a bad tag or bad padding: the ciphertext's fault.
    require(EVP_CipherFinal_ex(c.get(), out.data() + total, &len) == 1,
            decrypt_ ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED);
    total += len;
    if (mech_ == CKM_AES_GCM && !decrypt_) {
      require(EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(tag_),
                                  out.data() + total) == 1,
              CKR_FUNCTION_FAILED);
      total += static_cast<int>(tag_);
    }
    out.resize(static_cast<size_t>(total));
    return out;
  }

 private:
  CK_MECHANISM_TYPE mech_;
  bool decrypt_;
  Secret key_;
  const EVP_CIPHER* cipher_;
  Bytes iv_, aad_;
  size_t tag_ = 0;
};

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef& key) {
  require(kind == OpKind::kEncrypt || kind == OpKind::kDecrypt, CKR_MECHANISM_INVALID);
  return std::make_unique<AesOp>(m, kind, key.value);
}

void generate(const CK_MECHANISM& m, AttrMap& key) {
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  Object o{key, 0, 0, nullptr};
  require(o.has(CKA_VALUE_LEN), CKR_TEMPLATE_INCOMPLETE);
  CK_ULONG len = o.ulong(CKA_VALUE_LEN);
  require(len == 16 || len == 24 || len == 32, CKR_ATTRIBUTE_VALUE_INVALID);
  Secret v(len);
  crypto::random(v.data(), v.size());
  key[CKA_VALUE] = std::move(v);
}

}  // namespace

void register_aes(std::vector<Mechanism>& out) {
  out.push_back({CKM_AES_KEY_GEN, CKK_AES, 16, 32, CKF_GENERATE, nullptr, nullptr, generate});
  for (CK_MECHANISM_TYPE t : {CKM_AES_ECB, CKM_AES_CBC, CKM_AES_CBC_PAD, CKM_AES_GCM})
    out.push_back({t, CKK_AES, 16, 32, CKF_ENCRYPT | CKF_DECRYPT, start, nullptr});
}

}  // namespace tk
