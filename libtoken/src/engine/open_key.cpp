// open_private_key(): find the key on the token, its certificate and public
// half, and wrap them as an EVP_PKEY of the tokenkit provider.
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <algorithm>

#include "internal.hpp"

namespace token {

struct TokenKey::State {
  State() = default;
  State(const State&) = delete;
  State& operator=(const State&) = delete;
  EVP_PKEY* pkey = nullptr;
  X509* cert = nullptr;
  std::string label;
  Bytes id;
  std::string description;
  ~State() {
    EVP_PKEY_free(pkey);
    X509_free(cert);
  }
};

TokenKey::TokenKey(std::unique_ptr<State> state) : state_(std::move(state)) {}
TokenKey::TokenKey(TokenKey&&) noexcept = default;
TokenKey& TokenKey::operator=(TokenKey&&) noexcept = default;
TokenKey::~TokenKey() = default;
EVP_PKEY* TokenKey::pkey() const { return state_->pkey; }
X509* TokenKey::certificate() const { return state_->cert; }
OSSL_LIB_CTX* TokenKey::libctx() const { return engine_libctx(); }
const std::string& TokenKey::label() const { return state_->label; }
const Bytes& TokenKey::id() const { return state_->id; }
const std::string& TokenKey::description() const { return state_->description; }

namespace {

using engine::KeyData;

CK_OBJECT_HANDLE find_private_key(const Session& s, const Uri& uri) {
  AttributeTemplate t = uri.object_template();
  std::vector<CK_OBJECT_HANDLE> keys;
  const CK_ATTRIBUTE_TYPE cls[] = {CKA_CLASS};
  for (CK_OBJECT_HANDLE h : s.find(t)) {
    if (s.read(h, cls).ulong_value(CKA_CLASS) == CKO_PRIVATE_KEY) keys.push_back(h);
  }
  if (keys.size() == 1) return keys.front();
  if (keys.empty()) {
    throw Error(ErrorKind::NotFound, "no private key matches " + uri.str() + " on " + s.context() +
                                         " (private keys are only visible after login)");
  }
  throw Error(ErrorKind::Ambiguous, std::to_string(keys.size()) + " private keys match " +
                                        uri.str() + " on " + s.context() +
                                        "; name one with id= or object= in the URI");
}

// The first object of `cls` with the key's CKA_ID, or CK_INVALID_HANDLE.
CK_OBJECT_HANDLE find_by_id(const Session& s, CK_OBJECT_CLASS cls, const Bytes& id) {
  if (id.empty()) return CK_INVALID_HANDLE;
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(cls)).add(CKA_ID, id);
  auto found = s.find(t);
  return found.empty() ? CK_INVALID_HANDLE : found.front();
}

X509* read_certificate(const Session& s, const Bytes& id) {
  CK_OBJECT_HANDLE h = find_by_id(s, CKO_CERTIFICATE, id);
  if (h == CK_INVALID_HANDLE) return nullptr;
  const CK_ATTRIBUTE_TYPE value[] = {CKA_VALUE};
  AttributeValues v = s.read(h, value);
  const Bytes* der = v.bytes(CKA_VALUE);
  if (der == nullptr) return nullptr;
  const unsigned char* p = der->data();
  return d2i_X509(nullptr, &p, static_cast<long>(der->size()));
}

EVP_PKEY* from_params(const char* type, OSSL_PARAM_BLD* bld) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* pkey = nullptr;
  if (params == nullptr || ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  return pkey;
}

EVP_PKEY* rsa_public(const Bytes& n, const Bytes& e) {
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  BIGNUM* bn = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* be = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  EVP_PKEY* k = nullptr;
  if (bld && bn && be && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
      OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be)) {
    k = from_params("RSA", bld);
  }
  BN_free(bn), BN_free(be), OSSL_PARAM_BLD_free(bld);
  return k;
}

