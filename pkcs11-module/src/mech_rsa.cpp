// RSA mechanisms (PKCS#11 v2.40 section 2.1): key pair generation, PKCS#1
// v1.5, raw (X.509), PSS and OAEP, with and without hashing.
#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "error.h"
#include "mechanism.h"
#include "pkey.h"

namespace tk {
namespace {

struct CtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, CtxFree>;

// How a mechanism pads: derived once from CK_MECHANISM at init.
struct Padding {
  int mode = RSA_PKCS1_PADDING;
  const EVP_MD* md = nullptr;   // hash of the data (PSS, OAEP, SHAx_*)
  const EVP_MD* mgf = nullptr;  // MGF1 hash (PSS, OAEP)
  int salt = 0;
  Bytes label;  // OAEP
};

CK_MECHANISM_TYPE hash_of(CK_MECHANISM_TYPE m) {
  switch (m) {
    case CKM_SHA1_RSA_PKCS:
    case CKM_SHA1_RSA_PKCS_PSS:
      return CKM_SHA_1;
    case CKM_SHA224_RSA_PKCS:
    case CKM_SHA224_RSA_PKCS_PSS:
      return CKM_SHA224;
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS_PSS:
      return CKM_SHA256;
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS_PSS:
      return CKM_SHA384;
    case CKM_SHA512_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS_PSS:
      return CKM_SHA512;
    default:
      return CK_UNAVAILABLE_INFORMATION;
  }
}

bool is_pss(CK_MECHANISM_TYPE m) {
  return m == CKM_RSA_PKCS_PSS ||
         (hash_of(m) != CK_UNAVAILABLE_INFORMATION && m != CKM_SHA1_RSA_PKCS &&
          m != CKM_SHA224_RSA_PKCS && m != CKM_SHA256_RSA_PKCS && m != CKM_SHA384_RSA_PKCS &&
          m != CKM_SHA512_RSA_PKCS);
}

Padding padding_of(const CK_MECHANISM& m) {
  Padding p;
  CK_MECHANISM_TYPE t = m.mechanism;
  if (t == CKM_RSA_X_509) p.mode = RSA_NO_PADDING;
  if (t == CKM_RSA_PKCS || t == CKM_RSA_X_509) {
    require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
    return p;
  }
  if (t == CKM_RSA_PKCS_OAEP) {
    const auto& o = params_as<CK_RSA_PKCS_OAEP_PARAMS>(m);
    p.mode = RSA_PKCS1_OAEP_PADDING;
    p.md = digest_for(o.hashAlg);
    p.mgf = digest_for_mgf(o.mgf);
    require(p.md && p.mgf, CKR_MECHANISM_PARAM_INVALID);
    require(o.source == 0 || o.source == CKZ_DATA_SPECIFIED, CKR_MECHANISM_PARAM_INVALID);
    require(o.pSourceData || !o.ulSourceDataLen, CKR_MECHANISM_PARAM_INVALID);
    p.label = to_bytes(o.pSourceData, o.ulSourceDataLen);
    return p;
  }
  CK_MECHANISM_TYPE hash = hash_of(t);
  if (!is_pss(t)) {
    require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
    p.md = digest_for(hash);
    return p;
  }
  const auto& s = params_as<CK_RSA_PKCS_PSS_PARAMS>(m);
  // 2.1.15: for CKM_SHAx_RSA_PKCS_PSS, hashAlg must be the mechanism's hash.
  require(t == CKM_RSA_PKCS_PSS || s.hashAlg == hash, CKR_MECHANISM_PARAM_INVALID);
  p.mode = RSA_PKCS1_PSS_PADDING;
  p.md = digest_for(s.hashAlg);
  p.mgf = digest_for_mgf(s.mgf);
  require(p.md && p.mgf && s.sLen <= 1024, CKR_MECHANISM_PARAM_INVALID);
  p.salt = static_cast<int>(s.sLen);
  return p;
}

void apply(EVP_PKEY_CTX* c, const Padding& p, bool signing) {
  bool ok = EVP_PKEY_CTX_set_rsa_padding(c, p.mode) == 1;
  if (p.mode == RSA_PKCS1_PSS_PADDING) {
    ok = ok && EVP_PKEY_CTX_set_rsa_mgf1_md(c, p.mgf) == 1 &&
         EVP_PKEY_CTX_set_rsa_pss_saltlen(c, p.salt) == 1;
  }
  if (p.mode == RSA_PKCS1_OAEP_PADDING) {
    ok = ok && EVP_PKEY_CTX_set_rsa_oaep_md(c, p.md) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(c, p.mgf) == 1;
    if (ok && !p.label.empty()) {
      void* l = OPENSSL_memdup(p.label.data(), p.label.size());
      ok = l && EVP_PKEY_CTX_set0_rsa_oaep_label(c, l, static_cast<int>(p.label.size())) == 1;
    }
  }
  if (signing && p.md && p.mode != RSA_PKCS1_OAEP_PADDING)
    ok = ok && EVP_PKEY_CTX_set_signature_md(c, p.md) == 1;
  require(ok, CKR_MECHANISM_PARAM_INVALID);
}

// Raw, PKCS#1 v1.5, PSS on a given hash, and OAEP: one EVP_PKEY_* call on
// all the input.
class RsaOneShot : public OneShot {
 public:
  RsaOneShot(OpKind kind, Padding p, std::shared_ptr<EVP_PKEY> key)
      : kind_(kind),
        pad_(std::move(p)),
        key_(std::move(key)),
        size_(static_cast<size_t>(EVP_PKEY_get_size(key_.get()))) {}
  size_t output_size(size_t) const override { return size_; }

