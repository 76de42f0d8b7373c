#include "pkey.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/provider.h>

#include <list>
#include <string_view>

#include "error.h"

namespace tk {
namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_clear_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;

struct BldFree {
  void operator()(OSSL_PARAM_BLD* b) const { OSSL_PARAM_BLD_free(b); }
};
struct ParamFree {
  void operator()(OSSL_PARAM* p) const { OSSL_PARAM_free(p); }
};

// Collects the parameters of a key and makes it with EVP_PKEY_fromdata.
class Builder {
 public:
  Builder() : bld_(OSSL_PARAM_BLD_new()) { require(bld_ != nullptr, CKR_HOST_MEMORY); }
  void bn(const char* name, const Secret& v) {
    require(!v.empty(), CKR_TEMPLATE_INCOMPLETE);
    Bn b(BN_bin2bn(v.data(), static_cast<int>(v.size()), nullptr));
    require(b && OSSL_PARAM_BLD_push_BN(bld_.get(), name, b.get()) == 1, CKR_HOST_MEMORY);
    bns_.push_back(std::move(b));
  }
  // The builder copies strings only in OSSL_PARAM_BLD_to_param: keep them.
  void text(const char* name, const std::string& v) {
    const std::string& kept = texts_.emplace_back(v);
    require(OSSL_PARAM_BLD_push_utf8_string(bld_.get(), name, kept.c_str(), 0) == 1,
            CKR_HOST_MEMORY);
  }
  void octets(const char* name, const Bytes& v) {
    const Bytes& kept = octets_.emplace_back(v);
    require(OSSL_PARAM_BLD_push_octet_string(bld_.get(), name, kept.data(), kept.size()) == 1,
            CKR_HOST_MEMORY);
  }
  std::shared_ptr<EVP_PKEY> make(const char* type, int selection) {
    std::unique_ptr<OSSL_PARAM, ParamFree> params(OSSL_PARAM_BLD_to_param(bld_.get()));
    EVP_PKEY_CTX* ctx = key_ctx(type);
    EVP_PKEY* k = nullptr;
    bool ok = params && ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
              EVP_PKEY_fromdata(ctx, &k, selection, params.get()) == 1;
    EVP_PKEY_CTX_free(ctx);
    // Footnote: inconsistent key material is the application's template.
    require(ok, CKR_ATTRIBUTE_VALUE_INVALID);
    return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
  }

 private:
  std::unique_ptr<OSSL_PARAM_BLD, BldFree> bld_;
  std::vector<Bn> bns_;
  std::list<std::string> texts_;
  std::list<Bytes> octets_;
};

std::shared_ptr<EVP_PKEY> build(const Object& o) {
  CK_OBJECT_CLASS cls = o.cls();
  CK_KEY_TYPE kt = o.ulong(CKA_KEY_TYPE);
  require(cls == CKO_PUBLIC_KEY || cls == CKO_PRIVATE_KEY, CKR_KEY_TYPE_INCONSISTENT);
  bool priv = cls == CKO_PRIVATE_KEY;
  Builder b;
  if (kt == CKK_RSA) {
    b.bn(OSSL_PKEY_PARAM_RSA_N, o.get(CKA_MODULUS));
    b.bn(OSSL_PKEY_PARAM_RSA_E, o.get(CKA_PUBLIC_EXPONENT));
    if (!priv) return b.make("RSA", EVP_PKEY_PUBLIC_KEY);
    require(o.has(CKA_PRIVATE_EXPONENT), CKR_USER_NOT_LOGGED_IN);
    b.bn(OSSL_PKEY_PARAM_RSA_D, o.get(CKA_PRIVATE_EXPONENT));
    b.bn(OSSL_PKEY_PARAM_RSA_FACTOR1, o.get(CKA_PRIME_1));
    b.bn(OSSL_PKEY_PARAM_RSA_FACTOR2, o.get(CKA_PRIME_2));
    b.bn(OSSL_PKEY_PARAM_RSA_EXPONENT1, o.get(CKA_EXPONENT_1));
    b.bn(OSSL_PKEY_PARAM_RSA_EXPONENT2, o.get(CKA_EXPONENT_2));
    b.bn(OSSL_PKEY_PARAM_RSA_COEFFICIENT1, o.get(CKA_COEFFICIENT));
    return b.make("RSA", EVP_PKEY_KEYPAIR);
  }
  if (kt == CKK_EC) {
    b.text(OSSL_PKEY_PARAM_GROUP_NAME, curve_name(o.get(CKA_EC_PARAMS)));
    if (!priv) {
      b.octets(OSSL_PKEY_PARAM_PUB_KEY, ec_point_raw(o.get(CKA_EC_POINT)));
      return b.make("EC", EVP_PKEY_PUBLIC_KEY);
    }
    require(o.has(CKA_VALUE), CKR_USER_NOT_LOGGED_IN);
    b.bn(OSSL_PKEY_PARAM_PRIV_KEY, o.get(CKA_VALUE));
    return b.make("EC", EVP_PKEY_KEYPAIR);
  }
  if (kt == CKK_EC_EDWARDS || kt == CKK_EC_MONTGOMERY) {
    const bool ed = kt == CKK_EC_EDWARDS;
    require(ed ? is_ed25519(o.get(CKA_EC_PARAMS)) : is_x25519(o.get(CKA_EC_PARAMS)),
            CKR_CURVE_NOT_SUPPORTED);
    const char* name = ed ? "ED25519" : "X25519";
    EVP_PKEY* k = nullptr;
    if (!priv) {
      Bytes raw = ec_point_raw(o.get(CKA_EC_POINT));
      require(raw.size() == 32, CKR_ATTRIBUTE_VALUE_INVALID);
      k = EVP_PKEY_new_raw_public_key_ex(libctx(), name, nullptr, raw.data(), raw.size());
    } else {
      require(o.has(CKA_VALUE), CKR_USER_NOT_LOGGED_IN);
      const Secret& v = o.get(CKA_VALUE);
      require(v.size() == 32, CKR_ATTRIBUTE_VALUE_INVALID);
      k = EVP_PKEY_new_raw_private_key_ex(libctx(), name, nullptr, v.data(), v.size());
    }
    require(k != nullptr, CKR_ATTRIBUTE_VALUE_INVALID);
    return std::shared_ptr<EVP_PKEY>(k, EVP_PKEY_free);
  }
  fail(CKR_KEY_TYPE_INCONSISTENT);
}

}  // namespace

