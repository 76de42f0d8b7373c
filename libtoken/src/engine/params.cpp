#include "params.hpp"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include <cstdlib>
#include <cstring>

#include "internal.hpp"

namespace token::engine {

namespace {
struct Named {
  int value;
  const char* name;
};
// OpenSSL's own spellings (providers/implementations/signature/rsa_sig.c).
constexpr Named kPadding[] = {{RSA_NO_PADDING, OSSL_PKEY_RSA_PAD_MODE_NONE},
                              {RSA_PKCS1_PADDING, OSSL_PKEY_RSA_PAD_MODE_PKCSV15},
                              {RSA_PKCS1_OAEP_PADDING, OSSL_PKEY_RSA_PAD_MODE_OAEP},
                              {RSA_X931_PADDING, OSSL_PKEY_RSA_PAD_MODE_X931},
                              {RSA_PKCS1_PSS_PADDING, OSSL_PKEY_RSA_PAD_MODE_PSS}};
constexpr Named kSalt[] = {{RSA_PSS_SALTLEN_DIGEST, OSSL_PKEY_RSA_PSS_SALT_LEN_DIGEST},
                           {RSA_PSS_SALTLEN_MAX, OSSL_PKEY_RSA_PSS_SALT_LEN_MAX},
                           {RSA_PSS_SALTLEN_AUTO, OSSL_PKEY_RSA_PSS_SALT_LEN_AUTO}};

int put_named(OSSL_PARAM* p, int value, const Named* table, std::size_t n) {
  if (p->data_type == OSSL_PARAM_INTEGER) return OSSL_PARAM_set_int(p, value);
  for (std::size_t i = 0; i < n; ++i) {
    if (table[i].value == value) return OSSL_PARAM_set_utf8_string(p, table[i].name);
  }
  return OSSL_PARAM_set_utf8_string(p, std::to_string(value).c_str());
}
}  // namespace

std::string param_string(const OSSL_PARAM* p) {
  const char* s = nullptr;
  if (!OSSL_PARAM_get_utf8_string_ptr(p, &s) || s == nullptr) {
    throw Error(ErrorKind::Usage, std::string("parameter ") + p->key + " must be a string");
  }
  return s;
}

int param_padding(const OSSL_PARAM* p) {
  int v = 0;
  if (p->data_type == OSSL_PARAM_INTEGER && OSSL_PARAM_get_int(p, &v)) return v;
  const std::string s = param_string(p);
  for (const auto& n : kPadding) {
    if (s == n.name) return n.value;
  }
  throw Error(ErrorKind::Usage, "unknown RSA padding mode \"" + s + "\"");
}

int param_saltlen(const OSSL_PARAM* p) {
  int v = 0;
  if (p->data_type == OSSL_PARAM_INTEGER && OSSL_PARAM_get_int(p, &v)) return v;
  const std::string s = param_string(p);
  for (const auto& n : kSalt) {
    if (s == n.name) return n.value;
  }
  char* end = nullptr;
  long l = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || l < 0 || l > 1024) {
    throw Error(ErrorKind::Usage, "bad PSS salt length \"" + s + "\"");
  }
  return static_cast<int>(l);
}

int put_padding(OSSL_PARAM* p, int pad) { return put_named(p, pad, kPadding, std::size(kPadding)); }
int put_saltlen(OSSL_PARAM* p, int s) { return put_named(p, s, kSalt, std::size(kSalt)); }

EVP_MD* fetch_md(const char* name) {
  EVP_MD* md = EVP_MD_fetch(engine_libctx(), name, nullptr);
  if (md == nullptr) throw Error(ErrorKind::Usage, std::string("unknown digest \"") + name + "\"");
  return md;
}

namespace {
struct HashMap {
  int nid;
  CK_MECHANISM_TYPE mech;
  CK_RSA_PKCS_MGF_TYPE mgf;
};
constexpr HashMap kHashes[] = {{NID_sha1, CKM_SHA_1, CKG_MGF1_SHA1},
                               {NID_sha224, CKM_SHA224, CKG_MGF1_SHA224},
                               {NID_sha256, CKM_SHA256, CKG_MGF1_SHA256},
                               {NID_sha384, CKM_SHA384, CKG_MGF1_SHA384},
                               {NID_sha512, CKM_SHA512, CKG_MGF1_SHA512}};
const HashMap& hash_of(const EVP_MD* md) {
  for (const auto& h : kHashes) {
    if (h.nid == EVP_MD_get_type(md)) return h;
  }
  throw Error(ErrorKind::Usage,
              std::string("PKCS#11 has no mechanism for digest ") + EVP_MD_get0_name(md));
}
}  // namespace

CK_MECHANISM_TYPE hash_mechanism(const EVP_MD* md) { return hash_of(md).mech; }
CK_RSA_PKCS_MGF_TYPE mgf_for(const EVP_MD* md) { return hash_of(md).mgf; }
const char* md_short_name(const EVP_MD* md) { return OBJ_nid2sn(EVP_MD_get_type(md)); }

const char* key_type_name(int type) {
  switch (type) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_ED25519:
      return "ED25519";
    case EVP_PKEY_X25519:
      return "X25519";
    default:
      return "EC";
  }
}

std::size_t key_size_bytes(const KeyData& k) {
  return static_cast<std::size_t>((EVP_PKEY_get_bits(k.pub) + 7) / 8);
}

}  // namespace token::engine
