// AES keys and modes, and C_UnwrapKey(CKM_RSA_PKCS) into an AES key — the
// path NSS takes to open S/MIME mail. Ciphertexts come from OpenSSL.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "fixture.h"

namespace tkt {
namespace {

Bytes openssl_aes(const EVP_CIPHER* c, const Bytes& key, const Bytes& iv, const Bytes& in,
                  bool pad) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_EncryptInit_ex(ctx, c, nullptr, key.data(), iv.empty() ? nullptr : iv.data());
  EVP_CIPHER_CTX_set_padding(ctx, pad ? 1 : 0);
  Bytes out(in.size() + 32);
  int len = 0, total = 0;
  EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(in.size()));
  total = len;
  EVP_EncryptFinal_ex(ctx, out.data() + total, &len);
  out.resize(static_cast<size_t>(total + len));
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

class AesTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
    s = user_session(slot);
  }
  CK_OBJECT_HANDLE aes_key(const Bytes& value) {
    Template t;
    t.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, CKK_AES).bytes(CKA_VALUE, value);
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    EXPECT_EQ(p11->C_CreateObject(s, t.data(), t.size(), &h), CKR_OK);
    return h;
  }
  Bytes crypt(bool enc, CK_MECHANISM m, CK_OBJECT_HANDLE k, const Bytes& in, CK_RV want = CKR_OK) {
    EXPECT_EQ(enc ? p11->C_EncryptInit(s, &m, k) : p11->C_DecryptInit(s, &m, k), CKR_OK);
    Bytes data = in, out(in.size() + 32);
    CK_ULONG n = out.size();
    CK_RV rv = enc ? p11->C_Encrypt(s, data.data(), data.size(), out.data(), &n)
                   : p11->C_Decrypt(s, data.data(), data.size(), out.data(), &n);
    EXPECT_EQ(rv, want);
    out.resize(rv == CKR_OK ? n : 0);
    return out;
  }
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
};

TEST_F(AesTest, ModesMatchOpenSSL) {
  Bytes key(32), iv(16), msg = to_bytes("sixteen byte blk and some more!!");
  RAND_bytes(key.data(), 32);
  RAND_bytes(iv.data(), 16);
  CK_OBJECT_HANDLE k = aes_key(key);
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  CK_MECHANISM cbc = {CKM_AES_CBC, iv.data(), iv.size()};
  CK_MECHANISM pad = {CKM_AES_CBC_PAD, iv.data(), iv.size()};
  EXPECT_EQ(crypt(true, ecb, k, msg), openssl_aes(EVP_aes_256_ecb(), key, {}, msg, false));
  EXPECT_EQ(crypt(true, cbc, k, msg), openssl_aes(EVP_aes_256_cbc(), key, iv, msg, false));
  Bytes odd = to_bytes("not a multiple of the block");
  Bytes ct = openssl_aes(EVP_aes_256_cbc(), key, iv, odd, true);
  EXPECT_EQ(crypt(true, pad, k, odd), ct);
  EXPECT_EQ(crypt(false, pad, k, ct), odd);
  crypt(true, cbc, k, odd, CKR_DATA_LEN_RANGE);
  // Multi-part decryption: each part returns the blocks it completes (the
  // last one held back for the padding), a size query takes no input, and
  // a too-small buffer leaves the operation as it was.
  ASSERT_EQ(p11->C_DecryptInit(s, &pad, k), CKR_OK);
  Bytes got, out(64);
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_DecryptUpdate(s, ct.data(), 5, nullptr, &n), CKR_OK);
  EXPECT_EQ(n, 0u);
  n = out.size();
  ASSERT_EQ(p11->C_DecryptUpdate(s, ct.data(), 5, out.data(), &n), CKR_OK);
  EXPECT_EQ(n, 0u);
  n = 3;
  ASSERT_EQ(p11->C_DecryptUpdate(s, ct.data() + 5, ct.size() - 5, out.data(), &n),
            CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(n, 16u);
  n = out.size();
  ASSERT_EQ(p11->C_DecryptUpdate(s, ct.data() + 5, ct.size() - 5, out.data(), &n), CKR_OK);
  EXPECT_EQ(n, 16u);
  got.insert(got.end(), out.begin(), out.begin() + static_cast<long>(n));
  n = out.size();
  ASSERT_EQ(p11->C_DecryptFinal(s, out.data(), &n), CKR_OK);
  got.insert(got.end(), out.begin(), out.begin() + static_cast<long>(n));
  EXPECT_EQ(got, odd);
  // Multi-part CBC encryption equals OpenSSL's.
  Bytes plain(48, 0x42);
  ASSERT_EQ(p11->C_EncryptInit(s, &cbc, k), CKR_OK);
  got.clear();
  for (size_t at = 0; at < plain.size(); at += 20) {
    size_t len = std::min<size_t>(20, plain.size() - at);
    n = out.size();
    ASSERT_EQ(p11->C_EncryptUpdate(s, plain.data() + at, len, out.data(), &n), CKR_OK);
    got.insert(got.end(), out.begin(), out.begin() + static_cast<long>(n));
  }
  n = out.size();
  ASSERT_EQ(p11->C_EncryptFinal(s, out.data(), &n), CKR_OK);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(got, openssl_aes(EVP_aes_256_cbc(), key, iv, plain, false));
}