// CKA_EC_POINT is a DER OCTET STRING holding the point (PKCS#11 2.40
// section 2.3.3); CKA_EC_PARAMS the curve's OID.
EVP_PKEY* ec_public(const Bytes& params, const Bytes& point_der) {
  const unsigned char* p = params.data();
  ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params.size()));
  const unsigned char* q = point_der.data();
  ASN1_OCTET_STRING* os = d2i_ASN1_OCTET_STRING(nullptr, &q, static_cast<long>(point_der.size()));
  EVP_PKEY* k = nullptr;
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  const char* curve = oid ? OBJ_nid2sn(OBJ_obj2nid(oid)) : nullptr;
  if (bld && curve && os &&
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, ASN1_STRING_get0_data(os),
                                       static_cast<std::size_t>(ASN1_STRING_length(os)))) {
    k = from_params("EC", bld);
  }
  ASN1_OBJECT_free(oid), ASN1_OCTET_STRING_free(os), OSSL_PARAM_BLD_free(bld);
  return k;
}

// PKCS#11 3.0 section 2.3.5: an Edwards key's CKA_EC_PARAMS is the curve's
// OID (1.3.101.112) or the PrintableString "edwards25519"; OpenSC 0.23
// (pkcs11-tool --keypairgen EC:edwards25519) writes GnuPG's OID
// 1.3.6.1.4.1.11591.15.1. Its CKA_EC_POINT is the 32 public bytes, which
// tokens hand out raw or as a DER OCTET STRING.
bool is_ed25519_params(const Bytes& params) {
  static const Bytes oid{0x06, 0x03, 0x2b, 0x65, 0x70};
  static const Bytes gnupg{0x06, 0x09, 0x2b, 0x06, 0x01, 0x04, 0x01, 0xda, 0x47, 0x0f, 0x01};
  static const std::string name = "edwards25519";
  if (params == oid || params == gnupg) return true;
  return params.size() == name.size() + 2 && params[0] == 0x13 &&
         std::equal(name.begin(), name.end(), params.begin() + 2);
}

// PKCS#11 3.0 section 2.3.7: a Montgomery key's CKA_EC_PARAMS is the OID
// 1.3.101.110 or the PrintableString "curve25519"; CKA_EC_POINT the 32
// bytes of the u-coordinate, raw or as a DER OCTET STRING.
bool is_x25519_params(const Bytes& params) {
  static const Bytes oid{0x06, 0x03, 0x2b, 0x65, 0x6e};
  static const std::string name = "curve25519";
  if (params == oid) return true;
  return params.size() == name.size() + 2 && params[0] == 0x13 &&
         std::equal(name.begin(), name.end(), params.begin() + 2);
}

// An Ed25519 or X25519 public key ("ED25519", "X25519") from CKA_EC_POINT.
EVP_PKEY* raw25519_public(const Bytes& point, const char* type) {
  Bytes raw = point;
  if (point.size() == 34 && point[0] == 0x04 && point[1] == 32)
    raw.assign(point.begin() + 2, point.end());
  if (raw.size() != 32) return nullptr;
  return EVP_PKEY_new_raw_public_key_ex(nullptr, type, nullptr, raw.data(), raw.size());
}

// The public half: the certificate's key, else the public key object's,
// else (RSA) the private key's own public attributes.
EVP_PKEY* public_key(const Session& s, CK_OBJECT_HANDLE key, CK_KEY_TYPE type, const Bytes& id,
                     X509* cert) {
  if (cert != nullptr) {
    EVP_PKEY* k = X509_get_pubkey(cert);
    // An Ed25519 key wrapped with another type's public key would confuse
    // every later operation.
    const bool wrong =
        k != nullptr && ((type == CKK_EC_EDWARDS && EVP_PKEY_get_base_id(k) != EVP_PKEY_ED25519) ||
                         (type == CKK_EC_MONTGOMERY && EVP_PKEY_get_base_id(k) != EVP_PKEY_X25519));
    if (wrong) {
      EVP_PKEY_free(k);
      return nullptr;
    }
    return k;
  }
  CK_OBJECT_HANDLE pub = find_by_id(s, CKO_PUBLIC_KEY, id);
  const CK_ATTRIBUTE_TYPE attrs[] = {CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_PARAMS, CKA_EC_POINT};
  AttributeValues v = s.read(pub != CK_INVALID_HANDLE ? pub : key, attrs);
  const Bytes *n = v.bytes(CKA_MODULUS), *e = v.bytes(CKA_PUBLIC_EXPONENT);
  const Bytes *params = v.bytes(CKA_EC_PARAMS), *point = v.bytes(CKA_EC_POINT);
  if (type == CKK_RSA && n && e) return rsa_public(*n, *e);
  if (type == CKK_EC && params && point) return ec_public(*params, *point);
  if (type == CKK_EC_EDWARDS && point) return raw25519_public(*point, "ED25519");
  if (type == CKK_EC_MONTGOMERY && point) return raw25519_public(*point, "X25519");
  return nullptr;
}

