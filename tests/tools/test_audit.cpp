// tokenkit audit: a key used by another program (pkcs11-tool) shows up, with
// when, which key (by the label of its certificate), mechanism and process.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <p11-kit/pkcs11.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

TEST(Audit, ShowsEveryUseOfAKeyOnATokenkitToken) {
  FreshToken t("tokenkit");
  t.write_rsa();
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  write_file(t.dir() + "/msg", "sign me");
  for (int i = 0; i < 3; ++i) {
    t.pkcs11_tool({"--login", "--pin", kUserPin, "--sign", "--id", "01", "-m", "SHA256-RSA-PKCS",
                   "--input-file", t.dir() + "/msg", "--output-file", t.dir() + "/sig"});
  }
  auto r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = Json::parse(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  for (const auto& row : rows) {
    EXPECT_EQ(row["operation"], "sign");
    EXPECT_EQ(row["mechanism"], "CKM_SHA256_RSA_PKCS");
    EXPECT_EQ(row["id"], "01");
    EXPECT_EQ(row["label"], "alice") << "named by its certificate's label";
    EXPECT_GT(row["pid"].get<long long>(), 0);
    EXPECT_EQ(row["count"], 1) << "three programs: three rows of one use";
  }
  r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--last", "1"}, env);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sign  CKM_SHA256_RSA_PKCS  key 01 \"alice\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("(1 most recent row, 1 use)"), std::string::npos) << r.out;
}

// In a forked child: loads the module, signs `n` times with the key of
// id 02 on the token labelled `label`, and exits without C_Finalize,
// C_Logout or C_CloseSession, as mail clients quit. Exit code 0 when all
// signatures were made.
[[noreturn]] void sign_and_exit(const std::string& module, const std::string& label, int n) {
  void* h = dlopen(module.c_str(), RTLD_NOW | RTLD_LOCAL);
  auto get = h ? reinterpret_cast<CK_C_GetFunctionList>(dlsym(h, "C_GetFunctionList")) : nullptr;
  CK_FUNCTION_LIST* p = nullptr;
  if (get == nullptr || get(&p) != CKR_OK || p->C_Initialize(nullptr) != CKR_OK) std::exit(10);
  CK_SLOT_ID slots[8];
  CK_ULONG count = 8;
  if (p->C_GetSlotList(CK_TRUE, slots, &count) != CKR_OK) std::exit(11);
  CK_SESSION_HANDLE s = 0;
  for (CK_ULONG i = 0; i < count && s == 0; ++i) {
    CK_TOKEN_INFO info;
    if (p->C_GetTokenInfo(slots[i], &info) != CKR_OK) continue;
    std::string l(reinterpret_cast<char*>(info.label), sizeof info.label);
    if (l.substr(0, l.find_last_not_of(' ') + 1) == label)
      p->C_OpenSession(slots[i], CKF_SERIAL_SESSION, nullptr, nullptr, &s);
  }
  std::string pin = kUserPin;
  if (s == 0 || p->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()))
    std::exit(12);
  CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
  unsigned char id = 0x02;
  CK_ATTRIBUTE want[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, &id, 1}};
  CK_OBJECT_HANDLE key = 0;
  CK_ULONG found = 0;
  if (p->C_FindObjectsInit(s, want, 2) != CKR_OK ||
      p->C_FindObjects(s, &key, 1, &found) != CKR_OK || found != 1 ||
      p->C_FindObjectsFinal(s) != CKR_OK)
    std::exit(13);
  for (int i = 0; i < n; ++i) {
    CK_MECHANISM m = {CKM_ECDSA, nullptr, 0};
    unsigned char hash[32], sig[132];
    std::memset(hash, i, sizeof hash);
    CK_ULONG len = sizeof sig;
    if (p->C_SignInit(s, &m, key) != CKR_OK || p->C_Sign(s, hash, sizeof hash, sig, &len) != CKR_OK)
      std::exit(14);
  }
  std::exit(0);
}

// Key uses are written in batches (docs/store-format.md); a program that
// exits without C_Finalize still has every one of them recorded.
TEST(Audit, ShowsEveryUseByAProgramThatExitsWithoutFinalize) {
  FreshToken t("tokenkit");
  t.write_ec();
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) sign_and_exit(t.module(), t.label(), 12);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  auto r =
      run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--last", "0", "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = Json::parse(r.out);
  // Identical uses of one second are one row with their count: a dozen
  // signatures in a fraction of a second are a row or two, and every use
  // is counted.
  ASSERT_GE(rows.size(), 1u) << r.out;
  long long uses = 0;
  for (const auto& row : rows) {
    EXPECT_EQ(row["operation"], "sign");
    EXPECT_EQ(row["mechanism"], "CKM_ECDSA");
    EXPECT_EQ(row["id"], "02");
    EXPECT_EQ(row["pid"].get<long long>(), pid);
    uses += row["count"].get<long long>();
  }
  EXPECT_EQ(uses, 12) << r.out;
  r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--last", "0"}, env);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(" 12 uses)"), std::string::npos) << r.out;
}

TEST(Audit, RefusesTokensThatRecordNothing) {
  FreshToken t("softhsm2");
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  auto r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label()}, env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a tokenkit software token"), std::string::npos) << r.err;
}

}  // namespace
