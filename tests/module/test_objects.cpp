// Objects (5.7): importing an OpenSSL-made key and certificate, attribute
// rules (sensitive, read-only, required), visibility and search.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstdio>

#include "fixture.h"

namespace tkt {
namespace {

class ObjectTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
    s = user_session(slot);
  }
  EVP_PKEY* openssl_key() { return openssl_rsa_key(dir); }
  Template rsa_private(EVP_PKEY* k, bool sensitive) { return rsa_private_template(k, sensitive); }
  CK_OBJECT_HANDLE create(CK_SESSION_HANDLE sess, Template t, CK_RV want = CKR_OK) {
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    EXPECT_EQ(p11->C_CreateObject(sess, t.data(), t.size(), &h), want);
    return h;
  }
  CK_OBJECT_HANDLE import_cert() {
    Bytes der = read_file(dir + "/cert.der");
    if (der.empty()) {
      EVP_PKEY_free(openssl_key());
      der = read_file(dir + "/cert.der");
    }
    const unsigned char* p = der.data();
    X509* x = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
    if (x == nullptr) {
      ADD_FAILURE() << "no certificate";
      return CK_INVALID_HANDLE;
    }
    auto name_der = [](const X509_NAME* n) {
      unsigned char* out = nullptr;
      int len = i2d_X509_NAME(n, &out);
      Bytes b(out, out + len);
      OPENSSL_free(out);
      return b;
    };
    unsigned char* ser = nullptr;
    int slen = i2d_ASN1_INTEGER(X509_get_serialNumber(x), &ser);
    Bytes serial(ser, ser + slen);
    OPENSSL_free(ser);
    Template t;
    t.ulong(CKA_CLASS, CKO_CERTIFICATE).ulong(CKA_CERTIFICATE_TYPE, CKC_X_509);
    t.flag(CKA_TOKEN, true).text(CKA_LABEL, "my cert").bytes(CKA_ID, {0xab, 0xcd});
    t.bytes(CKA_SUBJECT, name_der(X509_get_subject_name(x)));
    t.bytes(CKA_ISSUER, name_der(X509_get_issuer_name(x))).bytes(CKA_SERIAL_NUMBER, serial);
    t.bytes(CKA_VALUE, der);
    X509_free(x);
    return create(s, t);
  }
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
};

TEST_F(ObjectTest, ImportedOpenSSLKeySignsAndStaysSecret) {
  EVP_PKEY* k = openssl_key();
  ASSERT_NE(k, nullptr);
  CK_OBJECT_HANDLE priv = create(s, rsa_private(k, true));
  // Sensitive parts are refused, with CK_UNAVAILABLE_INFORMATION.
  for (CK_ATTRIBUTE_TYPE t : {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1,
                              CKA_EXPONENT_2, CKA_COEFFICIENT}) {
    CK_ULONG len = 0;
    EXPECT_EQ(attr_rv(s, priv, t, &len), CKR_ATTRIBUTE_SENSITIVE) << std::hex << t;
    EXPECT_EQ(len, CK_UNAVAILABLE_INFORMATION);
  }
  EXPECT_EQ(attr(s, priv, CKA_MODULUS), bn(k, OSSL_PKEY_PARAM_RSA_N));
  // Imported, so never "always sensitive" (4.9 footnote 11).
  EXPECT_EQ(attr(s, priv, CKA_ALWAYS_SENSITIVE), Bytes{CK_FALSE});
  EXPECT_EQ(attr(s, priv, CKA_NEVER_EXTRACTABLE), Bytes{CK_FALSE});
  EXPECT_EQ(attr(s, priv, CKA_LOCAL), Bytes{CK_FALSE});
  // A mixed template: good entries filled, the sensitive one flagged.
  Bytes label(16);
  CK_ATTRIBUTE two[] = {{CKA_LABEL, label.data(), label.size()},
                        {CKA_PRIVATE_EXPONENT, nullptr, 0}};
  EXPECT_EQ(p11->C_GetAttributeValue(s, priv, two, 2), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(two[0].ulValueLen, 8u);
  EXPECT_EQ(two[1].ulValueLen, CK_UNAVAILABLE_INFORMATION);
  // The signature verifies with the original key.
  Bytes data = to_bytes("signed by an imported key");
  Bytes sig = sign(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, priv, data);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ASSERT_EQ(EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, k), 1);
  EXPECT_EQ(EVP_DigestVerify(md, sig.data(), sig.size(), data.data(), data.size()), 1);
  EVP_MD_CTX_free(md);
  // CKA_SENSITIVE cannot be switched off, CKA_EXTRACTABLE not on.
  Template off;
  off.flag(CKA_SENSITIVE, false);
  EXPECT_EQ(p11->C_SetAttributeValue(s, priv, off.data(), off.size()), CKR_ATTRIBUTE_READ_ONLY);
  Template on;
  on.flag(CKA_EXTRACTABLE, true);
  EXPECT_EQ(p11->C_SetAttributeValue(s, priv, on.data(), on.size()), CKR_ATTRIBUTE_READ_ONLY);
  EVP_PKEY_free(k);
}

