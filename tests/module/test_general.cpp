// Library, slot and session basics (PKCS#11 v2.40 5.4-5.6) and the 3.0
// interface calls NSS makes first.
#include <sys/wait.h>
#include <unistd.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <sstream>

#include "fixture.h"
// PKCS#11 3.0's CK_INTERFACE, which the 2.40 header lacks: the module's own
// type (pkcs11-module/src/p11.h), so that calls through these pointers have
// the callee's exact type (UBSan checks it).
#include "tokenkit/pkcs11-vendor.h"

using tk_ck_interface = TOKENKIT_INTERFACE;

namespace tkt {
namespace {

using GeneralTest = TokenTest;

TEST_F(GeneralTest, InterfaceForNss) {
  void* h = dlopen(TOKENKIT_MODULE_PATH, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(h, nullptr);
  using GetInterface = CK_RV (*)(CK_UTF8CHAR*, CK_VERSION*, tk_ck_interface**, CK_FLAGS);
  using GetInterfaceList = CK_RV (*)(tk_ck_interface*, CK_ULONG*);
  auto get = reinterpret_cast<GetInterface>(dlsym(h, "C_GetInterface"));
  auto list = reinterpret_cast<GetInterfaceList>(dlsym(h, "C_GetInterfaceList"));
  ASSERT_NE(get, nullptr);
  ASSERT_NE(list, nullptr);
  CK_UTF8CHAR name[] = "PKCS 11";
  tk_ck_interface* iface = nullptr;
  // NSS asks for a fork-safe interface first; we do not claim one.
  constexpr CK_FLAGS kForkSafe = 1;
  EXPECT_EQ(get(name, nullptr, &iface, kForkSafe), CKR_ARGUMENTS_BAD);
  ASSERT_EQ(get(name, nullptr, &iface, 0), CKR_OK);
  auto* fl = static_cast<CK_FUNCTION_LIST*>(iface->pFunctionList);
  EXPECT_EQ(fl->version.major, 2);
  EXPECT_EQ(fl->version.minor, 40);
  EXPECT_EQ(fl, p11);
  CK_ULONG n = 0;
  ASSERT_EQ(list(nullptr, &n), CKR_OK);
  EXPECT_EQ(n, 1u);
  CK_UTF8CHAR other[] = "Vendor X";
  EXPECT_EQ(get(other, nullptr, &iface, 0), CKR_ARGUMENTS_BAD);
  dlclose(h);
}

TEST_F(GeneralTest, InitializeAndFinalizeRules) {
  EXPECT_EQ(p11->C_Initialize(nullptr), CKR_CRYPTOKI_ALREADY_INITIALIZED);
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_ULONG n = 0;
  EXPECT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
  EXPECT_EQ(p11->C_Finalize(nullptr), CKR_CRYPTOKI_NOT_INITIALIZED);
  CK_C_INITIALIZE_ARGS args = {};
  args.pReserved = &n;
  EXPECT_EQ(p11->C_Initialize(&args), CKR_ARGUMENTS_BAD);
  // What NSS passes.
  CK_C_INITIALIZE_ARGS nss = {};
  nss.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
  ASSERT_EQ(p11->C_Initialize(&nss), CKR_OK);
  CK_INFO info;
  ASSERT_EQ(p11->C_GetInfo(&info), CKR_OK);
  EXPECT_EQ(info.cryptokiVersion.major, 2);
  EXPECT_EQ(info.cryptokiVersion.minor, 40);
  EXPECT_EQ(p11->C_GetInfo(nullptr), CKR_ARGUMENTS_BAD);
}

TEST_F(GeneralTest, FreshDirectoryHasOneFreeSlot) {
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_OK);
  ASSERT_EQ(n, 1u);
  CK_SLOT_ID slot = 99;
  CK_ULONG small = 0;
  EXPECT_EQ(p11->C_GetSlotList(CK_TRUE, &slot, &small), CKR_BUFFER_TOO_SMALL);
  ASSERT_EQ(p11->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
  CK_TOKEN_INFO info;
  ASSERT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_OK);
  EXPECT_FALSE(info.flags & CKF_TOKEN_INITIALIZED);
  CK_SESSION_HANDLE s;
  EXPECT_EQ(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s),
            CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(p11->C_GetTokenInfo(slot + 100, &info), CKR_SLOT_ID_INVALID);
}

TEST_F(GeneralTest, InitTokenAddsAFreeSlot) {
  CK_SLOT_ID slot = make_token("my label");
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_OK);
  EXPECT_EQ(n, 2u);
  CK_TOKEN_INFO info;
  ASSERT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_OK);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(info.label), 8), "my label");
  EXPECT_TRUE(info.flags & CKF_TOKEN_INITIALIZED);
  EXPECT_TRUE(info.flags & CKF_USER_PIN_INITIALIZED);
  EXPECT_TRUE(info.flags & CKF_LOGIN_REQUIRED);
  EXPECT_NE(free_slot(), slot);
}