OSSL_LIB_CTX* libctx() {
  // Made once and kept for the life of the process: OpenSSL keeps
  // references to it from every key built in it.
  static OSSL_LIB_CTX* ctx = [] {
    OSSL_LIB_CTX* c = OSSL_LIB_CTX_new();
    if (c != nullptr && OSSL_PROVIDER_load(c, "default") == nullptr) {
      OSSL_LIB_CTX_free(c);
      c = nullptr;
    }
    return c;
  }();
  require(ctx != nullptr, CKR_GENERAL_ERROR);
  return ctx;
}

EVP_PKEY_CTX* key_ctx(const char* type) {
  const char* oid = std::string_view(type) == "RSA"  ? "1.2.840.113549.1.1.1"
                    : std::string_view(type) == "EC" ? "1.2.840.10045.2.1"
                                                     : nullptr;
  require(oid != nullptr, CKR_GENERAL_ERROR);
  return EVP_PKEY_CTX_new_from_name(libctx(), oid, nullptr);
}

bool is_x25519(const Secret& p) {
  static const Secret oid = {0x06, 0x03, 0x2b, 0x65, 0x6e};
  static const Secret name = {0x13, 0x0a, 'c', 'u', 'r', 'v', 'e', '2', '5', '5', '1', '9'};
  return p == oid || p == name;
}

bool is_ed25519(const Secret& p) {
  static const Secret oid = {0x06, 0x03, 0x2b, 0x65, 0x70};
  static const Secret name = {0x13, 0x0c, 'e', 'd', 'w', 'a', 'r',
                              'd',  's',  '2', '5', '5', '1', '9'};
  return p == oid || p == name;
}

std::shared_ptr<EVP_PKEY> pkey_of(Object& o) {
  if (!o.pkey) o.pkey = build(o);
  return o.pkey;
}

Secret bn_param(EVP_PKEY* k, const char* name) {
  BIGNUM* raw = nullptr;
  require(EVP_PKEY_get_bn_param(k, name, &raw) == 1, CKR_FUNCTION_FAILED);
  Bn b(raw);
  Secret out(static_cast<size_t>(BN_num_bytes(b.get())));
  BN_bn2bin(b.get(), out.data());
  return out;
}

std::string curve_name(const Secret& ec_params) {
  const unsigned char* p = ec_params.data();
  ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(ec_params.size()));
  int nid = oid ? OBJ_obj2nid(oid) : NID_undef;
  ASN1_OBJECT_free(oid);
  switch (nid) {
    case NID_X9_62_prime256v1:
      return "P-256";
    case NID_secp384r1:
      return "P-384";
    case NID_secp521r1:
      return "P-521";
    default:
      fail(CKR_CURVE_NOT_SUPPORTED);
  }
}

Bytes ec_point_der(const Bytes& raw) {
  Bytes out = {0x04};  // OCTET STRING
  size_t n = raw.size();
  if (n < 0x80) {
    out.push_back(static_cast<uint8_t>(n));
  } else if (n < 0x100) {
    out.insert(out.end(), {0x81, static_cast<uint8_t>(n)});
  } else {
    out.insert(out.end(), {0x82, static_cast<uint8_t>(n >> 8), static_cast<uint8_t>(n)});
  }
  out.insert(out.end(), raw.begin(), raw.end());
  return out;
}

Bytes ec_point_raw(const Secret& attr) {
  Bytes a(attr.begin(), attr.end());
  // Uncompressed P-256/384/521 points are 65/97/133 bytes, their DER
  // encodings 67/99/136, so the sizes tell the two forms apart.
  // Likewise Ed25519 and X25519 points are 32 bytes, 34 in DER.
  if (a.size() == 32 || a.size() == 65 || a.size() == 97 || a.size() == 133) return a;
  if (a.size() > 2 && a[0] == 0x04) {
    size_t hdr = 2, len = a[1];
    if (a[1] == 0x81 && a.size() > 3) hdr = 3, len = a[2];
    if (a[1] == 0x82 && a.size() > 4) hdr = 4, len = (size_t{a[2]} << 8) | a[3];
    if (hdr + len == a.size() && (a[1] < 0x80 || hdr > 2))
      return Bytes(a.begin() + static_cast<std::ptrdiff_t>(hdr), a.end());
  }
  return a;
}

}  // namespace tk
