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
    register_montgomery(v);
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

const Mechanism& mechanism(CK_MECHANISM_TYPE type, CK_KEY_TYPE key_type) {
  const auto& all = mechanisms();
  bool known = false;
  for (const Mechanism& m : all) {
    if (m.type != type) continue;
    known = true;
    if (m.key_type == key_type) return m;
  }
  require(known, CKR_MECHANISM_INVALID);
  fail(CKR_KEY_TYPE_INCONSISTENT);
}

std::vector<CK_MECHANISM_TYPE> mechanism_types() {
  std::vector<CK_MECHANISM_TYPE> out;
  for (const Mechanism& m : mechanisms())
    if (std::find(out.begin(), out.end(), m.type) == out.end()) out.push_back(m.type);
  return out;
}

CK_MECHANISM_INFO mechanism_info(CK_MECHANISM_TYPE type) {
  const Mechanism& first = mechanism(type);
  CK_MECHANISM_INFO info{first.min_key, first.max_key, 0};
  for (const Mechanism& m : mechanisms()) {
    if (m.type != type) continue;
    info.ulMinKeySize = std::min(info.ulMinKeySize, m.min_key);
    info.ulMaxKeySize = std::max(info.ulMaxKeySize, m.max_key);
    info.flags |= m.flags;
  }
  return info;
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
