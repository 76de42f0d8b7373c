// Key generation and use: RSA and EC signatures checked by OpenSSL, RSA
// encryption both ways, digests, random, and the operation state machine.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include <atomic>
#include <thread>

#include "fixture.h"

namespace tkt {
namespace {

// The public key as OpenSSL sees it, rebuilt from the token's attributes.
EVP_PKEY* rsa_public(const Bytes& n, const Bytes& e) {
  OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
  BIGNUM* bn = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* be = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be);
  OSSL_PARAM* p = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* k = nullptr;
  EVP_PKEY_fromdata_init(c);
  EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, p);
  EVP_PKEY_CTX_free(c);
  OSSL_PARAM_free(p);
  OSSL_PARAM_BLD_free(b);
  BN_free(bn);
  BN_free(be);
  return k;
}

class CryptoTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
    s = user_session(slot);
  }
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
};

TEST_F(CryptoTest, RsaSha256SignatureVerifiesWithOpenSSL) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa", &pub, &priv);
  Bytes data = to_bytes("message to sign");
  Bytes sig = sign(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, priv, data);
  ASSERT_EQ(sig.size(), 256u);
  EVP_PKEY* k = rsa_public(attr(s, pub, CKA_MODULUS), attr(s, pub, CKA_PUBLIC_EXPONENT));
  ASSERT_NE(k, nullptr);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, k), 1);
  EXPECT_EQ(EVP_DigestVerify(md, sig.data(), sig.size(), data.data(), data.size()), 1);
  EVP_MD_CTX_free(md);
  EVP_PKEY_free(k);
  EXPECT_EQ(verify(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, pub, data, sig), CKR_OK);
  sig[10] ^= 1;
  EXPECT_EQ(verify(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, pub, data, sig), CKR_SIGNATURE_INVALID);
}

TEST_F(CryptoTest, RsaMechanismsSignAndVerify) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa", &pub, &priv);
  Bytes hash(32, 0x5a);
  CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
  CK_RSA_PKCS_PSS_PARAMS pss384 = {CKM_SHA384, CKG_MGF1_SHA384, 48};
  std::vector<std::pair<CK_MECHANISM, Bytes>> cases = {
      {{CKM_RSA_PKCS, nullptr, 0}, hash},
      {{CKM_RSA_X_509, nullptr, 0}, hash},
      {{CKM_RSA_PKCS_PSS, &pss, sizeof pss}, hash},
      {{CKM_SHA384_RSA_PKCS_PSS, &pss384, sizeof pss384}, to_bytes("data")},
      {{CKM_SHA1_RSA_PKCS, nullptr, 0}, to_bytes("data")},
      {{CKM_SHA224_RSA_PKCS, nullptr, 0}, to_bytes("data")},
      {{CKM_SHA384_RSA_PKCS, nullptr, 0}, to_bytes("data")},
      {{CKM_SHA512_RSA_PKCS, nullptr, 0}, to_bytes("data")},
  };
  for (auto& [m, data] : cases) {
    Bytes sig = sign(s, m, priv, data);
    EXPECT_EQ(sig.size(), 256u) << std::hex << m.mechanism;
    EXPECT_EQ(verify(s, m, pub, data, sig), CKR_OK) << std::hex << m.mechanism;
  }
}

TEST_F(CryptoTest, EcdsaOnAllCurves) {
  for (const auto& [params, size] : {std::pair{kP256, 64u}, {kP384, 96u}, {kP521, 132u}}) {
    CK_OBJECT_HANDLE pub, priv;
    gen_ec(s, params, "ec", &pub, &priv);
    Bytes data = to_bytes("hello");
    for (CK_MECHANISM_TYPE t : {CKM_ECDSA_SHA256, CKM_ECDSA_SHA1, CKM_ECDSA_SHA512}) {
      Bytes sig = sign(s, {t, nullptr, 0}, priv, data);
      EXPECT_EQ(sig.size(), size);
      EXPECT_EQ(verify(s, {t, nullptr, 0}, pub, data, sig), CKR_OK);
      sig[3] ^= 1;
      EXPECT_EQ(verify(s, {t, nullptr, 0}, pub, data, sig), CKR_SIGNATURE_INVALID);
    }
    Bytes hash(32, 7);
    Bytes sig = sign(s, {CKM_ECDSA, nullptr, 0}, priv, hash);
    EXPECT_EQ(verify(s, {CKM_ECDSA, nullptr, 0}, pub, hash, sig), CKR_OK);
  }
}

