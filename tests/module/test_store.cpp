// The store (docs/store-format.md): persistence, sharing between processes,
// damaged files, nothing secret in clear, the key-use audit table.
#include <dlfcn.h>
#include <openssl/core_names.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "fixture.h"
#include "tokenkit/pkcs11-vendor.h"

namespace tkt {
namespace {

bool contains(const Bytes& hay, const Bytes& needle) {
  return std::search(hay.begin(), hay.end(), needle.begin(), needle.end()) != hay.end();
}

class StoreTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token("persistent");
  }
  // Every byte the token directory holds (database, WAL, journal).
  Bytes all_files() {
    Bytes out;
    for (const auto& e : std::filesystem::directory_iterator(dir + "/tokens")) {
      Bytes b = read_file(e.path());
      out.insert(out.end(), b.begin(), b.end());
    }
    return out;
  }
  int sql_count(const std::string& sql) { return sql_count_in(db_path(slot), sql); }
  int sql_count_in(const std::string& path, const std::string& sql) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int n = -1;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }
  CK_SLOT_ID slot = 0;
};

TEST_F(StoreTest, TokenFilesArePrivateToTheUser) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "k", &pub, &priv);
  for (const auto& e : std::filesystem::directory_iterator(dir + "/tokens")) {
    auto perms = std::filesystem::status(e.path()).permissions();
    EXPECT_EQ(perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all),
              std::filesystem::perms::none)
        << e.path();
  }
}

TEST_F(StoreTest, ObjectsPersistAcrossFinalize) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "rsa key", &pub, &priv);
  gen_ec(s, kP384, "ec key", &pub, &priv);
  Bytes point = attr(s, pub, CKA_EC_POINT);
  reinitialize();
  s = open(slot);
  EXPECT_TRUE(find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY)).empty());
  auto pubs = find(s, Template().text(CKA_LABEL, "ec key"));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_EQ(attr(s, pubs[0], CKA_EC_POINT), point);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  auto privs = find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY).text(CKA_LABEL, "ec key"));
  ASSERT_EQ(privs.size(), 1u);
  Bytes sig = sign(s, {CKM_ECDSA_SHA384, nullptr, 0}, privs[0], to_bytes("persisted"));
  EXPECT_EQ(verify(s, {CKM_ECDSA_SHA384, nullptr, 0}, pubs[0], to_bytes("persisted"), sig), CKR_OK);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "rsa key")).size(), 2u);
}

TEST_F(StoreTest, NoSecretInClearAtRest) {
  EVP_PKEY* k = openssl_rsa_key(dir);
  ASSERT_NE(k, nullptr);
  CK_SESSION_HANDLE s = user_session(slot);
  Template t = rsa_private_template(k, true, "private-label-XYZZY");
  CK_OBJECT_HANDLE h;
  ASSERT_EQ(p11->C_CreateObject(s, t.data(), t.size(), &h), CKR_OK);
  for (int pass = 0; pass < 2; ++pass) {  // with the WAL, then after checkpoint
    Bytes disk = all_files();
    ASSERT_FALSE(disk.empty());
    EXPECT_FALSE(contains(disk, to_bytes(kUserPin)));
    EXPECT_FALSE(contains(disk, to_bytes(kSoPin)));
    EXPECT_FALSE(contains(disk, to_bytes("private-label-XYZZY")));
    for (const char* part : {OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1,
                             OSSL_PKEY_PARAM_RSA_FACTOR2, OSSL_PKEY_PARAM_RSA_EXPONENT1}) {
      Bytes secret = bn(k, part);
      EXPECT_FALSE(contains(disk, Bytes(secret.begin(), secret.begin() + 16))) << part;
    }
    reinitialize();
  }
  EVP_PKEY_free(k);
}

