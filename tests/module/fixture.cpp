#include "fixture.h"

#include <dlfcn.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/pem.h>
#include <stdlib.h>

#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace tkt {

const Bytes kP256 = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
const Bytes kP384 = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
const Bytes kP521 = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23};

CK_FUNCTION_LIST* module() {
  static CK_FUNCTION_LIST* fl = [] {
    void* h = dlopen(TOKENKIT_MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
    if (h == nullptr) throw std::runtime_error(dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList"));
    CK_FUNCTION_LIST* out = nullptr;
    if (get == nullptr || get(&out) != CKR_OK) throw std::runtime_error("C_GetFunctionList");
    return out;
  }();
  return fl;
}

Template& Template::add(CK_ATTRIBUTE_TYPE t, const void* p, size_t n) {
  auto* b = static_cast<const unsigned char*>(p);
  store.emplace_back(b, b + n);
  attrs.push_back({t, nullptr, n});
  return *this;
}

CK_ATTRIBUTE* Template::data() {
  for (size_t i = 0; i < attrs.size(); ++i) attrs[i].pValue = store[i].data();
  return attrs.data();
}

Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

std::string run(const std::string& cmd, int* status) {
  std::string out;
  FILE* f = popen((cmd + " 2>&1").c_str(), "r");
  if (!f) return out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), f)) > 0) out.append(buf.data(), n);
  int rc = pclose(f);
  if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return out;
}

Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

EVP_PKEY* openssl_rsa_key(const std::string& dir) {
  std::string key = dir + "/key.pem", cert = dir + "/cert.der";
  int rc = 0;
  run("openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out " + key, &rc);
  EXPECT_EQ(rc, 0);
  run("openssl req -x509 -new -key " + key + " -subj /CN=tokenkit-test -days 2 -outform DER -out " +
          cert,
      &rc);
  EXPECT_EQ(rc, 0);
  FILE* f = fopen(key.c_str(), "r");
  EVP_PKEY* k = f ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : nullptr;
  if (f) fclose(f);
  return k;
}

Bytes bn(EVP_PKEY* k, const char* name) {
  BIGNUM* b = nullptr;
  EVP_PKEY_get_bn_param(k, name, &b);
  Bytes out(static_cast<size_t>(BN_num_bytes(b)));
  BN_bn2bin(b, out.data());
  BN_free(b);
  return out;
}

Template rsa_private_template(EVP_PKEY* k, bool sensitive, const std::string& label) {
  Template t;
  t.ulong(CKA_CLASS, CKO_PRIVATE_KEY).ulong(CKA_KEY_TYPE, CKK_RSA).flag(CKA_TOKEN, true);
  t.flag(CKA_SENSITIVE, sensitive).flag(CKA_EXTRACTABLE, !sensitive);
  t.text(CKA_LABEL, label).bytes(CKA_ID, {0xab, 0xcd});
  t.bytes(CKA_MODULUS, bn(k, OSSL_PKEY_PARAM_RSA_N));
  t.bytes(CKA_PUBLIC_EXPONENT, bn(k, OSSL_PKEY_PARAM_RSA_E));
  t.bytes(CKA_PRIVATE_EXPONENT, bn(k, OSSL_PKEY_PARAM_RSA_D));
  t.bytes(CKA_PRIME_1, bn(k, OSSL_PKEY_PARAM_RSA_FACTOR1));
  t.bytes(CKA_PRIME_2, bn(k, OSSL_PKEY_PARAM_RSA_FACTOR2));
  t.bytes(CKA_EXPONENT_1, bn(k, OSSL_PKEY_PARAM_RSA_EXPONENT1));
  t.bytes(CKA_EXPONENT_2, bn(k, OSSL_PKEY_PARAM_RSA_EXPONENT2));
  t.bytes(CKA_COEFFICIENT, bn(k, OSSL_PKEY_PARAM_RSA_COEFFICIENT1));
  return t;
}

void TokenTest::SetUp() {
  char tmpl[] = "/tmp/tokenkit-module-test-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  dir = tmpl;
  setenv("TOKENKIT_PKCS11_DIR", (dir + "/tokens").c_str(), 1);
  setenv("TOKENKIT_KDF_ITERATIONS", "1000", 1);
  p11 = module();
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
}

void TokenTest::TearDown() {
  if (p11) p11->C_Finalize(nullptr);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

void TokenTest::reinitialize() {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
}

std::string TokenTest::db_path(CK_SLOT_ID slot) const {
  return dir + "/tokens/" + std::to_string(slot) + ".db";
}

CK_SLOT_ID TokenTest::free_slot() {
  CK_ULONG n = 0;
  EXPECT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_OK);
  std::vector<CK_SLOT_ID> slots(n);
  EXPECT_EQ(p11->C_GetSlotList(CK_TRUE, slots.data(), &n), CKR_OK);
  for (CK_SLOT_ID s : slots) {
    CK_TOKEN_INFO info;
    if (p11->C_GetTokenInfo(s, &info) == CKR_OK && !(info.flags & CKF_TOKEN_INITIALIZED)) return s;
  }
  ADD_FAILURE() << "no free slot";
  return 0;
}