TEST_F(CryptoTest, RsaEncryptDecryptPkcs1AndOaep) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa", &pub, &priv);
  std::vector<CK_RSA_PKCS_OAEP_PARAMS> oaep = {
      {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, nullptr, 0},
      {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0},
      {CKM_SHA512, CKG_MGF1_SHA512, CKZ_DATA_SPECIFIED, nullptr, 0}};
  std::vector<CK_MECHANISM> mechs = {{CKM_RSA_PKCS, nullptr, 0}};
  for (auto& p : oaep) mechs.push_back({CKM_RSA_PKCS_OAEP, &p, sizeof p});
  for (auto& m : mechs) {
    Bytes plain = to_bytes("session key bytes");
    ASSERT_EQ(p11->C_EncryptInit(s, &m, pub), CKR_OK);
    CK_ULONG n = 0;
    ASSERT_EQ(p11->C_Encrypt(s, plain.data(), plain.size(), nullptr, &n), CKR_OK);
    Bytes ct(n);
    ASSERT_EQ(p11->C_Encrypt(s, plain.data(), plain.size(), ct.data(), &n), CKR_OK);
    ct.resize(n);
    ASSERT_EQ(p11->C_DecryptInit(s, &m, priv), CKR_OK);
    Bytes out(4);
    CK_ULONG len = out.size();
    // Too small: the operation stays and the retry gets the result.
    ASSERT_EQ(p11->C_Decrypt(s, ct.data(), ct.size(), out.data(), &len), CKR_BUFFER_TOO_SMALL);
    EXPECT_EQ(len, plain.size());
    out.resize(len);
    ASSERT_EQ(p11->C_Decrypt(s, ct.data(), ct.size(), out.data(), &len), CKR_OK);
    EXPECT_EQ(out, plain);
    // A damaged ciphertext is refused and ends the operation.
    ASSERT_EQ(p11->C_DecryptInit(s, &m, priv), CKR_OK);
    ct[5] ^= 0x40;
    len = out.size();
    EXPECT_NE(p11->C_Decrypt(s, ct.data(), ct.size(), out.data(), &len), CKR_OK);
    EXPECT_EQ(p11->C_Decrypt(s, ct.data(), ct.size(), out.data(), &len),
              CKR_OPERATION_NOT_INITIALIZED);
  }
}

TEST_F(CryptoTest, DigestsMatchOpenSSL) {
  Bytes data = to_bytes("abc");
  for (auto [mech, md] : {std::pair{CKM_SHA_1, EVP_sha1()},
                          {CKM_SHA224, EVP_sha224()},
                          {CKM_SHA256, EVP_sha256()},
                          {CKM_SHA384, EVP_sha384()},
                          {CKM_SHA512, EVP_sha512()}}) {
    CK_MECHANISM m = {mech, nullptr, 0};
    ASSERT_EQ(p11->C_DigestInit(s, &m), CKR_OK);
    ASSERT_EQ(p11->C_DigestUpdate(s, data.data(), 1), CKR_OK);
    ASSERT_EQ(p11->C_DigestUpdate(s, data.data() + 1, 2), CKR_OK);
    Bytes out(64);
    CK_ULONG n = out.size();
    ASSERT_EQ(p11->C_DigestFinal(s, out.data(), &n), CKR_OK);
    out.resize(n);
    Bytes want(static_cast<size_t>(EVP_MD_get_size(md)));
    EVP_Digest(data.data(), data.size(), want.data(), nullptr, md, nullptr);
    EXPECT_EQ(out, want);
  }
}

