// PINs: login rules (5.6), the failure counter kept in the store, lock and
// unlock, C_SetPIN.
#include "fixture.h"

namespace tkt {
namespace {

class LoginTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
  }
  CK_FLAGS flags() {
    CK_TOKEN_INFO info;
    EXPECT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_OK);
    return info.flags;
  }
  CK_RV set_pin(CK_SESSION_HANDLE s, std::string old_pin, std::string new_pin) {
    return p11->C_SetPIN(s, reinterpret_cast<CK_UTF8CHAR*>(old_pin.data()), old_pin.size(),
                         reinterpret_cast<CK_UTF8CHAR*>(new_pin.data()), new_pin.size());
  }
  CK_SLOT_ID slot = 0;
};

TEST_F(LoginTest, RightAndWrongPin) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(login(s, CKU_USER, "not the pin"), CKR_PIN_INCORRECT);
  EXPECT_TRUE(flags() & CKF_USER_PIN_COUNT_LOW);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_FALSE(flags() & CKF_USER_PIN_COUNT_LOW);  // reset by success
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_USER_ALREADY_LOGGED_IN);
  EXPECT_EQ(login(s, CKU_SO, kSoPin), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(p11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(p11->C_Login(s, CKU_USER, nullptr, 4), CKR_ARGUMENTS_BAD);
  EXPECT_EQ(login(s, 42, kUserPin), CKR_USER_TYPE_INVALID);
}

TEST_F(LoginTest, FailureCounterSurvivesReinitialize) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(login(s, CKU_USER, "bad-pin-1"), CKR_PIN_INCORRECT);
  reinitialize();
  EXPECT_TRUE(flags() & CKF_USER_PIN_COUNT_LOW);
  s = open(slot);
  for (int i = 2; i <= 9; ++i) EXPECT_EQ(login(s, CKU_USER, "bad-pin"), CKR_PIN_INCORRECT);
  EXPECT_TRUE(flags() & CKF_USER_PIN_FINAL_TRY);
  EXPECT_EQ(login(s, CKU_USER, "bad-pin"), CKR_PIN_INCORRECT);
  reinitialize();
  EXPECT_TRUE(flags() & CKF_USER_PIN_LOCKED);
  s = open(slot);
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_PIN_LOCKED);
  // The SO unlocks by setting a new user PIN.
  ASSERT_EQ(login(s, CKU_SO, kSoPin), CKR_OK);
  std::string pin = "fresh-pin";
  ASSERT_EQ(p11->C_InitPIN(s, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_FALSE(flags() & CKF_USER_PIN_LOCKED);
  EXPECT_EQ(login(s, CKU_USER, pin), CKR_OK);
}

TEST_F(LoginTest, KeysSurviveInitPinBySo) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "kept", &pub, &priv);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  ASSERT_EQ(login(s, CKU_SO, kSoPin), CKR_OK);
  std::string pin = "another-pin";
  ASSERT_EQ(p11->C_InitPIN(s, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  ASSERT_EQ(login(s, CKU_USER, pin), CKR_OK);
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY)).size(), 1u);
  Bytes sig = sign(s, {CKM_ECDSA_SHA256, nullptr, 0}, priv, to_bytes("x"));
  EXPECT_EQ(verify(s, {CKM_ECDSA_SHA256, nullptr, 0}, pub, to_bytes("x"), sig), CKR_OK);
}

TEST_F(LoginTest, SoRules) {
  CK_SESSION_HANDLE ro = open(slot, false);
  CK_SESSION_HANDLE rw = open(slot, true);
  EXPECT_EQ(login(rw, CKU_SO, kSoPin), CKR_SESSION_READ_ONLY_EXISTS);
  ASSERT_EQ(p11->C_CloseSession(ro), CKR_OK);
  ASSERT_EQ(login(rw, CKU_SO, kSoPin), CKR_OK);
  CK_SESSION_HANDLE s;
  EXPECT_EQ(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s),
            CKR_SESSION_READ_WRITE_SO_EXISTS);
  std::string pin = "12";
  EXPECT_EQ(p11->C_InitPIN(rw, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()),
            CKR_PIN_LEN_RANGE);
  ASSERT_EQ(p11->C_Logout(rw), CKR_OK);
  EXPECT_EQ(p11->C_InitPIN(rw, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()),
            CKR_USER_NOT_LOGGED_IN);
}

TEST_F(LoginTest, SetPin) {
  CK_SESSION_HANDLE s = user_session(slot);
  EXPECT_EQ(set_pin(s, "wrong-old", "new-pin-1"), CKR_PIN_INCORRECT);
  ASSERT_EQ(set_pin(s, kUserPin, "new-pin-1"), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_PIN_INCORRECT);
  EXPECT_EQ(login(s, CKU_USER, "new-pin-1"), CKR_OK);
  CK_SESSION_HANDLE ro = open(slot, false);
  EXPECT_EQ(set_pin(ro, "new-pin-1", "new-pin-2"), CKR_SESSION_READ_ONLY);
}

TEST_F(LoginTest, SoPinCounterAndLock) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(p11->C_Login(s, CKU_SO, nullptr, 0), CKR_ARGUMENTS_BAD);  // not counted
  EXPECT_FALSE(flags() & CKF_SO_PIN_COUNT_LOW);
  for (int i = 1; i <= 10; ++i) EXPECT_EQ(login(s, CKU_SO, "wrong so pin"), CKR_PIN_INCORRECT);
  EXPECT_TRUE(flags() & CKF_SO_PIN_LOCKED);
  EXPECT_EQ(login(s, CKU_SO, kSoPin), CKR_PIN_LOCKED);
  // The user is not affected.
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
}