TEST_F(ObjectTest, NonSensitiveExtractableKeyIsReadable) {
  EVP_PKEY* k = openssl_key();
  ASSERT_NE(k, nullptr);
  CK_OBJECT_HANDLE priv = create(s, rsa_private(k, false));
  EXPECT_EQ(attr(s, priv, CKA_PRIVATE_EXPONENT), bn(k, OSSL_PKEY_PARAM_RSA_D));
  Template on;
  on.flag(CKA_SENSITIVE, true);
  ASSERT_EQ(p11->C_SetAttributeValue(s, priv, on.data(), on.size()), CKR_OK);
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, priv, CKA_PRIVATE_EXPONENT, &len), CKR_ATTRIBUTE_SENSITIVE);
  EXPECT_EQ(attr(s, priv, CKA_ALWAYS_SENSITIVE), Bytes{CK_FALSE});
  EVP_PKEY_free(k);
}

TEST_F(ObjectTest, FindByClassLabelIdAndUnknownClass) {
  EVP_PKEY* k = openssl_key();
  ASSERT_NE(k, nullptr);
  create(s, rsa_private(k, true));
  CK_OBJECT_HANDLE cert = import_cert();
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "ec key", &pub, &priv);
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, CKO_CERTIFICATE)),
            std::vector<CK_OBJECT_HANDLE>{cert});
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "ec key")).size(), 2u);
  EXPECT_EQ(find(s, Template().bytes(CKA_ID, {0xab, 0xcd})).size(), 2u);
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY)).size(), 2u);
  // NSS searches for its vendor trust class and PKCS#11 3.0's CKO_TRUST.
  EXPECT_TRUE(find(s, Template().ulong(CKA_CLASS, 0xCE534353UL)).empty());
  EXPECT_TRUE(find(s, Template().ulong(CKA_CLASS, 0x0BUL)).empty());
  // Searching by a sensitive value finds nothing.
  EXPECT_TRUE(
      find(s, Template().bytes(CKA_PRIVATE_EXPONENT, bn(k, OSSL_PKEY_PARAM_RSA_D))).empty());
  // Find rules: one search at a time, final without init is an error.
  Template any;
  ASSERT_EQ(p11->C_FindObjectsInit(s, any.data(), 0), CKR_OK);
  EXPECT_EQ(p11->C_FindObjectsInit(s, any.data(), 0), CKR_OPERATION_ACTIVE);
  ASSERT_EQ(p11->C_FindObjectsFinal(s), CKR_OK);
  EXPECT_EQ(p11->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
  EVP_PKEY_free(k);
}