TEST_F(CryptoTest, MultiPartSignEqualsSinglePartVerify) {
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "ec", &pub, &priv);
  CK_MECHANISM m = {CKM_ECDSA_SHA384, nullptr, 0};
  ASSERT_EQ(p11->C_SignInit(s, &m, priv), CKR_OK);
  Bytes a = to_bytes("hello "), b = to_bytes("world");
  ASSERT_EQ(p11->C_SignUpdate(s, a.data(), a.size()), CKR_OK);
  ASSERT_EQ(p11->C_SignUpdate(s, b.data(), b.size()), CKR_OK);
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_SignFinal(s, nullptr, &n), CKR_OK);
  Bytes sig(n);
  ASSERT_EQ(p11->C_SignFinal(s, sig.data(), &n), CKR_OK);
  EXPECT_EQ(verify(s, m, pub, to_bytes("hello world"), sig), CKR_OK);
}

TEST_F(CryptoTest, OperationStateMachine) {
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "ec", &pub, &priv);
  CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
  Bytes data = to_bytes("x");
  CK_ULONG n = 0;
  EXPECT_EQ(p11->C_Sign(s, data.data(), 1, nullptr, &n), CKR_OPERATION_NOT_INITIALIZED);
  ASSERT_EQ(p11->C_SignInit(s, &m, priv), CKR_OK);
  EXPECT_EQ(p11->C_SignInit(s, &m, priv), CKR_OPERATION_ACTIVE);
  EXPECT_EQ(p11->C_Sign(s, data.data(), 1, nullptr, nullptr), CKR_ARGUMENTS_BAD);
  // An error other than CKR_BUFFER_TOO_SMALL ended the operation.
  EXPECT_EQ(p11->C_Sign(s, data.data(), 1, nullptr, &n), CKR_OPERATION_NOT_INITIALIZED);
  // Wrong key class, wrong mechanism, bad handles.
  EXPECT_EQ(p11->C_SignInit(s, &m, pub), CKR_KEY_TYPE_INCONSISTENT);
  CK_MECHANISM rsa = {CKM_SHA256_RSA_PKCS, nullptr, 0};
  EXPECT_EQ(p11->C_SignInit(s, &rsa, priv), CKR_KEY_TYPE_INCONSISTENT);
  CK_MECHANISM bogus = {0x7fffff00, nullptr, 0};
  EXPECT_EQ(p11->C_SignInit(s, &bogus, priv), CKR_MECHANISM_INVALID);
  EXPECT_EQ(p11->C_SignInit(s, &m, 987654), CKR_KEY_HANDLE_INVALID);
  EXPECT_EQ(p11->C_SignInit(s, nullptr, priv), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(p11->C_SignInit(777777, &m, priv), CKR_SESSION_HANDLE_INVALID);
  // Logout ends operations and hides the private key.
  ASSERT_EQ(p11->C_SignInit(s, &m, priv), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(p11->C_Sign(s, data.data(), 1, nullptr, &n), CKR_OPERATION_NOT_INITIALIZED);
  EXPECT_EQ(p11->C_SignInit(s, &m, priv), CKR_USER_NOT_LOGGED_IN);
}

TEST_F(CryptoTest, KeyUsageIsEnforced) {
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, kP256);
  kt.flag(CKA_SIGN, false);
  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_OK);
  CK_MECHANISM m = {CKM_ECDSA, nullptr, 0};
  EXPECT_EQ(p11->C_SignInit(s, &m, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
}

TEST_F(CryptoTest, GenerateRandom) {
  Bytes a(32), b(32);
  ASSERT_EQ(p11->C_GenerateRandom(s, a.data(), a.size()), CKR_OK);
  ASSERT_EQ(p11->C_GenerateRandom(s, b.data(), b.size()), CKR_OK);
  EXPECT_NE(a, b);
  EXPECT_EQ(p11->C_GenerateRandom(s, nullptr, 4), CKR_ARGUMENTS_BAD);
}

TEST_F(CryptoTest, KeyGenerationRules) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa", &pub, &priv);
  EXPECT_EQ(attr(s, priv, CKA_ALWAYS_SENSITIVE), Bytes{CK_TRUE});
  EXPECT_EQ(attr(s, priv, CKA_NEVER_EXTRACTABLE), Bytes{CK_TRUE});
  EXPECT_EQ(attr(s, priv, CKA_LOCAL), Bytes{CK_TRUE});
  // The default CKA_ID is NSS's: SHA-1 of the modulus, on both keys.
  Bytes n = attr(s, pub, CKA_MODULUS);
  Bytes id(20);
  EVP_Digest(n.data(), n.size(), id.data(), nullptr, EVP_sha1(), nullptr);
  EXPECT_EQ(attr(s, pub, CKA_ID), id);
  EXPECT_EQ(attr(s, priv, CKA_ID), id);
  // Sizes outside 2048..4096 are refused.
  CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.ulong(CKA_MODULUS_BITS, 1024);
  EXPECT_EQ(p11->C_GenerateKeyPair(s, &m, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
            CKR_KEY_SIZE_RANGE);
  // Key material may not be given to C_GenerateKeyPair.
  Template bad;
  bad.ulong(CKA_MODULUS_BITS, 2048).bytes(CKA_MODULUS, Bytes(256, 1));
  EXPECT_EQ(
      p11->C_GenerateKeyPair(s, &m, bad.data(), bad.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_TEMPLATE_INCONSISTENT);
  // An unknown curve.
  CK_MECHANISM ec = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template curve;
  curve.bytes(CKA_EC_PARAMS, {0x06, 0x03, 0x2b, 0x65, 0x70});
  EXPECT_EQ(
      p11->C_GenerateKeyPair(s, &ec, curve.data(), curve.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_CURVE_NOT_SUPPORTED);
}

// CKF_OS_LOCKING_OK: threads share a key and sign at once, each in its own
// session; every signature verifies.
TEST_F(CryptoTest, ThreadsSignConcurrently) {
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "shared", &pub, &priv);
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      CK_SESSION_HANDLE mine = 0;
      if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &mine) != CKR_OK) return;
      for (int i = 0; i < 25; ++i) {
        CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
        Bytes data = to_bytes("thread " + std::to_string(t) + " msg " + std::to_string(i));
        Bytes sig(64);
        CK_ULONG n = sig.size();
        if (p11->C_SignInit(mine, &m, priv) != CKR_OK ||
            p11->C_Sign(mine, data.data(), data.size(), sig.data(), &n) != CKR_OK)
          continue;
        if (p11->C_VerifyInit(mine, &m, pub) == CKR_OK &&
            p11->C_Verify(mine, data.data(), data.size(), sig.data(), n) == CKR_OK)
          ++good;
      }
      p11->C_CloseSession(mine);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(good.load(), 100);
}