TEST_F(AesTest, GcmRoundTripAndTamper) {
  CK_MECHANISM gen = {CKM_AES_KEY_GEN, nullptr, 0};
  Template t;
  t.ulong(CKA_VALUE_LEN, 16).text(CKA_LABEL, "gcm key");
  CK_OBJECT_HANDLE k;
  ASSERT_EQ(p11->C_GenerateKey(s, &gen, t.data(), t.size(), &k), CKR_OK);
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, k, CKA_VALUE, &len), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(attr(s, k, CKA_ALWAYS_SENSITIVE), Bytes{CK_TRUE});
  Bytes iv(12, 3), aad = to_bytes("header");
  CK_GCM_PARAMS p = {iv.data(), iv.size(), 96, aad.data(), aad.size(), 128};
  CK_MECHANISM gcm = {CKM_AES_GCM, &p, sizeof p};
  Bytes msg = to_bytes("authenticated message");
  Bytes ct = crypt(true, gcm, k, msg);
  EXPECT_EQ(ct.size(), msg.size() + 16);
  EXPECT_EQ(crypt(false, gcm, k, ct), msg);
  ct[2] ^= 1;
  crypt(false, gcm, k, ct, CKR_ENCRYPTED_DATA_INVALID);
  Template bad;
  bad.ulong(CKA_VALUE_LEN, 20);
  EXPECT_EQ(p11->C_GenerateKey(s, &gen, bad.data(), bad.size(), &k), CKR_ATTRIBUTE_VALUE_INVALID);
}