TEST_F(ObjectTest, PublicObjectsWithoutLoginAndProfile) {
  CK_OBJECT_HANDLE cert = import_cert();
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa", &pub, &priv);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  CK_SESSION_HANDLE ro = open(slot, false);
  EXPECT_EQ(find(ro, Template().ulong(CKA_CLASS, CKO_CERTIFICATE)),
            std::vector<CK_OBJECT_HANDLE>{cert});
  EXPECT_EQ(find(ro, Template().ulong(CKA_CLASS, CKO_PUBLIC_KEY)),
            std::vector<CK_OBJECT_HANDLE>{pub});
  EXPECT_TRUE(find(ro, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY)).empty());
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(ro, priv, CKA_LABEL, &len), CKR_USER_NOT_LOGGED_IN);
  EXPECT_FALSE(attr(ro, cert, CKA_VALUE).empty());
  // The profile that tells NSS certificates are public.
  auto prof = find(ro, Template().ulong(CKA_CLASS, 9 /* CKO_PROFILE */));
  ASSERT_EQ(prof.size(), 1u);
  CK_ULONG id = 0;
  CK_ATTRIBUTE a = {0x601 /* CKA_PROFILE_ID */, &id, sizeof id};
  ASSERT_EQ(p11->C_GetAttributeValue(ro, prof[0], &a, 1), CKR_OK);
  EXPECT_EQ(id, 4u /* CKP_PUBLIC_CERTIFICATES_TOKEN */);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_EQ(p11->C_DestroyObject(s, prof[0]), CKR_ACTION_PROHIBITED);
}

TEST_F(ObjectTest, WhoMayCreateWhat) {
  Template data;
  data.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).text(CKA_LABEL, "d").text(CKA_VALUE, "v");
  CK_SESSION_HANDLE ro = open(slot, false);
  create(ro, data, CKR_SESSION_READ_ONLY);
  Template session_data = data;
  session_data.attrs[1].ulValueLen = 1;
  session_data.store[1] = {CK_FALSE};
  create(ro, session_data);  // session objects are fine in R/O sessions
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  Template priv = data;
  priv.flag(CKA_PRIVATE, true);
  create(s, priv, CKR_USER_NOT_LOGGED_IN);
  create(s, data);  // a public token object needs no login
  create(s, Template().flag(CKA_TOKEN, false), CKR_TEMPLATE_INCOMPLETE);
  Template bad_attr = data;
  bad_attr.ulong(CKA_MODULUS_BITS, 5);
  create(s, bad_attr, CKR_ATTRIBUTE_TYPE_INVALID);
  Template local;
  local.ulong(CKA_CLASS, CKO_PUBLIC_KEY).ulong(CKA_KEY_TYPE, CKK_EC).bytes(CKA_EC_PARAMS, kP256);
  local.flag(CKA_LOCAL, true);
  create(s, local, CKR_ATTRIBUTE_READ_ONLY);
  Template no_exponent;
  no_exponent.ulong(CKA_CLASS, CKO_PUBLIC_KEY).ulong(CKA_KEY_TYPE, CKK_RSA);
  no_exponent.bytes(CKA_MODULUS, Bytes(256, 0xc5));
  create(s, no_exponent, CKR_TEMPLATE_INCOMPLETE);
  Template bad_bool;
  bad_bool.ulong(CKA_CLASS, CKO_DATA).ulong(CKA_TOKEN, 1);
  create(s, bad_bool, CKR_ATTRIBUTE_VALUE_INVALID);
  CK_OBJECT_HANDLE h;
  EXPECT_EQ(p11->C_CreateObject(s, nullptr, 1, &h), CKR_ARGUMENTS_BAD);
}