TEST_F(GeneralTest, SessionRules) {
  CK_SLOT_ID slot = make_token();
  CK_SESSION_HANDLE s;
  EXPECT_EQ(p11->C_OpenSession(slot, 0, nullptr, nullptr, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
  EXPECT_EQ(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, nullptr),
            CKR_ARGUMENTS_BAD);
  CK_SESSION_HANDLE ro = open(slot, false), rw = open(slot, true);
  CK_SESSION_INFO info;
  ASSERT_EQ(p11->C_GetSessionInfo(ro, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_PUBLIC_SESSION);
  ASSERT_EQ(login(rw, CKU_USER, kUserPin), CKR_OK);
  ASSERT_EQ(p11->C_GetSessionInfo(ro, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RO_USER_FUNCTIONS);  // login is per token
  ASSERT_EQ(p11->C_GetSessionInfo(rw, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_USER_FUNCTIONS);
  ASSERT_EQ(p11->C_CloseSession(ro), CKR_OK);
  EXPECT_EQ(p11->C_GetSessionInfo(ro, &info), CKR_SESSION_HANDLE_INVALID);
  EXPECT_EQ(p11->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
  // Closing the last session logs the user out.
  ASSERT_EQ(p11->C_CloseAllSessions(slot), CKR_OK);
  CK_SESSION_HANDLE again = open(slot);
  ASSERT_EQ(p11->C_GetSessionInfo(again, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_PUBLIC_SESSION);
}

TEST_F(GeneralTest, MechanismListFromRegistry) {
  CK_SLOT_ID slot = make_token();
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_GetMechanismList(slot, nullptr, &n), CKR_OK);
  std::vector<CK_MECHANISM_TYPE> list(n);
  ASSERT_EQ(p11->C_GetMechanismList(slot, list.data(), &n), CKR_OK);
  for (CK_MECHANISM_TYPE want :
       {CKM_RSA_PKCS_KEY_PAIR_GEN, CKM_RSA_PKCS, CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS_PSS,
        CKM_RSA_PKCS_OAEP, CKM_EC_KEY_PAIR_GEN, CKM_ECDSA, CKM_ECDSA_SHA256, CKM_SHA256}) {
    EXPECT_NE(std::find(list.begin(), list.end(), want), list.end()) << std::hex << want;
    CK_MECHANISM_INFO info;
    EXPECT_EQ(p11->C_GetMechanismInfo(slot, want, &info), CKR_OK);
  }
  CK_MECHANISM_INFO info;
  ASSERT_EQ(p11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &info), CKR_OK);
  EXPECT_EQ(info.ulMinKeySize, 2048u);
  EXPECT_EQ(info.ulMaxKeySize, 4096u);
  EXPECT_EQ(p11->C_GetMechanismInfo(slot, CKM_MD5, &info), CKR_MECHANISM_INVALID);
}

TEST_F(GeneralTest, ReinitialiseTokenNeedsSoPinAndNoSessions) {
  CK_SLOT_ID slot = make_token("old");
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "k", &pub, &priv);
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', sizeof label);
  std::string so = kSoPin, wrong = "wrong-so-pin";
  auto* so_pin = reinterpret_cast<CK_UTF8CHAR*>(so.data());
  EXPECT_EQ(p11->C_InitToken(slot, so_pin, so.size(), label), CKR_SESSION_EXISTS);
  ASSERT_EQ(p11->C_CloseAllSessions(slot), CKR_OK);
  EXPECT_EQ(
      p11->C_InitToken(slot, reinterpret_cast<CK_UTF8CHAR*>(wrong.data()), wrong.size(), label),
      CKR_PIN_INCORRECT);
  ASSERT_EQ(p11->C_InitToken(slot, so_pin, so.size(), label), CKR_OK);
  CK_TOKEN_INFO info;
  ASSERT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_OK);
  EXPECT_FALSE(info.flags & CKF_USER_PIN_INITIALIZED);
  s = open(slot);
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, CKO_PUBLIC_KEY)).size(), 0u);
  EXPECT_EQ(login(s, CKU_USER, kUserPin), CKR_USER_PIN_NOT_INITIALIZED);
}