  Bytes finish() override {
    PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    require(c != nullptr, CKR_HOST_MEMORY);
    Secret in = input();
    int init = kind_ == OpKind::kSign      ? EVP_PKEY_sign_init(c.get())
               : kind_ == OpKind::kEncrypt ? EVP_PKEY_encrypt_init(c.get())
                                           : EVP_PKEY_decrypt_init(c.get());
    require(init == 1, CKR_FUNCTION_FAILED);
    apply(c.get(), pad_, kind_ == OpKind::kSign);
    Bytes out(size_);
    size_t len = out.size();
    int rc = kind_ == OpKind::kSign ? EVP_PKEY_sign(c.get(), out.data(), &len, in.data(), in.size())
             : kind_ == OpKind::kEncrypt
                 ? EVP_PKEY_encrypt(c.get(), out.data(), &len, in.data(), in.size())
                 : EVP_PKEY_decrypt(c.get(), out.data(), &len, in.data(), in.size());
    if (rc != 1) {
      fail(kind_ == OpKind::kDecrypt ? CKR_ENCRYPTED_DATA_INVALID : CKR_DATA_INVALID);
    }
    out.resize(len);
    return out;
  }

  void verify(const uint8_t* sig, size_t n) override {
    require(n == size_, CKR_SIGNATURE_LEN_RANGE);
    PkeyCtx c(EVP_PKEY_CTX_new_from_pkey(nullptr, key_.get(), nullptr));
    Secret in = input();
    if (pad_.mode == RSA_NO_PADDING) {
      // Raw RSA: recover the message and compare it whole.
      require(c && EVP_PKEY_verify_recover_init(c.get()) == 1, CKR_FUNCTION_FAILED);
      apply(c.get(), pad_, false);
      Bytes out(size_);
      size_t len = out.size();
      require(EVP_PKEY_verify_recover(c.get(), out.data(), &len, sig, n) == 1,
              CKR_SIGNATURE_INVALID);
      require(len == in.size() && std::equal(in.begin(), in.end(), out.begin()),
              CKR_SIGNATURE_INVALID);
      return;
    }
    require(c && EVP_PKEY_verify_init(c.get()) == 1, CKR_FUNCTION_FAILED);
    apply(c.get(), pad_, true);
    require(EVP_PKEY_verify(c.get(), sig, n, in.data(), in.size()) == 1, CKR_SIGNATURE_INVALID);
  }

