// X25519 keys (PKCS#11 3.0 CKK_EC_MONTGOMERY): generated on the token with
// either form of CKA_EC_PARAMS or made by the openssl CLI and imported, then
// CKM_ECDH1_DERIVE, whose result must equal OpenSSL's X25519 with the peer
// key (raw with CKD_NULL, and through the X9.63 KDF).
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/pem.h>

#include <algorithm>

#include "fixture.h"

namespace tkt {
namespace {

constexpr CK_KEY_TYPE kMontgomery = 0x41;
constexpr CK_MECHANISM_TYPE kGen = 0x1056;
const Bytes kOid = {0x06, 0x03, 0x2b, 0x65, 0x6e};  // 1.3.101.110

Bytes printable(const std::string& s) {
  Bytes b = {0x13, static_cast<unsigned char>(s.size())};
  b.insert(b.end(), s.begin(), s.end());
  return b;
}

Bytes raw_public(EVP_PKEY* k) {
  Bytes b(32);
  size_t n = b.size();
  EXPECT_EQ(EVP_PKEY_get_raw_public_key(k, b.data(), &n), 1);
  return b;
}

// OpenSSL's X25519(mine, peer's 32 bytes).
Bytes openssl_x25519(EVP_PKEY* mine, const Bytes& peer_raw) {
  EVP_PKEY* peer =
      EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, peer_raw.data(), peer_raw.size());
  EXPECT_NE(peer, nullptr);
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new(mine, nullptr);
  Bytes z(32);
  size_t n = z.size();
  EXPECT_EQ(EVP_PKEY_derive_init(c), 1);
  EXPECT_EQ(EVP_PKEY_derive_set_peer(c, peer), 1);
  EXPECT_EQ(EVP_PKEY_derive(c, z.data(), &n), 1);
  EVP_PKEY_CTX_free(c);
  EVP_PKEY_free(peer);
  return z;
}

Bytes x963_sha256(const Bytes& z, const Bytes& info, size_t len) {
  EVP_KDF* x = EVP_KDF_fetch(nullptr, "X963KDF", nullptr);
  EVP_KDF_CTX* xc = EVP_KDF_CTX_new(x);
  char md[] = "SHA256";
  Bytes zz = z, ii = info;
  OSSL_PARAM kp[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md, 0),
                     OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, zz.data(), zz.size()),
                     OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, ii.data(), ii.size()),
                     OSSL_PARAM_construct_end()};
  Bytes out(len);
  EXPECT_EQ(EVP_KDF_derive(xc, out.data(), out.size(), kp), 1);
  EVP_KDF_CTX_free(xc);
  EVP_KDF_free(x);
  return out;
}

class MontgomeryTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
    s = user_session(slot);
  }
  // The token's secret for `peer_data` (raw or DER), or the C_DeriveKey error.
  CK_RV derive(CK_OBJECT_HANDLE priv, const Bytes& peer_data, Bytes* out,
               ck_ec_kdf_t kdf = CKD_NULL, const Bytes& info = {}, CK_ULONG len = 32) {
    Bytes pd = peer_data, sd = info;
    CK_ECDH1_DERIVE_PARAMS p = {kdf, sd.size(), sd.empty() ? nullptr : sd.data(), pd.size(),
                                pd.data()};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof p};
    Template t;
    t.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    t.ulong(CKA_VALUE_LEN, len).flag(CKA_SENSITIVE, false).flag(CKA_EXTRACTABLE, true);
    CK_OBJECT_HANDLE k = CK_INVALID_HANDLE;
    CK_RV rv = p11->C_DeriveKey(s, &m, priv, t.data(), t.size(), &k);
    if (rv == CKR_OK) *out = attr(s, k, CKA_VALUE);
    return rv;
  }
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
};

TEST_F(MontgomeryTest, GeneratedKeyDerivesWhatOpenSSLDerives) {
  for (const Bytes& params : {kOid, printable("curve25519")}) {
    CK_MECHANISM gen = {kGen, nullptr, 0};
    Template pt, kt;
    pt.bytes(CKA_EC_PARAMS, params);
    kt.flag(CKA_DERIVE, true);
    CK_OBJECT_HANDLE pub, priv;
    ASSERT_EQ(
        p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
        CKR_OK);
    Bytes point = attr(s, pub, CKA_EC_POINT);
    ASSERT_EQ(point.size(), 34u);  // DER OCTET STRING of the 32-byte u-coordinate
    EXPECT_EQ(point[0], 0x04);
    EXPECT_EQ(point[1], 32);
    Bytes u(point.begin() + 2, point.end());
    Bytes kt_type = attr(s, priv, CKA_KEY_TYPE);
    CK_ULONG type = 0;
    std::copy(kt_type.begin(), kt_type.end(), reinterpret_cast<unsigned char*>(&type));
    EXPECT_EQ(type, kMontgomery);
    EXPECT_EQ(attr(s, priv, CKA_EC_PARAMS), params);

    EVP_PKEY* peer = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
    ASSERT_NE(peer, nullptr);
    const Bytes want = openssl_x25519(peer, u);
    Bytes got;
    ASSERT_EQ(derive(priv, raw_public(peer), &got), CKR_OK);
    EXPECT_EQ(got, want);
    // The peer's key as a DER OCTET STRING works the same.
    Bytes der = {0x04, 0x20};
    Bytes rp = raw_public(peer);
    der.insert(der.end(), rp.begin(), rp.end());
    ASSERT_EQ(derive(priv, der, &got), CKR_OK);
    EXPECT_EQ(got, want);
    // And through the X9.63 KDF (CKD_SHA256_KDF), as for P-256.
    Bytes info = to_bytes("x25519 shared info");
    ASSERT_EQ(derive(priv, rp, &got, CKD_SHA256_KDF, info, 24), CKR_OK);
    EXPECT_EQ(got, x963_sha256(want, info, 24));
    EVP_PKEY_free(peer);
  }
}

