// AES (PKCS#11 v2.40 section 2.9-2.11): key generation, ECB, CBC, CBC with
// PKCS#7 padding, GCM.
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

struct Params {
  Bytes iv, aad;
  size_t tag = 0;
};

Params params_of(const CK_MECHANISM& m) {
  Params p;
  if (m.mechanism == CKM_AES_ECB) {
    require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  } else if (m.mechanism == CKM_AES_GCM) {
    const auto& g = params_as<CK_GCM_PARAMS>(m);
    require(g.pIv && g.ulIvLen >= 1 && g.ulIvLen <= 128, CKR_MECHANISM_PARAM_INVALID);
    require(g.ulTagBits >= 96 && g.ulTagBits <= 128 && g.ulTagBits % 8 == 0,
            CKR_MECHANISM_PARAM_INVALID);
    require(g.pAAD || !g.ulAADLen, CKR_MECHANISM_PARAM_INVALID);
    p.iv = to_bytes(g.pIv, g.ulIvLen);
    p.aad = to_bytes(g.pAAD, g.ulAADLen);
    p.tag = g.ulTagBits / 8;
  } else {
    require(m.pParameter && m.ulParameterLen == kBlock, CKR_MECHANISM_PARAM_INVALID);
    p.iv = to_bytes(m.pParameter, kBlock);
  }
  return p;
}

// ECB, CBC, CBC_PAD: streamed through one EVP_CIPHER_CTX. Each update
// returns the whole blocks it completes (NSS's CMS decoder needs them as it
// goes); with padding, decryption holds the last block back for the final.
class AesStream : public Operation {
 public:
  AesStream(const CK_MECHANISM& m, OpKind kind, const Secret& key)
      : decrypt_(kind == OpKind::kDecrypt),
        pad_(m.mechanism == CKM_AES_CBC_PAD),
        ctx_(EVP_CIPHER_CTX_new()) {
    Params p = params_of(m);
    const EVP_CIPHER* c = cipher_for(m.mechanism, key.size());
    require(ctx_ && EVP_CipherInit_ex(ctx_.get(), c, nullptr, key.data(),
                                      p.iv.empty() ? nullptr : p.iv.data(), !decrypt_) == 1,
            CKR_FUNCTION_FAILED);
    EVP_CIPHER_CTX_set_padding(ctx_.get(), pad_ ? 1 : 0);
  }

  size_t part_size(size_t n) const override {
    size_t t = pending_ + n;
    if (decrypt_ && pad_) return t == 0 ? 0 : ((t - 1) / kBlock) * kBlock;
    return (t / kBlock) * kBlock;
  }
  Bytes update_out(const uint8_t* data, size_t n) override {
    size_t want = part_size(n);
    Bytes out(want + kBlock);
    int len = 0;
    require(EVP_CipherUpdate(ctx_.get(), out.data(), &len, data, static_cast<int>(n)) == 1,
            CKR_FUNCTION_FAILED);
    require(static_cast<size_t>(len) == want, CKR_GENERAL_ERROR);
    pending_ = pending_ + n - want;
    out.resize(want);
    return out;
  }
  void update(const uint8_t* data, size_t n) override {
    Bytes part = update_out(data, n);
    done_.insert(done_.end(), part.begin(), part.end());
  }
  size_t output_size(size_t n) const override {
    size_t t = pending_ + n;
    if (pad_ && !decrypt_) return done_.size() + t + kBlock - t % kBlock;
    return done_.size() + t;
  }
  Bytes finish() override {
    if (!pad_ || decrypt_)
      require(pending_ % kBlock == 0, decrypt_ ? CKR_ENCRYPTED_DATA_LEN_RANGE : CKR_DATA_LEN_RANGE);
    Bytes out = std::move(done_);
    size_t at = out.size();
    out.resize(at + kBlock);
    int len = 0;
    // A failed final when decrypting is bad padding: the ciphertext's fault.
    require(EVP_CipherFinal_ex(ctx_.get(), out.data() + at, &len) == 1,
            decrypt_ ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED);
    out.resize(at + static_cast<size_t>(len));
    return out;
  }

 private:
  bool decrypt_, pad_;
  std::unique_ptr<EVP_CIPHER_CTX, CipherFree> ctx_;
  size_t pending_ = 0;  // input bytes EVP holds, not yet output
  Bytes done_;          // output of update(), for single-part calls
};

// GCM: buffered; decryption releases no plaintext before the tag checks.
class AesGcm : public OneShot {
 public:
  AesGcm(const CK_MECHANISM& m, OpKind kind, const Secret& key)
      : decrypt_(kind == OpKind::kDecrypt),
        key_(key),
        cipher_(cipher_for(m.mechanism, key.size())),
        p_(params_of(m)) {}

  size_t output_size(size_t n) const override {
    size_t total = input_.size() + n;
    return decrypt_ ? (total > p_.tag ? total - p_.tag : 0) : total + p_.tag;
  }