TEST_F(AesTest, UnwrapRsaPkcsIntoAesThenDecrypt) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "mail key", &pub, &priv);
  // The sender's side, in OpenSSL: a content key wrapped for our public key.
  Bytes n = attr(s, pub, CKA_MODULUS), e = attr(s, pub, CKA_PUBLIC_EXPONENT);
  OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
  BIGNUM* bn_n = BN_bin2bn(n.data(), static_cast<int>(n.size()), nullptr);
  BIGNUM* bn_e = BN_bin2bn(e.data(), static_cast<int>(e.size()), nullptr);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn_n);
  OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e);
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(b);
  EVP_PKEY_CTX* fc = EVP_PKEY_CTX_new_from_name(nullptr, "RSA", nullptr);
  EVP_PKEY* rsa = nullptr;
  EVP_PKEY_fromdata_init(fc);
  ASSERT_EQ(EVP_PKEY_fromdata(fc, &rsa, EVP_PKEY_PUBLIC_KEY, params), 1);
  Bytes cek(32), iv(16);
  RAND_bytes(cek.data(), 32);
  RAND_bytes(iv.data(), 16);
  EVP_PKEY_CTX* ec = EVP_PKEY_CTX_new(rsa, nullptr);
  EVP_PKEY_encrypt_init(ec);
  EVP_PKEY_CTX_set_rsa_padding(ec, RSA_PKCS1_PADDING);
  Bytes wrapped(256);
  size_t wlen = wrapped.size();
  ASSERT_EQ(EVP_PKEY_encrypt(ec, wrapped.data(), &wlen, cek.data(), cek.size()), 1);
  wrapped.resize(wlen);
  Bytes mail = to_bytes("Content-Type: text/plain\r\n\r\nsecret mail body\r\n");
  Bytes ct = openssl_aes(EVP_aes_256_cbc(), cek, iv, mail, true);
  EVP_PKEY_CTX_free(ec);
  EVP_PKEY_free(rsa);
  EVP_PKEY_CTX_free(fc);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(b);
  BN_free(bn_n);
  BN_free(bn_e);

  // The receiving side, as NSS does it.
  CK_MECHANISM m = {CKM_RSA_PKCS, nullptr, 0};
  Template t;
  t.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, CKK_AES).flag(CKA_TOKEN, false);
  t.flag(CKA_DECRYPT, true).ulong(CKA_VALUE_LEN, 32);
  CK_OBJECT_HANDLE k;
  ASSERT_EQ(p11->C_UnwrapKey(s, &m, priv, wrapped.data(), wrapped.size(), t.data(), t.size(), &k),
            CKR_OK);
  EXPECT_EQ(attr(s, k, CKA_LOCAL), Bytes{CK_FALSE});
  EXPECT_EQ(attr(s, k, CKA_ALWAYS_SENSITIVE), Bytes{CK_FALSE});
  CK_MECHANISM cbc = {CKM_AES_CBC_PAD, iv.data(), iv.size()};
  EXPECT_EQ(crypt(false, cbc, k, ct), mail);
  // A damaged wrapping, and a public key as unwrapping key.
  wrapped[7] ^= 0x10;
  CK_OBJECT_HANDLE k2;
  EXPECT_EQ(p11->C_UnwrapKey(s, &m, priv, wrapped.data(), wrapped.size(), t.data(), t.size(), &k2),
            CKR_WRAPPED_KEY_INVALID);
  EXPECT_EQ(p11->C_UnwrapKey(s, &m, pub, wrapped.data(), wrapped.size(), t.data(), t.size(), &k2),
            CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT);
}