// An EC key made by the openssl CLI, imported with C_CreateObject.
TEST_F(CryptoTest, ImportedOpenSSLEcKeySigns) {
  std::string pem = dir + "/ec.pem";
  int rc = 0;
  run("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " + pem, &rc);
  ASSERT_EQ(rc, 0);
  FILE* f = fopen(pem.c_str(), "r");
  ASSERT_NE(f, nullptr);
  EVP_PKEY* k = PEM_read_PrivateKey(f, nullptr, nullptr, nullptr);
  fclose(f);
  ASSERT_NE(k, nullptr);
  Bytes d = bn(k, OSSL_PKEY_PARAM_PRIV_KEY);
  size_t len = 0;
  EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &len);
  Bytes point(len);
  EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, point.data(), len, &len);
  Template priv;
  priv.ulong(CKA_CLASS, CKO_PRIVATE_KEY).ulong(CKA_KEY_TYPE, CKK_EC).flag(CKA_TOKEN, true);
  priv.bytes(CKA_EC_PARAMS, kP384).bytes(CKA_VALUE, d).text(CKA_LABEL, "imported ec");
  Template pub;
  pub.ulong(CKA_CLASS, CKO_PUBLIC_KEY).ulong(CKA_KEY_TYPE, CKK_EC).flag(CKA_TOKEN, true);
  pub.bytes(CKA_EC_PARAMS, kP384).bytes(CKA_EC_POINT, point);  // bare point: accepted
  CK_OBJECT_HANDLE hpriv, hpub;
  ASSERT_EQ(p11->C_CreateObject(s, priv.data(), priv.size(), &hpriv), CKR_OK);
  ASSERT_EQ(p11->C_CreateObject(s, pub.data(), pub.size(), &hpub), CKR_OK);
  Bytes data = to_bytes("ec import");
  Bytes sig = sign(s, {CKM_ECDSA_SHA384, nullptr, 0}, hpriv, data);
  ASSERT_EQ(sig.size(), 96u);
  EXPECT_EQ(verify(s, {CKM_ECDSA_SHA384, nullptr, 0}, hpub, data, sig), CKR_OK);
  // OpenSSL agrees, once r||s is DER again.
  ECDSA_SIG* es = ECDSA_SIG_new();
  ECDSA_SIG_set0(es, BN_bin2bn(sig.data(), 48, nullptr), BN_bin2bn(sig.data() + 48, 48, nullptr));
  unsigned char* der = nullptr;
  int dlen = i2d_ECDSA_SIG(es, &der);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha384(), nullptr, k), 1);
  EXPECT_EQ(EVP_DigestVerify(md, der, static_cast<size_t>(dlen), data.data(), data.size()), 1);
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ECDSA_SIG_free(es);
  EVP_PKEY_free(k);
}

