#include <algorithm>

#include "error.h"
#include "mechanism.h"

namespace tk {

void Operation::fail_unsupported() { fail(CKR_FUNCTION_NOT_SUPPORTED); }

const std::vector<Mechanism>& mechanisms() {
  static const std::vector<Mechanism> all = [] {
    std::vector<Mechanism> v;
    register_digests(v);
    register_rsa(v);
    register_ec(v);
    register_eddsa(v);
    register_aes(v);
    return v;
  }();
  return all;
}

const Mechanism& mechanism(CK_MECHANISM_TYPE type) {
  const auto& all = mechanisms();
  auto it =
      std::find_if(all.begin(), all.end(), [&](const Mechanism& m) { return m.type == type; });
  require(it != all.end(), CKR_MECHANISM_INVALID);
  return *it;
}

const EVP_MD* digest_for(CK_MECHANISM_TYPE hash) {
  switch (hash) {
    case CKM_SHA_1:
      return EVP_sha1();
    case CKM_SHA224:
      return EVP_sha224();
    case CKM_SHA256:
      return EVP_sha256();
    case CKM_SHA384:
      return EVP_sha384();
    case CKM_SHA512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

const EVP_MD* digest_for_mgf(CK_RSA_PKCS_MGF_TYPE mgf) {
  switch (mgf) {
    case CKG_MGF1_SHA1:
      return EVP_sha1();
    case CKG_MGF1_SHA224:
      return EVP_sha224();
    case CKG_MGF1_SHA256:
      return EVP_sha256();
    case CKG_MGF1_SHA384:
      return EVP_sha384();
    case CKG_MGF1_SHA512:
      return EVP_sha512();
    default:
      return nullptr;
  }
}

}  // namespace tk