TEST_F(StoreTest, TruncatedDatabaseIsNotRecognised) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "k", &pub, &priv);
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  auto size = std::filesystem::file_size(db_path(slot));
  for (auto cut : {size / 2, std::uintmax_t{100}, std::uintmax_t{0}}) {
    std::filesystem::resize_file(db_path(slot), cut);
    ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
    CK_TOKEN_INFO info;
    CK_RV rv = p11->C_GetTokenInfo(slot, &info);
    if (rv == CKR_OK) {
      // Page 1 survived: the damage must show as a clean error on use.
      CK_SESSION_HANDLE s2;
      ASSERT_EQ(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s2), CKR_OK);
      CK_RV lr = login(s2, CKU_USER, kUserPin);
      EXPECT_TRUE(lr == CKR_DEVICE_ERROR || lr == CKR_OK) << lr;
      if (lr == CKR_OK) {
        CK_OBJECT_HANDLE h[4];
        CK_ULONG n = 0;
        CK_RV fr = p11->C_FindObjectsInit(s2, nullptr, 0);
        if (fr == CKR_OK) p11->C_FindObjects(s2, h, 4, &n);
        EXPECT_TRUE(fr == CKR_DEVICE_ERROR || fr == CKR_OK) << fr;
      }
    } else {
      EXPECT_EQ(rv, CKR_TOKEN_NOT_RECOGNIZED) << "cut at " << cut;
      CK_SESSION_HANDLE s2;
      EXPECT_EQ(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s2),
                CKR_TOKEN_NOT_RECOGNIZED);
    }
    CK_ULONG n = 0;
    EXPECT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_OK);
    EXPECT_EQ(n, 2u);  // the damaged token and the free slot
    ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  }
  std::filesystem::resize_file(db_path(slot), 0);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  CK_TOKEN_INFO info;
  EXPECT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_TOKEN_NOT_RECOGNIZED);
}

TEST_F(StoreTest, ForeignFilesAreNotRecognised) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  { std::ofstream(dir + "/tokens/7.db") << "this is not a database, just some text"; }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir + "/tokens/8.db").c_str(), &db), SQLITE_OK);
  sqlite3_exec(db, "CREATE TABLE token(x); INSERT INTO token VALUES(1);", nullptr, nullptr,
               nullptr);
  sqlite3_close(db);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  CK_TOKEN_INFO info;
  EXPECT_EQ(p11->C_GetTokenInfo(7, &info), CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(p11->C_GetTokenInfo(8, &info), CKR_TOKEN_NOT_RECOGNIZED);
  EXPECT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_OK);
}

TEST_F(StoreTest, TamperedCiphertextIsADeviceError) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "k", &pub, &priv);
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(db_path(slot).c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "UPDATE attributes SET value = zeroblob(length(value)) "
                         "WHERE enc = 1 AND type = 0x11",  // CKA_VALUE
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  s = open(slot);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  // Private objects are decrypted when first used: the damaged one fails
  // then, and only it.
  auto privs = find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY));
  ASSERT_EQ(privs.size(), 1u);
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, privs[0], CKA_LABEL, &len), CKR_DEVICE_ERROR);
  CK_MECHANISM m{CKM_ECDSA_SHA256, nullptr, 0};
  EXPECT_EQ(p11->C_SignInit(s, &m, privs[0]), CKR_DEVICE_ERROR);
  Template by_label;
  by_label.text(CKA_LABEL, "k");
  EXPECT_EQ(p11->C_FindObjectsInit(s, by_label.data(), by_label.size()), CKR_DEVICE_ERROR);
  auto pubs = find(s, Template().ulong(CKA_CLASS, CKO_PUBLIC_KEY));
  ASSERT_EQ(pubs.size(), 1u);
  EXPECT_FALSE(attr(s, pubs[0], CKA_EC_POINT).empty());
}