// Ed25519 (PKCS#11 3.0 numbers): generated on the token with either form
// of CKA_EC_PARAMS, signatures checked by OpenSSL.
TEST_F(CryptoTest, Ed25519SignaturesVerifyWithOpenSSL) {
  const CK_MECHANISM_TYPE kGen = 0x1055, kEdDsa = 0x1057;
  const Bytes oid = {0x06, 0x03, 0x2b, 0x65, 0x70};
  Bytes name = {0x13, 0x0c};
  for (char c : std::string("edwards25519")) name.push_back(static_cast<unsigned char>(c));
  for (const Bytes& params : {oid, name}) {
    CK_MECHANISM gen = {kGen, nullptr, 0};
    Template pt, kt;
    pt.bytes(CKA_EC_PARAMS, params);
    CK_OBJECT_HANDLE pub, priv;
    ASSERT_EQ(
        p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
        CKR_OK);
    Bytes point = attr(s, pub, CKA_EC_POINT);
    ASSERT_EQ(point.size(), 34u);
    Bytes data = to_bytes("ed25519 message");
    Bytes sig = sign(s, {kEdDsa, nullptr, 0}, priv, data);
    ASSERT_EQ(sig.size(), 64u);
    EXPECT_EQ(verify(s, {kEdDsa, nullptr, 0}, pub, data, sig), CKR_OK);
    EVP_PKEY* k =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nullptr, point.data() + 2, point.size() - 2);
    ASSERT_NE(k, nullptr);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, nullptr, nullptr, k), 1);
    EXPECT_EQ(EVP_DigestVerify(md, sig.data(), sig.size(), data.data(), data.size()), 1);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(k);
    sig[0] ^= 1;
    EXPECT_EQ(verify(s, {kEdDsa, nullptr, 0}, pub, data, sig), CKR_SIGNATURE_INVALID);
  }
}

}  // namespace
}  // namespace tkt