// CKM_ECDH1_DERIVE: the token's secret equals OpenSSL's, raw (CKD_NULL)
// and through the X9.63 KDF (CKD_SHA256_KDF) into an AES key.
TEST_F(AesTest, Ecdh1DeriveMatchesOpenSSL) {
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, kP256);
  kt.flag(CKA_DERIVE, true);
  CK_OBJECT_HANDLE pub, priv;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_OK);
  Bytes token_point = attr(s, pub, CKA_EC_POINT);
  ASSERT_EQ(token_point.size(), 67u);
  token_point.erase(token_point.begin(), token_point.begin() + 2);  // DER OCTET STRING header

  EVP_PKEY* peer = EVP_EC_gen("P-256");
  ASSERT_NE(peer, nullptr);
  size_t plen = 0;
  EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, nullptr, 0, &plen);
  Bytes peer_point(plen);
  EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_PUB_KEY, peer_point.data(), plen, &plen);
  char group[] = "P-256";
  OSSL_PARAM pp[] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, group, 0),
                     OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, token_point.data(),
                                                       token_point.size()),
                     OSSL_PARAM_construct_end()};
  EVP_PKEY_CTX* fc = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* tpub = nullptr;
  EVP_PKEY_fromdata_init(fc);
  ASSERT_EQ(EVP_PKEY_fromdata(fc, &tpub, EVP_PKEY_PUBLIC_KEY, pp), 1);
  EVP_PKEY_CTX* dc = EVP_PKEY_CTX_new(peer, nullptr);
  Bytes z(32);
  size_t zlen = z.size();
  ASSERT_EQ(EVP_PKEY_derive_init(dc), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(dc, tpub), 1);
  ASSERT_EQ(EVP_PKEY_derive(dc, z.data(), &zlen), 1);
  EVP_PKEY_CTX_free(dc);
  EVP_PKEY_CTX_free(fc);
  EVP_PKEY_free(tpub);
  EVP_PKEY_free(peer);

  CK_ECDH1_DERIVE_PARAMS raw = {CKD_NULL, 0, nullptr, peer_point.size(), peer_point.data()};
  CK_MECHANISM m = {CKM_ECDH1_DERIVE, &raw, sizeof raw};
  Template gt;
  gt.ulong(CKA_KEY_TYPE, CKK_GENERIC_SECRET).ulong(CKA_VALUE_LEN, 32);
  gt.flag(CKA_SENSITIVE, false).flag(CKA_EXTRACTABLE, true);
  CK_OBJECT_HANDLE k;
  ASSERT_EQ(p11->C_DeriveKey(s, &m, priv, gt.data(), gt.size(), &k), CKR_OK);
  EXPECT_EQ(attr(s, k, CKA_VALUE), z);

  Bytes info = to_bytes("shared info");
  CK_ECDH1_DERIVE_PARAMS kdf = {CKD_SHA256_KDF, info.size(), info.data(), peer_point.size(),
                                peer_point.data()};
  CK_MECHANISM mk = {CKM_ECDH1_DERIVE, &kdf, sizeof kdf};
  Template at;
  at.ulong(CKA_KEY_TYPE, CKK_AES).ulong(CKA_VALUE_LEN, 16);
  CK_OBJECT_HANDLE aes;
  ASSERT_EQ(p11->C_DeriveKey(s, &mk, priv, at.data(), at.size(), &aes), CKR_OK);
  EVP_KDF* x = EVP_KDF_fetch(nullptr, "X963KDF", nullptr);
  EVP_KDF_CTX* xc = EVP_KDF_CTX_new(x);
  char md[] = "SHA256";
  OSSL_PARAM kp[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, md, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, z.data(), z.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  Bytes want_key(16);
  ASSERT_EQ(EVP_KDF_derive(xc, want_key.data(), want_key.size(), kp), 1);
  EVP_KDF_CTX_free(xc);
  EVP_KDF_free(x);
  Bytes block(16, 0);
  CK_MECHANISM ecb = {CKM_AES_ECB, nullptr, 0};
  EXPECT_EQ(crypt(true, ecb, aes, block),
            openssl_aes(EVP_aes_128_ecb(), want_key, {}, block, false));

  // A key without CKA_DERIVE may not be used.
  CK_OBJECT_HANDLE pub2, priv2;
  gen_ec(s, kP256, "no derive", &pub2, &priv2);
  EXPECT_EQ(p11->C_DeriveKey(s, &m, priv2, gt.data(), gt.size(), &k),
            CKR_KEY_FUNCTION_NOT_PERMITTED);
}

// C_WrapKey with RSA-OAEP: an extractable AES key leaves the token
// encrypted and comes back through C_UnwrapKey; an unextractable one stays.
TEST_F(AesTest, WrapAndUnwrapWithRsaOaep) {
  CK_OBJECT_HANDLE pub, priv;
  CK_MECHANISM gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.ulong(CKA_MODULUS_BITS, 2048).flag(CKA_WRAP, true);
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_OK);
  Bytes value(32, 0x11);
  Template at;
  at.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, CKK_AES).bytes(CKA_VALUE, value);
  at.flag(CKA_EXTRACTABLE, true);
  CK_OBJECT_HANDLE aes, locked = aes_key(value);
  ASSERT_EQ(p11->C_CreateObject(s, at.data(), at.size(), &aes), CKR_OK);
  CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, nullptr, 0};
  CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &oaep, sizeof oaep};
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_WrapKey(s, &m, pub, aes, nullptr, &n), CKR_OK);
  Bytes wrapped(n);
  ASSERT_EQ(p11->C_WrapKey(s, &m, pub, aes, wrapped.data(), &n), CKR_OK);
  wrapped.resize(n);
  EXPECT_EQ(p11->C_WrapKey(s, &m, pub, locked, wrapped.data(), &n), CKR_KEY_UNEXTRACTABLE);
  EXPECT_EQ(p11->C_WrapKey(s, &m, pub, priv, wrapped.data(), &n), CKR_KEY_NOT_WRAPPABLE);
  Template ut;
  ut.ulong(CKA_KEY_TYPE, CKK_AES).flag(CKA_SENSITIVE, false).flag(CKA_EXTRACTABLE, true);
  CK_OBJECT_HANDLE back;
  ASSERT_EQ(
      p11->C_UnwrapKey(s, &m, priv, wrapped.data(), wrapped.size(), ut.data(), ut.size(), &back),
      CKR_OK);
  EXPECT_EQ(attr(s, back, CKA_VALUE), value);
}