  Bytes finish() override {
    size_t n = input_.size();
    if (decrypt_) require(n >= p_.tag, CKR_ENCRYPTED_DATA_LEN_RANGE);
    size_t body = decrypt_ ? n - p_.tag : n;
    std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
    int len = 0;
    bool ok =
        c && EVP_CipherInit_ex(c.get(), cipher_, nullptr, nullptr, nullptr, !decrypt_) == 1 &&
        EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(p_.iv.size()),
                            nullptr) == 1 &&
        EVP_CipherInit_ex(c.get(), nullptr, nullptr, key_.data(), p_.iv.data(), !decrypt_) == 1;
    if (ok && !p_.aad.empty())
      ok = EVP_CipherUpdate(c.get(), nullptr, &len, p_.aad.data(),
                            static_cast<int>(p_.aad.size())) == 1;
    if (ok && decrypt_)
      ok = EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_SET_TAG, static_cast<int>(p_.tag),
                               input_.data() + body) == 1;
    require(ok, CKR_FUNCTION_FAILED);
    Bytes out(body + p_.tag);
    require(EVP_CipherUpdate(c.get(), out.data(), &len, input_.data(), static_cast<int>(body)) == 1,
            CKR_FUNCTION_FAILED);
    int total = len;
    require(EVP_CipherFinal_ex(c.get(), out.data() + total, &len) == 1,
            decrypt_ ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED);
    total += len;
    if (!decrypt_) {
      require(EVP_CIPHER_CTX_ctrl(c.get(), EVP_CTRL_GCM_GET_TAG, static_cast<int>(p_.tag),
                                  out.data() + total) == 1,
              CKR_FUNCTION_FAILED);
      total += static_cast<int>(p_.tag);
    }
    out.resize(static_cast<size_t>(total));
    return out;
  }

 private:
  bool decrypt_;
  Secret key_;
  const EVP_CIPHER* cipher_;
  Params p_;
};

// CKM_AES_KEY_WRAP (RFC 3394) and CKM_AES_KEY_WRAP_PAD (RFC 5649), with
// their default IVs; for C_WrapKey/C_UnwrapKey and single-part
// C_Encrypt/C_Decrypt.
class AesKeyWrap : public OneShot {
 public:
  AesKeyWrap(const CK_MECHANISM& m, OpKind kind, const Secret& key)
      : pad_(m.mechanism == CKM_AES_KEY_WRAP_PAD), decrypt_(kind == OpKind::kDecrypt), key_(key) {
    require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
    switch (key.size()) {
      case 16:
        cipher_ = pad_ ? EVP_aes_128_wrap_pad() : EVP_aes_128_wrap();
        break;
      case 24:
        cipher_ = pad_ ? EVP_aes_192_wrap_pad() : EVP_aes_192_wrap();
        break;
      case 32:
        cipher_ = pad_ ? EVP_aes_256_wrap_pad() : EVP_aes_256_wrap();
        break;
      default:
        fail(CKR_KEY_SIZE_RANGE);
    }
  }
  size_t output_size(size_t n) const override {
    size_t t = input_.size() + n;
    if (decrypt_) return t >= 8 ? t - 8 : 0;
    return (pad_ ? (t + 7) / 8 * 8 : t) + 8;
  }
  Bytes finish() override {
    size_t n = input_.size();
    if (decrypt_) {
      require(n >= 16 && n % 8 == 0, CKR_ENCRYPTED_DATA_LEN_RANGE);
    } else {
      require(n > 0 && (pad_ || (n >= 16 && n % 8 == 0)), CKR_DATA_LEN_RANGE);
    }
    std::unique_ptr<EVP_CIPHER_CTX, CipherFree> c(EVP_CIPHER_CTX_new());
    require(c != nullptr, CKR_HOST_MEMORY);
    EVP_CIPHER_CTX_set_flags(c.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    Bytes out(output_size(0) + 16);
    int len = 0, fin = 0;
    bool ok =
        EVP_CipherInit_ex(c.get(), cipher_, nullptr, key_.data(), nullptr, !decrypt_) == 1 &&
        EVP_CipherUpdate(c.get(), out.data(), &len, input_.data(), static_cast<int>(n)) == 1 &&
        EVP_CipherFinal_ex(c.get(), out.data() + len, &fin) == 1;
    // An integrity check failure: the wrapped data is not ours.
    require(ok, decrypt_ ? CKR_ENCRYPTED_DATA_INVALID : CKR_FUNCTION_FAILED);
    out.resize(static_cast<size_t>(len + fin));
    return out;
  }

 private:
  bool pad_, decrypt_;
  Secret key_;
  const EVP_CIPHER* cipher_ = nullptr;
};

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef& key) {
  require(kind == OpKind::kEncrypt || kind == OpKind::kDecrypt, CKR_MECHANISM_INVALID);
  if (m.mechanism == CKM_AES_GCM) return std::make_unique<AesGcm>(m, kind, key.value);
  if (m.mechanism == CKM_AES_KEY_WRAP || m.mechanism == CKM_AES_KEY_WRAP_PAD)
    return std::make_unique<AesKeyWrap>(m, kind, key.value);
  return std::make_unique<AesStream>(m, kind, key.value);
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
  for (CK_MECHANISM_TYPE t : {CKM_AES_KEY_WRAP, CKM_AES_KEY_WRAP_PAD})
    out.push_back(
        {t, CKK_AES, 16, 32, CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP, start, nullptr});
}

}  // namespace tk