EVP_PKEY* wrap(EVP_PKEY* pub, std::shared_ptr<engine::TokenOps> ops, CK_KEY_TYPE type) {
  engine::KeySeed seed{pub, std::move(ops)};
  engine::KeySeed* ptr = &seed;
  // NOLINTNEXTLINE(bugprone-sizeof-expression): the pointer itself is the value
  OSSL_PARAM params[] = {OSSL_PARAM_octet_string(engine::kSeedParam, &ptr, sizeof ptr),
                         OSSL_PARAM_END};
  const char* name = type == CKK_RSA             ? "RSA"
                     : type == CKK_EC            ? "EC"
                     : type == CKK_EC_MONTGOMERY ? "X25519"
                                                 : "ED25519";
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(engine_libctx(), name, "provider=tokenkit");
  EVP_PKEY* pkey = nullptr;
  if (ctx == nullptr || EVP_PKEY_fromdata_init(ctx) != 1 ||
      EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
    pkey = nullptr;
  }
  EVP_PKEY_CTX_free(ctx);
  return pkey;
}

}  // namespace

TokenKey open_private_key(const Session& session, const Uri& key_uri, KeyOptions options) {
  CK_OBJECT_HANDLE h = find_private_key(session, key_uri);
  const CK_ATTRIBUTE_TYPE attrs[] = {CKA_KEY_TYPE, CKA_ID, CKA_LABEL, CKA_ALWAYS_AUTHENTICATE};
  AttributeValues v = session.read(h, attrs);
  auto st = std::make_unique<TokenKey::State>();
  st->label = v.string_value(CKA_LABEL).value_or("");
  if (const Bytes* id = v.bytes(CKA_ID)) st->id = *id;
  st->description = "key \"" + st->label + "\" on " + session.context();
  const CK_KEY_TYPE type = v.ulong_value(CKA_KEY_TYPE).value_or(CK_UNAVAILABLE_INFORMATION);
  if (type != CKK_RSA && type != CKK_EC && type != CKK_EC_EDWARDS && type != CKK_EC_MONTGOMERY) {
    throw Error(ErrorKind::Input, st->description + " is not an RSA, EC, Ed25519 or X25519 key");
  }
  if (type == CKK_EC_MONTGOMERY) {
    const CK_ATTRIBUTE_TYPE curve[] = {CKA_EC_PARAMS};
    const AttributeValues cv = session.read(h, curve);
    const Bytes* params = cv.bytes(CKA_EC_PARAMS);
    if (params == nullptr || !is_x25519_params(*params)) {
      throw Error(ErrorKind::Input, st->description +
                                        " is a Montgomery key but not X25519 (X448 is not "
                                        "supported)");
    }
  }
  if (type == CKK_EC_EDWARDS) {
    const CK_ATTRIBUTE_TYPE curve[] = {CKA_EC_PARAMS};
    const AttributeValues cv = session.read(h, curve);
    const Bytes* params = cv.bytes(CKA_EC_PARAMS);
    if (params == nullptr || !is_ed25519_params(*params)) {
      throw Error(ErrorKind::Input, st->description +
                                        " is an Edwards key but not Ed25519 (Ed448 "
                                        "is not supported)");
    }
  }
  st->cert = read_certificate(session, st->id);
  EVP_PKEY* pub = public_key(session, h, type, st->id, st->cert);
  if (pub == nullptr) {
    throw Error(ErrorKind::Input, "cannot find the public key of " + st->description +
                                      " (no certificate or public key with its CKA_ID)");
  }
  auto own = std::make_shared<Session>(session.module(), session.slot());
  auto ops = std::make_shared<engine::TokenOps>(
      own, h, st->description, v.bool_value(CKA_ALWAYS_AUTHENTICATE).value_or(false),
      std::move(options.context_pin));
  st->pkey = wrap(pub, std::move(ops), type);
  EVP_PKEY_free(pub);
  if (st->pkey == nullptr)
    rethrow_engine_error("cannot wrap " + st->description, ErrorKind::Internal);
  return TokenKey(std::move(st));
}

}  // namespace token