// A store written by version 1 of the format (tests/module/data/store-v1.db,
// made by the module as it was then with pkcs11-tool: token "old format",
// user PIN kUserPin, private data objects private-1..3, public ones
// public-1..3, an EC P-256 key pair "old key" with id 0a0b) opens, is moved
// to version 2, and after the first login its private objects are found by
// label and id through the index like new ones.
TEST_F(StoreTest, VersionOneStoreOpensAndIsUpgraded) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_SLOT_ID old = slot + 1;
  std::filesystem::copy_file(TOKENKIT_TEST_DATA "/store-v1.db", db_path(old));
  auto format = [&] {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(db_path(old).c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int f = -1;
    if (sqlite3_prepare_v2(db, "SELECT format FROM token", -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      f = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return f;
  };
  ASSERT_EQ(format(), 1);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  CK_SESSION_HANDLE s = open(old);
  EXPECT_EQ(format(), 3);  // through version 2
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "public-2")).size(), 1u);
  EXPECT_TRUE(find(s, Template().text(CKA_LABEL, "private-2")).empty());
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  auto fetch = [&] {
    auto found = find(s, Template().text(CKA_LABEL, "private-2"));
    return found.size() == 1 ? attr(s, found[0], CKA_VALUE) : Bytes();
  };
  EXPECT_EQ(fetch(), to_bytes("private value 2\n"));
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, CKO_DATA)).size(), 6u);
  auto keys = find(s, Template().bytes(CKA_ID, {0x0a, 0x0b}));
  ASSERT_EQ(keys.size(), 2u);
  auto privs = find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY).bytes(CKA_ID, {0x0a, 0x0b}));
  auto pubs = find(s, Template().ulong(CKA_CLASS, CKO_PUBLIC_KEY).text(CKA_LABEL, "old key"));
  ASSERT_EQ(privs.size(), 1u);
  ASSERT_EQ(pubs.size(), 1u);
  Bytes sig = sign(s, {CKM_ECDSA_SHA256, nullptr, 0}, privs[0], to_bytes("old"));
  EXPECT_EQ(verify(s, {CKM_ECDSA_SHA256, nullptr, 0}, pubs[0], to_bytes("old"), sig), CKR_OK);
  // The first login wrote the index MACs of every private object.
  EXPECT_EQ(sql_count_in(db_path(old),
                         "SELECT count(*) FROM objects WHERE private = 1 AND "
                         "length(label_mac) = 32 AND length(ckaid_mac) = 32"),
            4);
  EXPECT_EQ(sql_count_in(db_path(old),
                         "SELECT count(*) FROM objects WHERE private = 1 AND "
                         "(label IS NOT NULL OR ckaid IS NOT NULL)"),
            0);
  // And a later process finds them through the index.
  reinitialize();
  s = open(old);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_EQ(fetch(), to_bytes("private value 2\n"));
}

// A store written by version 2 of the format (tests/module/data/store-v2.db,
// made by the module as it was then with pkcs11-tool: token "v2 format", user
// PIN 123456, an EC P-256 key pair "v2 key" with id 0c0d that signed three
// times with CKM_ECDSA_SHA256, so its audit table holds three rows of one use
// each and no count column) opens and is moved to version 3: each old row
// counts one use, and new uses are added next to them.
TEST_F(StoreTest, VersionTwoAuditTableIsUpgraded) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_SLOT_ID old = slot + 1;
  std::filesystem::copy_file(TOKENKIT_TEST_DATA "/store-v2.db", db_path(old));
  ASSERT_EQ(sql_count_in(db_path(old), "SELECT format FROM token"), 2);
  ASSERT_EQ(sql_count_in(db_path(old), "SELECT count(*) FROM audit"), 3);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  CK_SESSION_HANDLE s = open(old);
  EXPECT_EQ(sql_count_in(db_path(old), "SELECT format FROM token"), 3);
  const std::string mech = std::to_string(CKM_ECDSA_SHA256);
  EXPECT_EQ(sql_count_in(db_path(old),
                         "SELECT count(*) FROM audit WHERE count = 1 AND ckaid = "
                         "x'0c0d' AND operation = 'sign' AND mechanism = " +
                             mech),
            3);
  ASSERT_EQ(login(s, CKU_USER, "123456"), CKR_OK);
  auto privs = find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY).bytes(CKA_ID, {0x0c, 0x0d}));
  ASSERT_EQ(privs.size(), 1u);
  for (int i = 0; i < 4; ++i) sign(s, {CKM_ECDSA_SHA256, nullptr, 0}, privs[0], to_bytes("new"));
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  const std::string mine = " FROM audit WHERE pid = " + std::to_string(getpid());
  EXPECT_EQ(sql_count_in(db_path(old), "SELECT sum(count)" + mine + " AND ckaid = x'0c0d'"), 4);
  EXPECT_EQ(sql_count_in(db_path(old), "SELECT count(*)" + mine),
            sql_count_in(db_path(old), "SELECT count(DISTINCT time)" + mine))
      << "one row per second of identical uses";
  EXPECT_EQ(sql_count_in(db_path(old), "SELECT sum(count) FROM audit"), 7);
}