TEST_F(LoginTest, SoChangesOwnPin) {
  CK_SESSION_HANDLE s = open(slot);
  ASSERT_EQ(login(s, CKU_SO, kSoPin), CKR_OK);
  ASSERT_EQ(set_pin(s, kSoPin, "new-so-pin"), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(login(s, CKU_SO, kSoPin), CKR_PIN_INCORRECT);
  EXPECT_EQ(login(s, CKU_SO, "new-so-pin"), CKR_OK);
}

// 4.9 CKA_ALWAYS_AUTHENTICATE: each C_SignInit/C_DecryptInit with such a key
// needs its own C_Login(CKU_CONTEXT_SPECIFIC) before the key is used (5.6).
TEST_F(LoginTest, AlwaysAuthenticateKeyNeedsContextLoginPerOperation) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(login(s, CKU_CONTEXT_SPECIFIC, kUserPin), CKR_USER_NOT_LOGGED_IN);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, kP256).flag(CKA_TOKEN, true).flag(CKA_VERIFY, true);
  kt.flag(CKA_TOKEN, true).flag(CKA_SIGN, true).flag(CKA_ALWAYS_AUTHENTICATE, true);
  CK_OBJECT_HANDLE pub = 0, priv = 0, plain_pub = 0, plain = 0;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(s, &gen, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
      CKR_OK);
  gen_ec(s, kP256, "plain", &plain_pub, &plain);
  EXPECT_EQ(attr(s, priv, CKA_ALWAYS_AUTHENTICATE), Bytes{CK_TRUE});
  CK_MECHANISM ecdsa = {CKM_ECDSA, nullptr, 0};
  Bytes hash(32, 0x42), sig(64);
  CK_ULONG len = sig.size();

  // No context login: the key is not used and the operation ends.
  EXPECT_EQ(login(s, CKU_CONTEXT_SPECIFIC, kUserPin), CKR_OPERATION_NOT_INITIALIZED);
  ASSERT_EQ(p11->C_SignInit(s, &ecdsa, priv), CKR_OK);
  EXPECT_EQ(p11->C_Sign(s, hash.data(), hash.size(), sig.data(), &len), CKR_USER_NOT_LOGGED_IN);
  EXPECT_EQ(p11->C_Sign(s, hash.data(), hash.size(), sig.data(), &len),
            CKR_OPERATION_NOT_INITIALIZED);

  // A wrong PIN is counted and leaves the operation waiting; the right one
  // lets this one operation through.
  ASSERT_EQ(p11->C_SignInit(s, &ecdsa, priv), CKR_OK);
  EXPECT_EQ(login(s, CKU_CONTEXT_SPECIFIC, "wrong-pin"), CKR_PIN_INCORRECT);
  EXPECT_TRUE(flags() & CKF_USER_PIN_COUNT_LOW);
  ASSERT_EQ(login(s, CKU_CONTEXT_SPECIFIC, kUserPin), CKR_OK);
  EXPECT_FALSE(flags() & CKF_USER_PIN_COUNT_LOW);
  len = sig.size();
  ASSERT_EQ(p11->C_Sign(s, hash.data(), hash.size(), sig.data(), &len), CKR_OK);
  sig.resize(len);
  EXPECT_EQ(verify(s, ecdsa, pub, hash, sig), CKR_OK);

  // The next operation asks again, multi-part included.
  CK_MECHANISM ecdsa_sha256 = {CKM_ECDSA_SHA256, nullptr, 0};
  ASSERT_EQ(p11->C_SignInit(s, &ecdsa_sha256, priv), CKR_OK);
  EXPECT_EQ(p11->C_SignUpdate(s, hash.data(), hash.size()), CKR_USER_NOT_LOGGED_IN);
  ASSERT_EQ(p11->C_SignInit(s, &ecdsa_sha256, priv), CKR_OK);
  ASSERT_EQ(login(s, CKU_CONTEXT_SPECIFIC, kUserPin), CKR_OK);
  ASSERT_EQ(p11->C_SignUpdate(s, hash.data(), hash.size()), CKR_OK);
  len = 64;
  sig.resize(64);
  EXPECT_EQ(p11->C_SignFinal(s, sig.data(), &len), CKR_OK);

  // A key without the attribute needs (and takes) no context login; the
  // attribute cannot be switched off afterwards.
  EXPECT_FALSE(sign(s, ecdsa, plain, hash).empty());
  ASSERT_EQ(p11->C_SignInit(s, &ecdsa, plain), CKR_OK);
  EXPECT_EQ(login(s, CKU_CONTEXT_SPECIFIC, kUserPin), CKR_OPERATION_NOT_INITIALIZED);
  len = 64;
  EXPECT_EQ(p11->C_Sign(s, hash.data(), hash.size(), sig.data(), &len), CKR_OK);
  Template off;
  off.flag(CKA_ALWAYS_AUTHENTICATE, false);
  EXPECT_EQ(p11->C_SetAttributeValue(s, priv, off.data(), off.size()), CKR_ATTRIBUTE_READ_ONLY);
}

}  // namespace
}  // namespace tkt