CK_SLOT_ID TokenTest::make_token(const std::string& label) {
  CK_SLOT_ID slot = free_slot();
  CK_UTF8CHAR lab[32];
  std::memset(lab, ' ', sizeof lab);
  std::memcpy(lab, label.data(), std::min(label.size(), sizeof lab));
  std::string so = kSoPin;
  EXPECT_EQ(p11->C_InitToken(slot, reinterpret_cast<CK_UTF8CHAR*>(so.data()), so.size(), lab),
            CKR_OK);
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(login(s, CKU_SO, kSoPin), CKR_OK);
  std::string pin = kUserPin;
  EXPECT_EQ(p11->C_InitPIN(s, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()), CKR_OK);
  EXPECT_EQ(p11->C_CloseSession(s), CKR_OK);
  return slot;
}

CK_SESSION_HANDLE TokenTest::open(CK_SLOT_ID slot, bool rw) {
  CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
  CK_FLAGS f = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
  EXPECT_EQ(p11->C_OpenSession(slot, f, nullptr, nullptr, &s), CKR_OK);
  return s;
}

CK_RV TokenTest::login(CK_SESSION_HANDLE s, CK_USER_TYPE who, const std::string& pin) {
  std::string p = pin;
  return p11->C_Login(s, who, reinterpret_cast<CK_UTF8CHAR*>(p.data()), p.size());
}

CK_SESSION_HANDLE TokenTest::user_session(CK_SLOT_ID slot) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  return s;
}

std::vector<CK_OBJECT_HANDLE> TokenTest::find(CK_SESSION_HANDLE s, Template t) {
  std::vector<CK_OBJECT_HANDLE> out;
  EXPECT_EQ(p11->C_FindObjectsInit(s, t.data(), t.size()), CKR_OK);
  CK_OBJECT_HANDLE h[4];
  CK_ULONG n = 0;
  while (p11->C_FindObjects(s, h, 4, &n) == CKR_OK && n > 0) out.insert(out.end(), h, h + n);
  EXPECT_EQ(p11->C_FindObjectsFinal(s), CKR_OK);
  return out;
}

CK_RV TokenTest::attr_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t,
                         CK_ULONG* len) {
  CK_ATTRIBUTE a = {t, nullptr, 0};
  CK_RV rv = p11->C_GetAttributeValue(s, o, &a, 1);
  *len = a.ulValueLen;
  return rv;
}

Bytes TokenTest::attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t) {
  CK_ATTRIBUTE a = {t, nullptr, 0};
  EXPECT_EQ(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK) << "attribute 0x" << std::hex << t;
  if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION) return {};
  Bytes v(a.ulValueLen);
  a.pValue = v.data();
  EXPECT_EQ(p11->C_GetAttributeValue(s, o, &a, 1), CKR_OK);
  return v;
}

void TokenTest::gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const std::string& label,
                        CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv, bool token) {
  CK_MECHANISM m = {CKM_RSA_PKCS_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.ulong(CKA_MODULUS_BITS, bits).flag(CKA_TOKEN, token).text(CKA_LABEL, label);
  kt.flag(CKA_TOKEN, token).text(CKA_LABEL, label).flag(CKA_SIGN, true).flag(CKA_DECRYPT, true);
  ASSERT_EQ(p11->C_GenerateKeyPair(s, &m, pt.data(), pt.size(), kt.data(), kt.size(), pub, priv),
            CKR_OK);
}

void TokenTest::gen_ec(CK_SESSION_HANDLE s, const Bytes& params, const std::string& label,
                       CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv) {
  CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, params).flag(CKA_TOKEN, true).text(CKA_LABEL, label);
  kt.flag(CKA_TOKEN, true).text(CKA_LABEL, label);
  ASSERT_EQ(p11->C_GenerateKeyPair(s, &m, pt.data(), pt.size(), kt.data(), kt.size(), pub, priv),
            CKR_OK);
}

Bytes TokenTest::sign(CK_SESSION_HANDLE s, CK_MECHANISM m, CK_OBJECT_HANDLE key,
                      const Bytes& data) {
  EXPECT_EQ(p11->C_SignInit(s, &m, key), CKR_OK);
  CK_ULONG n = 0;
  Bytes in = data;
  EXPECT_EQ(p11->C_Sign(s, in.data(), in.size(), nullptr, &n), CKR_OK);
  Bytes sig(n);
  EXPECT_EQ(p11->C_Sign(s, in.data(), in.size(), sig.data(), &n), CKR_OK);
  sig.resize(n);
  return sig;
}

CK_RV TokenTest::verify(CK_SESSION_HANDLE s, CK_MECHANISM m, CK_OBJECT_HANDLE key,
                        const Bytes& data, const Bytes& sig) {
  CK_RV rv = p11->C_VerifyInit(s, &m, key);
  if (rv != CKR_OK) return rv;
  Bytes in = data, sg = sig;
  return p11->C_Verify(s, in.data(), in.size(), sg.data(), sg.size());
}

}  // namespace tkt