TEST_F(StoreTest, KeyUseIsAudited) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_rsa(s, 2048, "audited", &pub, &priv);
  Bytes data = to_bytes("x");
  Bytes sig = sign(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, priv, data);
  sign(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, priv, data);
  EXPECT_EQ(verify(s, {CKM_SHA256_RSA_PKCS, nullptr, 0}, pub, data, sig), CKR_OK);
  // Rows are written in batches; C_Logout writes what is queued.
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(
      sql_count("SELECT sum(count) FROM audit WHERE operation = 'sign' AND mechanism = " +
                std::to_string(CKM_SHA256_RSA_PKCS) + " AND pid = " + std::to_string(getpid()) +
                " AND length(ckaid) > 0 AND (label IS NULL OR length(label) = 0)"),
      2)
      << "the key's id only: a private key's label is encrypted in the store";
  // Verify is not a private key use.
  EXPECT_EQ(sql_count("SELECT sum(count) FROM audit"), 2);
}

// A second process sees this one's changes on its next call, and back.
TEST_F(StoreTest, ProcessesShareTheToken) {
  CK_SESSION_HANDLE s = open(slot);
  EXPECT_TRUE(find(s, Template().text(CKA_LABEL, "from child")).empty());
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = p11->C_Initialize(nullptr) == CKR_OK ? 0 : 1;
    CK_SESSION_HANDLE cs = 0;
    if (!code)
      code = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &cs)
                 ? 2
                 : 0;
    Template t;
    t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).text(CKA_LABEL, "from child");
    CK_OBJECT_HANDLE h;
    if (!code) code = p11->C_CreateObject(cs, t.data(), t.size(), &h) ? 3 : 0;
    _exit(code);  // no C_Finalize: like Thunderbird, the change must already be durable
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "from child")).size(), 1u);
}

// A token another process initialises in our free slot shows up at our
// next C_GetSlotList, with a new free slot after it.
TEST_F(StoreTest, TokenMadeElsewhereAppears) {
  CK_SLOT_ID free = free_slot();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    CK_UTF8CHAR label[32];
    std::memset(label, ' ', sizeof label);
    std::memcpy(label, "second", 6);
    std::string so = kSoPin;
    int code = p11->C_Initialize(nullptr) == CKR_OK ? 0 : 1;
    if (!code)
      code = p11->C_InitToken(free, reinterpret_cast<CK_UTF8CHAR*>(so.data()), so.size(), label)
                 ? 2
                 : 0;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  CK_ULONG n = 0;
  ASSERT_EQ(p11->C_GetSlotList(CK_TRUE, nullptr, &n), CKR_OK);
  EXPECT_EQ(n, 3u);
  CK_TOKEN_INFO info;
  ASSERT_EQ(p11->C_GetTokenInfo(free, &info), CKR_OK);
  EXPECT_TRUE(info.flags & CKF_TOKEN_INITIALIZED);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(info.label), 6), "second");
  EXPECT_NE(free_slot(), free);
}

// A key another process destroys is not used here afterwards, though this
// process holds it ready: the next C_SignInit notices the change (the
// shared change counter, docs/store-format.md) and finds no key.
TEST_F(StoreTest, KeyDestroyedByAnotherProcessIsNotUsed) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "doomed", &pub, &priv);
  CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
  sign(s, m, priv, to_bytes("while it lives"));
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = p11->C_Initialize(nullptr) == CKR_OK ? 0 : 1;
    CK_SESSION_HANDLE cs = 0;
    if (!code)
      code = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &cs)
                 ? 2
                 : 0;
    if (!code) code = login(cs, CKU_USER, kUserPin) ? 3 : 0;
    auto found = find(cs, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY).text(CKA_LABEL, "doomed"));
    if (!code) code = found.size() == 1 ? 0 : 4;
    if (!code) code = p11->C_DestroyObject(cs, found[0]) ? 5 : 0;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(p11->C_SignInit(s, &m, priv), CKR_KEY_HANDLE_INVALID);
}