Bytes openssl_wrap(const EVP_CIPHER* c, const Bytes& kek, const Bytes& in) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  EVP_EncryptInit_ex(ctx, c, nullptr, kek.data(), nullptr);
  Bytes out(in.size() + 16);
  int len = 0, fin = 0;
  EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(in.size()));
  EVP_EncryptFinal_ex(ctx, out.data() + len, &fin);
  out.resize(static_cast<size_t>(len + fin));
  EVP_CIPHER_CTX_free(ctx);
  return out;
}

// CKM_AES_KEY_WRAP (RFC 3394) and _PAD (RFC 5649): same bytes as OpenSSL,
// and back through C_UnwrapKey.
TEST_F(AesTest, AesKeyWrapMatchesOpenSSL) {
  Bytes kek(32), aes_value(16), odd_value(20);
  RAND_bytes(kek.data(), 32);
  RAND_bytes(aes_value.data(), 16);
  RAND_bytes(odd_value.data(), 20);
  Template kt;
  kt.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, CKK_AES).bytes(CKA_VALUE, kek);
  kt.flag(CKA_WRAP, true).flag(CKA_UNWRAP, true);
  CK_OBJECT_HANDLE k;
  ASSERT_EQ(p11->C_CreateObject(s, kt.data(), kt.size(), &k), CKR_OK);
  struct Case {
    CK_MECHANISM_TYPE mech;
    const EVP_CIPHER* cipher;
    CK_KEY_TYPE type;
    Bytes value;
  };
  for (const Case& c :
       {Case{CKM_AES_KEY_WRAP, EVP_aes_256_wrap(), CKK_AES, aes_value},
        Case{CKM_AES_KEY_WRAP_PAD, EVP_aes_256_wrap_pad(), CKK_GENERIC_SECRET, odd_value}}) {
    Template t;
    t.ulong(CKA_CLASS, CKO_SECRET_KEY).ulong(CKA_KEY_TYPE, c.type).bytes(CKA_VALUE, c.value);
    t.flag(CKA_EXTRACTABLE, true);
    CK_OBJECT_HANDLE target;
    ASSERT_EQ(p11->C_CreateObject(s, t.data(), t.size(), &target), CKR_OK);
    CK_MECHANISM m = {c.mech, nullptr, 0};
    Bytes wrapped(64);
    CK_ULONG n = wrapped.size();
    ASSERT_EQ(p11->C_WrapKey(s, &m, k, target, wrapped.data(), &n), CKR_OK);
    wrapped.resize(n);
    EXPECT_EQ(wrapped, openssl_wrap(c.cipher, kek, c.value));
    Template ut;
    ut.ulong(CKA_KEY_TYPE, c.type).flag(CKA_SENSITIVE, false).flag(CKA_EXTRACTABLE, true);
    CK_OBJECT_HANDLE back;
    ASSERT_EQ(
        p11->C_UnwrapKey(s, &m, k, wrapped.data(), wrapped.size(), ut.data(), ut.size(), &back),
        CKR_OK);
    EXPECT_EQ(attr(s, back, CKA_VALUE), c.value);
    wrapped[3] ^= 1;
    EXPECT_EQ(
        p11->C_UnwrapKey(s, &m, k, wrapped.data(), wrapped.size(), ut.data(), ut.size(), &back),
        CKR_WRAPPED_KEY_INVALID);
  }
}

}  // namespace
}  // namespace tkt
