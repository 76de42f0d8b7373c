// CKM_SHA_1 and the SHA-2 digests (PKCS#11 v2.40 mechanisms 2.16-2.20).
#include "error.h"
#include "mechanism.h"

namespace tk {
namespace {

class Digest : public Operation {
 public:
  explicit Digest(const EVP_MD* md) : ctx_(EVP_MD_CTX_new()), md_(md) {
    require(ctx_ && EVP_DigestInit_ex(ctx_, md, nullptr) == 1, CKR_HOST_MEMORY);
  }
  ~Digest() override { EVP_MD_CTX_free(ctx_); }
  Digest(const Digest&) = delete;
  Digest& operator=(const Digest&) = delete;
  void update(const uint8_t* data, size_t n) override {
    require(EVP_DigestUpdate(ctx_, data, n) == 1, CKR_FUNCTION_FAILED);
  }
  size_t output_size(size_t) const override { return static_cast<size_t>(EVP_MD_get_size(md_)); }
  Bytes finish() override {
    Bytes out(output_size(0));
    unsigned int len = 0;
    require(EVP_DigestFinal_ex(ctx_, out.data(), &len) == 1, CKR_FUNCTION_FAILED);
    out.resize(len);
    return out;
  }

 private:
  EVP_MD_CTX* ctx_;
  const EVP_MD* md_;
};

std::unique_ptr<Operation> start(const CK_MECHANISM& m, OpKind kind, const KeyRef&) {
  require(kind == OpKind::kDigest, CKR_MECHANISM_INVALID);
  require(m.ulParameterLen == 0, CKR_MECHANISM_PARAM_INVALID);
  return std::make_unique<Digest>(digest_for(m.mechanism));
}

}  // namespace

void register_digests(std::vector<Mechanism>& out) {
  for (CK_MECHANISM_TYPE t : {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512})
    out.push_back({t, CK_UNAVAILABLE_INFORMATION, 0, 0, CKF_DIGEST, start, nullptr});
}

}  // namespace tk