TEST_F(MontgomeryTest, ImportedOpenSSLKeyDerivesWhatOpenSSLDerives) {
  const std::string pem = dir + "/x.pem";
  int rc = 0;
  run("openssl genpkey -algorithm X25519 -out " + pem, &rc);
  ASSERT_EQ(rc, 0);
  FILE* f = fopen(pem.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  EXPECT_EQ(fclose(f), 0);
  ASSERT_NE(k, nullptr);
  Bytes d(32);
  size_t n = d.size();
  ASSERT_EQ(EVP_PKEY_get_raw_private_key(k, d.data(), &n), 1);
  Template priv;
  priv.ulong(CKA_CLASS, CKO_PRIVATE_KEY).ulong(CKA_KEY_TYPE, kMontgomery).flag(CKA_TOKEN, true);
  priv.bytes(CKA_EC_PARAMS, kOid).bytes(CKA_VALUE, d).flag(CKA_DERIVE, true);
  CK_OBJECT_HANDLE hpriv;
  ASSERT_EQ(p11->C_CreateObject(s, priv.data(), priv.size(), &hpriv), CKR_OK);
  EVP_PKEY* peer = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  Bytes got;
  ASSERT_EQ(derive(hpriv, raw_public(peer), &got), CKR_OK);
  EXPECT_EQ(got, openssl_x25519(k, raw_public(peer)));
  EXPECT_EQ(got, openssl_x25519(peer, raw_public(k)));
  EVP_PKEY_free(peer);

  // A private value of the wrong length is refused at import.
  Template bad;
  Bytes short_d(d.begin(), d.begin() + 31);
  bad.ulong(CKA_CLASS, CKO_PRIVATE_KEY).ulong(CKA_KEY_TYPE, kMontgomery);
  bad.bytes(CKA_EC_PARAMS, kOid).bytes(CKA_VALUE, short_d);
  CK_OBJECT_HANDLE h;
  EXPECT_EQ(p11->C_CreateObject(s, bad.data(), bad.size(), &h), CKR_ATTRIBUTE_VALUE_INVALID);
  EVP_PKEY_free(k);
}

TEST_F(MontgomeryTest, BadPeersCurvesAndUsesAreRefused) {
  CK_MECHANISM gen = {kGen, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, kOid);
  kt.flag(CKA_DERIVE, true);
  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_OK);
  Bytes got;
  EXPECT_EQ(derive(priv, Bytes(31, 9), &got), CKR_MECHANISM_PARAM_INVALID);
  EXPECT_EQ(derive(priv, Bytes(65, 4), &got), CKR_MECHANISM_PARAM_INVALID);
  // u = 0 is of small order: the shared secret would be all zeros.
  EXPECT_EQ(derive(priv, Bytes(32, 0), &got), CKR_MECHANISM_PARAM_INVALID);
  // X448 and Edwards parameters are not curve25519.
  Template x448;
  x448.bytes(CKA_EC_PARAMS, {0x06, 0x03, 0x2b, 0x65, 0x6f});
  Template none;
  EXPECT_EQ(p11->C_GenerateKeyPair(s, &gen, x448.data(), x448.size(), none.data(), none.size(),
                                   &pub, &priv),
            CKR_CURVE_NOT_SUPPORTED);
  // An X25519 key does not sign.
  CK_MECHANISM eddsa = {0x1057, nullptr, 0};
  EXPECT_EQ(p11->C_SignInit(s, &eddsa, priv), CKR_KEY_TYPE_INCONSISTENT);
  // A key without CKA_DERIVE may not derive.
  Template kt2;
  CK_OBJECT_HANDLE pub2, priv2;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt2.data(), kt2.size(), &pub2, &priv2),
      CKR_OK);
  EVP_PKEY* peer = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  EXPECT_EQ(derive(priv2, raw_public(peer), &got), CKR_KEY_FUNCTION_NOT_PERMITTED);
  EVP_PKEY_free(peer);
}

TEST_F(MontgomeryTest, MechanismListAndInfo) {
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_GetMechanismList(slot, nullptr, &n), CKR_OK);
  std::vector<CK_MECHANISM_TYPE> types(n);
  ASSERT_EQ(p11->C_GetMechanismList(slot, types.data(), &n), CKR_OK);
  EXPECT_EQ(std::count(types.begin(), types.end(), kGen), 1);
  // One entry for ECDH, though two key types take it.
  EXPECT_EQ(std::count(types.begin(), types.end(), CKM_ECDH1_DERIVE), 1);
  CK_MECHANISM_INFO info{};
  ASSERT_EQ(p11->C_GetMechanismInfo(slot, kGen, &info), CKR_OK);
  EXPECT_EQ(info.ulMinKeySize, 255u);
  EXPECT_TRUE(info.flags & CKF_GENERATE_KEY_PAIR);
  ASSERT_EQ(p11->C_GetMechanismInfo(slot, CKM_ECDH1_DERIVE, &info), CKR_OK);
  EXPECT_EQ(info.ulMinKeySize, 255u);
  EXPECT_EQ(info.ulMaxKeySize, 521u);
  EXPECT_TRUE(info.flags & CKF_DERIVE);
}

}  // namespace
}  // namespace tkt