TEST_F(ObjectTest, SessionObjectsEndWithTheirSession) {
  CK_SESSION_HANDLE other = open(slot);
  Template data;
  data.ulong(CKA_CLASS, CKO_DATA).text(CKA_LABEL, "temp");
  CK_OBJECT_HANDLE h = create(other, data);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "temp")).size(), 1u);
  ASSERT_EQ(p11->C_CloseSession(other), CKR_OK);
  EXPECT_TRUE(find(s, Template().text(CKA_LABEL, "temp")).empty());
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, h, CKA_LABEL, &len), CKR_OBJECT_HANDLE_INVALID);
}

TEST_F(ObjectTest, SetDestroyAndBufferRules) {
  CK_OBJECT_HANDLE cert = import_cert();
  Template rename;
  rename.text(CKA_LABEL, "renamed");
  ASSERT_EQ(p11->C_SetAttributeValue(s, cert, rename.data(), rename.size()), CKR_OK);
  EXPECT_EQ(attr(s, cert, CKA_LABEL), to_bytes("renamed"));
  Template value;
  value.text(CKA_VALUE, "x");
  EXPECT_EQ(p11->C_SetAttributeValue(s, cert, value.data(), value.size()), CKR_ATTRIBUTE_READ_ONLY);
  Bytes small(2);
  CK_ATTRIBUTE a = {CKA_LABEL, small.data(), small.size()};
  EXPECT_EQ(p11->C_GetAttributeValue(s, cert, &a, 1), CKR_BUFFER_TOO_SMALL);
  EXPECT_EQ(a.ulValueLen, CK_UNAVAILABLE_INFORMATION);
  CK_ATTRIBUTE bogus = {CKA_MODULUS, nullptr, 0};
  EXPECT_EQ(p11->C_GetAttributeValue(s, cert, &bogus, 1), CKR_ATTRIBUTE_TYPE_INVALID);
  ASSERT_EQ(p11->C_DestroyObject(s, cert), CKR_OK);
  EXPECT_EQ(p11->C_DestroyObject(s, cert), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_TRUE(find(s, Template().ulong(CKA_CLASS, CKO_CERTIFICATE)).empty());
}

TEST_F(ObjectTest, CopyObject) {
  Template data;
  data.ulong(CKA_CLASS, CKO_DATA).text(CKA_LABEL, "original").text(CKA_VALUE, "payload");
  CK_OBJECT_HANDLE h = create(s, data);
  Template to_token;
  to_token.flag(CKA_TOKEN, true).text(CKA_LABEL, "copy").flag(CKA_MODIFIABLE, false);
  CK_OBJECT_HANDLE c;
  ASSERT_EQ(p11->C_CopyObject(s, h, to_token.data(), to_token.size(), &c), CKR_OK);
  EXPECT_EQ(attr(s, c, CKA_VALUE), to_bytes("payload"));
  EXPECT_EQ(attr(s, c, CKA_TOKEN), Bytes{CK_TRUE});
  Template back;
  back.flag(CKA_MODIFIABLE, true);
  CK_OBJECT_HANDLE c2;
  EXPECT_EQ(p11->C_CopyObject(s, c, back.data(), back.size(), &c2), CKR_ATTRIBUTE_READ_ONLY);
  // A private key copy stays sensitive; the profile may not be copied.
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "k", &pub, &priv);
  Template none;
  ASSERT_EQ(p11->C_CopyObject(s, priv, none.data(), 0, &c2), CKR_OK);
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, c2, CKA_VALUE, &len), CKR_ATTRIBUTE_SENSITIVE);
  Template pub_copy;
  pub_copy.flag(CKA_PRIVATE, false);
  EXPECT_EQ(p11->C_CopyObject(s, priv, pub_copy.data(), pub_copy.size(), &c2),
            CKR_ATTRIBUTE_READ_ONLY);
  auto prof = find(s, Template().ulong(CKA_CLASS, 9));
  ASSERT_EQ(prof.size(), 1u);
  EXPECT_EQ(p11->C_CopyObject(s, prof[0], none.data(), 0, &c2), CKR_ACTION_PROHIBITED);
}

}  // namespace
}  // namespace tkt