 private:
  // Checks the input length the way 2.1.6-2.1.8 table 2-3 lists it.
  Secret input() const {
    size_t n = input_.size();
    if (kind_ == OpKind::kDecrypt) {
      require(n == size_, CKR_ENCRYPTED_DATA_LEN_RANGE);
      return input_;
    }
    if (pad_.mode == RSA_NO_PADDING) {
      // X.509 raw RSA: shorter input is taken as left-padded with zeros.
      require(n <= size_, CKR_DATA_LEN_RANGE);
      Secret in(size_ - n, 0);
      in.insert(in.end(), input_.begin(), input_.end());
      return in;
    }
    if (pad_.mode == RSA_PKCS1_PADDING) require(n + 11 <= size_, CKR_DATA_LEN_RANGE);
    if (pad_.mode == RSA_PKCS1_PSS_PADDING)
      require(n == static_cast<size_t>(EVP_MD_get_size(pad_.md)), CKR_DATA_LEN_RANGE);
    if (pad_.mode == RSA_PKCS1_OAEP_PADDING)
      require(n + 2 + 2 * static_cast<size_t>(EVP_MD_get_size(pad_.md)) <= size_,
              CKR_DATA_LEN_RANGE);
    return input_;
  }

  OpKind kind_;
  Padding pad_;
  std::shared_ptr<EVP_PKEY> key_;
  size_t size_;
};

// CKM_SHAx_RSA_PKCS[_PSS]: hash and sign in one multi-part operation.
class RsaHashSign : public Operation {
 public:
  RsaHashSign(OpKind kind, const Padding& p, std::shared_ptr<EVP_PKEY> key)
      : kind_(kind), key_(std::move(key)), ctx_(EVP_MD_CTX_new()) {
    EVP_PKEY_CTX* pc = nullptr;
    int rc = kind == OpKind::kSign ? EVP_DigestSignInit(ctx_, &pc, p.md, nullptr, key_.get())
                                   : EVP_DigestVerifyInit(ctx_, &pc, p.md, nullptr, key_.get());
    require(ctx_ && rc == 1, CKR_FUNCTION_FAILED);
    apply(pc, p, false);
  }
  ~RsaHashSign() override { EVP_MD_CTX_free(ctx_); }
  RsaHashSign(const RsaHashSign&) = delete;
  RsaHashSign& operator=(const RsaHashSign&) = delete;

  void update(const uint8_t* data, size_t n) override {
    int rc = kind_ == OpKind::kSign ? EVP_DigestSignUpdate(ctx_, data, n)
                                    : EVP_DigestVerifyUpdate(ctx_, data, n);
    require(rc == 1, CKR_FUNCTION_FAILED);
  }
  size_t output_size(size_t) const override {
    return static_cast<size_t>(EVP_PKEY_get_size(key_.get()));
  }
  Bytes finish() override {
    Bytes out(output_size(0));
    size_t len = out.size();
    require(EVP_DigestSignFinal(ctx_, out.data(), &len) == 1, CKR_FUNCTION_FAILED);
    out.resize(len);
    return out;
  }
  void verify(const uint8_t* sig, size_t n) override {
    require(n == output_size(0), CKR_SIGNATURE_LEN_RANGE);
    require(EVP_DigestVerifyFinal(ctx_, sig, n) == 1, CKR_SIGNATURE_INVALID);
  }