// The vendor interface's C_DeleteToken (include/tokenkit/pkcs11-vendor.h).
const TOKENKIT_FUNCTION_LIST* vendor() {
  void* lib = dlopen(TOKENKIT_MODULE_PATH, RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) return nullptr;
  auto get = reinterpret_cast<TOKENKIT_C_GetInterface>(dlsym(lib, "C_GetInterface"));
  dlclose(lib);
  CK_UTF8CHAR name[] = TOKENKIT_VENDOR_INTERFACE;
  TOKENKIT_INTERFACE* iface = nullptr;
  if (get == nullptr || get(name, nullptr, &iface, 0) != CKR_OK) return nullptr;
  return static_cast<const TOKENKIT_FUNCTION_LIST*>(iface->pFunctionList);
}

CK_RV delete_token(CK_SLOT_ID slot, std::string pin) {
  return vendor()->C_DeleteToken(slot, reinterpret_cast<CK_UTF8CHAR_PTR>(pin.data()), pin.size());
}

// A token is deleted only with its SO PIN and without open sessions; then
// its file is gone, and a process that had it open finds it empty at once
// and gone at its next C_GetSlotList.
TEST_F(StoreTest, VendorDeleteTokenRemovesTheStore) {
  ASSERT_NE(vendor(), nullptr);
  EXPECT_EQ(vendor()->version.major, 1);
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE pub, priv;
  gen_ec(s, kP256, "doomed", &pub, &priv);
  EXPECT_EQ(delete_token(slot, kSoPin), CKR_SESSION_EXISTS);
  ASSERT_EQ(p11->C_CloseAllSessions(slot), CKR_OK);
  EXPECT_EQ(delete_token(slot, "wrong-so-pin"), CKR_PIN_INCORRECT);
  EXPECT_EQ(delete_token(free_slot(), kSoPin), CKR_TOKEN_NOT_RECOGNIZED);
  ASSERT_TRUE(std::filesystem::exists(db_path(slot)));
  s = open(slot);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "doomed")).size(), 1u);
  ASSERT_EQ(p11->C_CloseAllSessions(slot), CKR_OK);

  // A second process holds the token open while this one deletes it.
  int go[2], done[2];
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(done), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    char c = 0;
    int code = p11->C_Initialize(nullptr) == CKR_OK ? 0 : 1;
    CK_SESSION_HANDLE cs = 0;
    if (!code) code = p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &cs) ? 2 : 0;
    if (!code) code = find(cs, Template().text(CKA_LABEL, "doomed")).size() == 1 ? 0 : 3;
    if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1) code = 4;
    if (!code) code = find(cs, Template()).empty() ? 0 : 5;  // empty at once
    CK_TOKEN_INFO info;
    CK_ULONG n = 0;
    if (!code) code = p11->C_GetSlotList(CK_TRUE, nullptr, &n) == CKR_OK ? 0 : 6;
    if (!code && p11->C_GetTokenInfo(slot, &info) == CKR_OK)
      code = (info.flags & CKF_TOKEN_INITIALIZED) ? 7 : 0;
    _exit(code);
  }
  char c = 0;
  ASSERT_EQ(read(done[0], &c, 1), 1);
  EXPECT_EQ(delete_token(slot, kSoPin), CKR_OK);
  ASSERT_EQ(write(go[1], "g", 1), 1);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (int fd : {go[0], go[1], done[0], done[1]}) close(fd);

  EXPECT_FALSE(std::filesystem::exists(db_path(slot)));
  EXPECT_FALSE(std::filesystem::exists(db_path(slot) + "-wal"));
  CK_TOKEN_INFO info;
  EXPECT_EQ(p11->C_GetTokenInfo(slot, &info), CKR_SLOT_ID_INVALID);
  // The standard interface is still the only one listed.
  void* lib = dlopen(TOKENKIT_MODULE_PATH, RTLD_NOW | RTLD_NOLOAD);
  ASSERT_NE(lib, nullptr);
  auto list = reinterpret_cast<CK_RV (*)(TOKENKIT_INTERFACE*, CK_ULONG_PTR)>(
      dlsym(lib, "C_GetInterfaceList"));
  dlclose(lib);
  ASSERT_NE(list, nullptr);
  CK_ULONG n = 0;
  EXPECT_EQ(list(nullptr, &n), CKR_OK);
  EXPECT_EQ(n, 1u);
  // And a new token can be made.
  EXPECT_NE(make_token("after"), slot);
}

}  // namespace
}  // namespace tkt
