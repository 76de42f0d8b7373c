// Garbage in, a CK_RV out: random templates and mechanism parameters must
// never crash the module (run it under -DTOKENKIT_SANITIZE=address,undefined).
#include <random>

#include "fixture.h"

namespace tkt {
namespace {

class RobustnessTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token();
    s = user_session(slot);
  }
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
};

const CK_ULONG kClasses[] = {
    CKO_DATA, CKO_CERTIFICATE, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY, 9,
    0x0B,     0xCE534353UL,    12345};
const CK_ULONG kKeyTypes[] = {CKK_RSA, CKK_EC, CKK_AES, CKK_GENERIC_SECRET, 0x40, 99};
const CK_ATTRIBUTE_TYPE kTypes[] = {CKA_TOKEN,
                                    CKA_PRIVATE,
                                    CKA_LABEL,
                                    CKA_ID,
                                    CKA_VALUE,
                                    CKA_MODULUS,
                                    CKA_PUBLIC_EXPONENT,
                                    CKA_PRIVATE_EXPONENT,
                                    CKA_PRIME_1,
                                    CKA_EC_PARAMS,
                                    CKA_EC_POINT,
                                    CKA_VALUE_LEN,
                                    CKA_SENSITIVE,
                                    CKA_EXTRACTABLE,
                                    CKA_SIGN,
                                    CKA_SUBJECT,
                                    CKA_CERTIFICATE_TYPE,
                                    CKA_MODULUS_BITS,
                                    CKA_ALLOWED_MECHANISMS,
                                    CKA_LOCAL,
                                    0x80000001UL,
                                    0x7777UL};

TEST_F(RobustnessTest, RandomTemplatesNeverCrash) {
  std::mt19937 rng(4711);
  auto pick = [&](auto& arr) { return arr[rng() % std::size(arr)]; };
  int created = 0;
  for (int round = 0; round < 400; ++round) {
    Template t;
    t.ulong(CKA_CLASS, pick(kClasses));
    if (rng() % 4) t.ulong(CKA_KEY_TYPE, pick(kKeyTypes));
    if (rng() % 3 == 0) t.ulong(CKA_CERTIFICATE_TYPE, rng() % 3);
    int n = static_cast<int>(rng() % 8);
    for (int i = 0; i < n; ++i) {
      Bytes v(rng() % (rng() % 4 == 0 ? 600 : 12));
      for (auto& b : v) b = static_cast<unsigned char>(rng());
      // Sometimes a real curve or a plausible size, to get deeper.
      if (rng() % 5 == 0) v = kP256;
      t.bytes(pick(kTypes), v);
    }
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = p11->C_CreateObject(s, t.data(), t.size(), &h);
    if (rv != CKR_OK) continue;
    ++created;
    for (CK_ATTRIBUTE_TYPE type : kTypes) {
      CK_ULONG len = 0;
      attr_rv(s, h, type, &len);
    }
    CK_MECHANISM m = {CKM_ECDSA, nullptr, 0};
    if (p11->C_SignInit(s, &m, h) == CKR_OK) {
      Bytes d(32, 1), sig(200);
      CK_ULONG sl = sig.size();
      p11->C_Sign(s, d.data(), d.size(), sig.data(), &sl);
    }
    EXPECT_EQ(p11->C_DestroyObject(s, h), CKR_OK);
  }
  EXPECT_GT(created, 0);
}

TEST_F(RobustnessTest, RandomMechanismParametersNeverCrash) {
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "r", &pub, &priv);
  const CK_MECHANISM_TYPE mechs[] = {CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_OAEP,
                                     CKM_RSA_PKCS,     CKM_RSA_X_509,           CKM_AES_CBC};
  std::mt19937 rng(42);
  for (int round = 0; round < 300; ++round) {
    CK_MECHANISM_TYPE t = mechs[rng() % std::size(mechs)];
    // Random words; the one pointer field used (OAEP source data) points into
    // the blob or is null: a wild pointer would be the caller's bug.
    std::vector<CK_ULONG> words(8);
    Bytes blob(64);
    for (auto& w : words) w = rng() % 3 == 0 ? rng() % 70 : rng();
    for (auto& b : blob) b = static_cast<unsigned char>(rng());
    if (t == CKM_RSA_PKCS_OAEP) {
      auto* p = reinterpret_cast<CK_RSA_PKCS_OAEP_PARAMS*>(words.data());
      p->pSourceData = rng() % 2 ? blob.data() : nullptr;
      p->ulSourceDataLen %= 80;
      if (!p->pSourceData && rng() % 2) p->ulSourceDataLen = 0;
    }
    CK_ULONG len = rng() % 2 ? rng() % 70 : sizeof(CK_RSA_PKCS_PSS_PARAMS);
    if (t == CKM_RSA_PKCS_OAEP && rng() % 2) len = sizeof(CK_RSA_PKCS_OAEP_PARAMS);
    CK_MECHANISM m = {t, rng() % 4 ? static_cast<void*>(words.data()) : nullptr, len};
    Bytes data(32, 7), out(512);
    CK_ULONG n = out.size();
    if (p11->C_SignInit(s, &m, priv) == CKR_OK) p11->C_Sign(s, data.data(), 32, out.data(), &n);
    n = out.size();
    if (p11->C_EncryptInit(s, &m, pub) == CKR_OK)
      p11->C_Encrypt(s, data.data(), 16, out.data(), &n);
  }
  SUCCEED();
}

}  // namespace
}  // namespace tkt