 private:
  OpKind kind_;
  std::shared_ptr<EVP_PKEY> key_;
  EVP_MD_CTX* ctx_;
};

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef& ref) {
  std::shared_ptr<EVP_PKEY> key = ref.pkey;
  require(key != nullptr, CKR_KEY_TYPE_INCONSISTENT);
  require(EVP_PKEY_get_base_id(key.get()) == EVP_PKEY_RSA, CKR_KEY_TYPE_INCONSISTENT);
  Padding p = padding_of(m);
  if (hash_of(m.mechanism) != CK_UNAVAILABLE_INFORMATION)
    return std::make_unique<RsaHashSign>(kind, p, std::move(key));
  return std::make_unique<RsaOneShot>(kind, std::move(p), std::move(key));
}

void generate(const CK_MECHANISM& m, KeyPair& pair) {
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  Object pub{pair.pub, 0, 0, nullptr};
  CK_ULONG bits = pub.ulong(CKA_MODULUS_BITS);
  require(pub.has(CKA_MODULUS_BITS), CKR_TEMPLATE_INCOMPLETE);
  require(bits >= 2048 && bits <= 4096, CKR_KEY_SIZE_RANGE);
  Secret e = pub.get(CKA_PUBLIC_EXPONENT);
  if (e.empty()) e = {0x01, 0x00, 0x01};
  PkeyCtx c(key_ctx("RSA"));
  BIGNUM* bn_e = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  EVP_PKEY* raw = nullptr;
  bool ok = c && bn_e && EVP_PKEY_keygen_init(c.get()) == 1 &&
            EVP_PKEY_CTX_set_rsa_keygen_bits(c.get(), static_cast<int>(bits)) == 1 &&
            EVP_PKEY_CTX_set1_rsa_keygen_pubexp(c.get(), bn_e) == 1 &&
            EVP_PKEY_keygen(c.get(), &raw) == 1;
  BN_free(bn_e);
  require(ok, CKR_TEMPLATE_INCONSISTENT);
  Pkey k(raw);
  pair.pub[CKA_MODULUS] = pair.priv[CKA_MODULUS] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_N);
  pair.pub[CKA_PUBLIC_EXPONENT] = pair.priv[CKA_PUBLIC_EXPONENT] =
      bn_param(k.get(), OSSL_PKEY_PARAM_RSA_E);
  pair.priv[CKA_PRIVATE_EXPONENT] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_D);
  pair.priv[CKA_PRIME_1] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_FACTOR1);
  pair.priv[CKA_PRIME_2] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_FACTOR2);
  pair.priv[CKA_EXPONENT_1] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_EXPONENT1);
  pair.priv[CKA_EXPONENT_2] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_EXPONENT2);
  pair.priv[CKA_COEFFICIENT] = bn_param(k.get(), OSSL_PKEY_PARAM_RSA_COEFFICIENT1);
}

}  // namespace

void register_rsa(std::vector<Mechanism>& out) {
  constexpr CK_ULONG kMin = 1024, kMax = 8192;
  constexpr CK_FLAGS kAll = CKF_SIGN | CKF_VERIFY | CKF_ENCRYPT | CKF_DECRYPT;
  out.push_back(
      {CKM_RSA_PKCS_KEY_PAIR_GEN, CKK_RSA, 2048, 4096, CKF_GENERATE_KEY_PAIR, nullptr, generate});
  out.push_back({CKM_RSA_PKCS, CKK_RSA, kMin, kMax, kAll | CKF_WRAP | CKF_UNWRAP, start, nullptr});
  out.push_back({CKM_RSA_X_509, CKK_RSA, kMin, kMax, kAll, start, nullptr});
  out.push_back({CKM_RSA_PKCS_OAEP, CKK_RSA, kMin, kMax,
                 CKF_ENCRYPT | CKF_DECRYPT | CKF_WRAP | CKF_UNWRAP, start, nullptr});
  for (CK_MECHANISM_TYPE t :
       {CKM_RSA_PKCS_PSS, CKM_SHA1_RSA_PKCS, CKM_SHA224_RSA_PKCS, CKM_SHA256_RSA_PKCS,
        CKM_SHA384_RSA_PKCS, CKM_SHA512_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_SHA224_RSA_PKCS_PSS,
        CKM_SHA256_RSA_PKCS_PSS, CKM_SHA384_RSA_PKCS_PSS, CKM_SHA512_RSA_PKCS_PSS})
    out.push_back({t, CKK_RSA, kMin, kMax, CKF_SIGN | CKF_VERIFY, start, nullptr});
}

}  // namespace tk