// After fork() the child's C_Initialize works (NSS and p11-kit fork).
TEST_F(GeneralTest, ChildOfForkCanInitialize) {
  CK_SLOT_ID slot = make_token();
  CK_SESSION_HANDLE parent = user_session(slot);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    if (p11->C_Initialize(nullptr) != CKR_OK) code = 1;
    CK_SESSION_HANDLE s = 0;
    if (!code && p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                    &s) != CKR_OK)
      code = 2;
    std::string pin = kUserPin;
    if (!code &&
        p11->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()) != CKR_OK)
      code = 3;
    if (!code && p11->C_Finalize(nullptr) != CKR_OK) code = 4;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  CK_SESSION_INFO info;
  EXPECT_EQ(p11->C_GetSessionInfo(parent, &info), CKR_OK);
}

// The module exports its C_* entry points and nothing else.
TEST_F(GeneralTest, ExportsOnlyCFunctions) {
  int rc = 0;
  std::string out =
      run(std::string("nm -D --defined-only ") + TOKENKIT_MODULE_PATH + " | awk '{print $3}'", &rc);
  ASSERT_EQ(rc, 0);
  std::istringstream lines(out);
  std::string sym;
  int count = 0;
  while (std::getline(lines, sym)) {
    if (sym.empty()) continue;
    ++count;
    EXPECT_EQ(sym.rfind("C_", 0), 0u) << sym;
  }
  EXPECT_EQ(count, 70);  // the 68 v2.40 functions and the two 3.0 interface ones
}

// Two tokens: each has its own objects, PINs and login state, and a handle
// from one is no handle in the other.
TEST_F(GeneralTest, TokensAreSeparate) {
  CK_SLOT_ID a = make_token("first");
  CK_SLOT_ID b = make_token("second");
  ASSERT_NE(a, b);
  CK_SESSION_HANDLE sa = user_session(a), sb = open(b);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(sa, kP256, "only on a", &pub, &priv);
  EXPECT_TRUE(find(sb, Template().text(CKA_LABEL, "only on a")).empty());
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(sb, pub, CKA_LABEL, &len), CKR_OBJECT_HANDLE_INVALID);
  CK_SESSION_INFO info;
  ASSERT_EQ(p11->C_GetSessionInfo(sb, &info), CKR_OK);
  EXPECT_EQ(info.state, CKS_RW_PUBLIC_SESSION);  // logging in to a is not b
  EXPECT_EQ(find(sa, Template().text(CKA_LABEL, "only on a")).size(), 2u);
}

}  // namespace
}  // namespace tkt
