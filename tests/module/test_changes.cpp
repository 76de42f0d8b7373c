// Reading only what changed (docs/store-format.md): another process
// creates, changes and deletes objects while this one holds handles; this
// one sees exactly those changes, its other handles keep working, deleted
// ones are invalid. Also the version 2 -> 3 upgrade, and a writer that knows
// nothing of the record of changes (the version 2 module).
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "fixture.h"

namespace tkt {
namespace {

class ChangesTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token("changes");
  }

  // Runs `body` in a child process with the module initialised afresh and
  // a R/W session logged in as the user; its exit code (0: all went well).
  int in_child(const std::function<int(CK_SESSION_HANDLE)>& body, bool user = true) {
    pid_t pid = fork();
    if (pid == 0) {
      int code = p11->C_Initialize(nullptr) == CKR_OK ? 0 : 100;
      CK_SESSION_HANDLE cs = 0;
      if (!code)
        code = p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &cs)
                   ? 101
                   : 0;
      if (!code && user) code = login(cs, CKU_USER, kUserPin) ? 102 : 0;
      if (!code) code = body(cs);
      _exit(code);  // no C_Finalize: every change is durable when its call returns
    }
    if (pid < 0) return -1;
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status)) return -2;
    return WEXITSTATUS(status);
  }

  CK_OBJECT_HANDLE data(CK_SESSION_HANDLE s, const std::string& label, const std::string& value,
                        bool priv = false) {
    Template t;
    t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).flag(CKA_PRIVATE, priv);
    t.text(CKA_LABEL, label).text(CKA_VALUE, value);
    CK_OBJECT_HANDLE h = 0;
    EXPECT_EQ(p11->C_CreateObject(s, t.data(), t.size(), &h), CKR_OK) << label;
    return h;
  }

  // In a child: the one object labelled `label`, or 0.
  CK_OBJECT_HANDLE one(CK_SESSION_HANDLE s, const std::string& label) {
    auto found = find(s, Template().text(CKA_LABEL, label));
    return found.size() == 1 ? found[0] : 0;
  }

  std::set<CK_OBJECT_HANDLE> all_data(CK_SESSION_HANDLE s) {
    auto found = find(s, Template().ulong(CKA_CLASS, CKO_DATA));
    return {found.begin(), found.end()};
  }

  // Runs `sql` on the token's file through a connection of its own.
  void sql(const std::string& path, const std::string& text) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    EXPECT_EQ(sqlite3_exec(db, text.c_str(), nullptr, nullptr, &err), SQLITE_OK)
        << (err ? err : "") << " in " << text;
    sqlite3_free(err);
    sqlite3_close(db);
  }
  int64_t sql_int(const std::string& path, const std::string& text) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* st = nullptr;
    int64_t n = -1;
    if (sqlite3_prepare_v2(db, text.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
      n = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
  }
  // What every writer does after its commit: the shared change counter.
  void announce(const std::string& path) {
    std::fstream f(path + "-gen", std::ios::in | std::ios::out | std::ios::binary);
    uint64_t v = 0;
    f.read(reinterpret_cast<char*>(&v), sizeof v);
    ++v;
    f.seekp(0);
    f.write(reinterpret_cast<const char*>(&v), sizeof v);
  }

  CK_SLOT_ID slot = 0;
};

TEST_F(ChangesTest, AnotherProcessesChangesAreSeenExactly) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE kept = data(s, "kept", "kept value");
  CK_OBJECT_HANDLE changed = data(s, "changed", "old value");
  CK_OBJECT_HANDLE doomed = data(s, "doomed", "doomed value");
  CK_OBJECT_HANDLE secret = data(s, "secret", "private value", true);
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  gen_ec(s, kP256, "key", &pub, &priv);
  CK_MECHANISM m{CKM_ECDSA_SHA256, nullptr, 0};
  Bytes sig = sign(s, m, priv, to_bytes("before"));  // the key is ready here
  EXPECT_EQ(attr(s, secret, CKA_VALUE), to_bytes("private value"));
  ASSERT_EQ(all_data(s).size(), 4u);

  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              CK_OBJECT_HANDLE c = one(cs, "changed"), d = one(cs, "doomed");
              if (!c || !d) return 1;
              Template v;
              v.text(CKA_VALUE, "new value");
              if (p11->C_SetAttributeValue(cs, c, v.data(), v.size()) != CKR_OK) return 2;
              if (p11->C_DestroyObject(cs, d) != CKR_OK) return 3;
              data(cs, "created", "created value");
              data(cs, "created secret", "created private value", true);
              return ::testing::Test::HasFailure() ? 4 : 0;
            }),
            0);

  // Exactly the child's changes: two new, one changed, one gone.
  auto now = all_data(s);
  EXPECT_EQ(now.size(), 5u);
  EXPECT_TRUE(now.count(kept) && now.count(changed) && now.count(secret));
  EXPECT_FALSE(now.count(doomed));
  EXPECT_EQ(attr(s, changed, CKA_VALUE), to_bytes("new value"));
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, doomed, CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "doomed")).size(), 0u);
  // The unchanged ones keep their handles and values.
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "kept")), std::vector<CK_OBJECT_HANDLE>{kept});
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "changed")), std::vector<CK_OBJECT_HANDLE>{changed});
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "secret")), std::vector<CK_OBJECT_HANDLE>{secret});
  EXPECT_EQ(attr(s, kept, CKA_VALUE), to_bytes("kept value"));
  EXPECT_EQ(attr(s, secret, CKA_VALUE), to_bytes("private value"));
  EXPECT_EQ(verify(s, m, pub, to_bytes("before"), sig), CKR_OK);
  EXPECT_EQ(verify(s, m, pub, to_bytes("after"), sign(s, m, priv, to_bytes("after"))), CKR_OK);
  // The new ones, the private one found by label through its index MAC.
  auto created = find(s, Template().text(CKA_LABEL, "created"));
  ASSERT_EQ(created.size(), 1u);
  EXPECT_EQ(attr(s, created[0], CKA_VALUE), to_bytes("created value"));
  auto created_secret = find(s, Template().text(CKA_LABEL, "created secret"));
  ASSERT_EQ(created_secret.size(), 1u);
  EXPECT_EQ(attr(s, created_secret[0], CKA_VALUE), to_bytes("created private value"));
  // After a logout the private ones are hidden again, and back at login.
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(all_data(s).size(), 3u);
  EXPECT_EQ(attr_rv(s, secret, CKA_VALUE, &len), CKR_USER_NOT_LOGGED_IN);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_EQ(all_data(s).size(), 5u);
  EXPECT_EQ(attr(s, created_secret[0], CKA_VALUE), to_bytes("created private value"));
}

// A write of ours after another process's write, with no call in between
// that would read it: the write's transaction brings the other change in
// first, so both are here, each once.
TEST_F(ChangesTest, OwnWriteAfterAnotherProcessesWriteMissesNothing) {
  CK_SESSION_HANDLE s = user_session(slot);
  CK_OBJECT_HANDLE a = data(s, "a", "a");
  CK_OBJECT_HANDLE b = data(s, "b", "b");
  ASSERT_EQ(all_data(s).size(), 2u);
  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              data(cs, "theirs", "theirs");
              CK_OBJECT_HANDLE h = one(cs, "b");
              return h && p11->C_DestroyObject(cs, h) == CKR_OK && !HasFailure() ? 0 : 1;
            }),
            0);
  CK_OBJECT_HANDLE mine = data(s, "mine", "mine");  // the first call since the child's
  auto now = all_data(s);
  EXPECT_EQ(now.size(), 3u);
  EXPECT_TRUE(now.count(a) && now.count(mine));
  EXPECT_FALSE(now.count(b));
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "theirs")).size(), 1u);
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "mine")), std::vector<CK_OBJECT_HANDLE>{mine});
  EXPECT_EQ(p11->C_DestroyObject(s, b), CKR_OBJECT_HANDLE_INVALID);

  // And the same for a change and a delete of ours.
  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              data(cs, "theirs 2", "theirs 2");
              return HasFailure() ? 1 : 0;
            }),
            0);
  Template v;
  v.text(CKA_VALUE, "a changed");
  ASSERT_EQ(p11->C_SetAttributeValue(s, a, v.data(), v.size()), CKR_OK);
  EXPECT_EQ(all_data(s).size(), 4u);
  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              CK_OBJECT_HANDLE h = one(cs, "theirs");
              return h && p11->C_DestroyObject(cs, h) == CKR_OK ? 0 : 1;
            }),
            0);
  ASSERT_EQ(p11->C_DestroyObject(s, mine), CKR_OK);
  auto last = all_data(s);
  EXPECT_EQ(last.size(), 2u);
  EXPECT_TRUE(last.count(a));
  EXPECT_EQ(attr(s, a, CKA_VALUE), to_bytes("a changed"));
  EXPECT_EQ(find(s, Template().text(CKA_LABEL, "theirs 2")).size(), 1u);
  EXPECT_TRUE(find(s, Template().text(CKA_LABEL, "theirs")).empty());
  // A new process reads the same.
  reinitialize();
  s = user_session(slot);
  EXPECT_EQ(all_data(s).size(), 2u);
}

// A private object another process wrote is read as a change without
// being decrypted: a damaged sealed value fails only when it is used.
TEST_F(ChangesTest, ChangedPrivateObjectsStayEncryptedUntilUsed) {
  CK_SESSION_HANDLE s = user_session(slot);
  ASSERT_TRUE(all_data(s).empty());
  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              data(cs, "theirs public", "public value");
              data(cs, "theirs private", "private value", true);
              return HasFailure() ? 1 : 0;
            }),
            0);
  // Damage the private object's sealed CKA_VALUE (no new generation: the
  // object is still the one the child wrote, as far as the record goes).
  sql(db_path(slot),
      "UPDATE attributes SET value = zeroblob(length(value)) WHERE enc = 1 AND type = 0x11");
  auto found = all_data(s);  // by class: nothing decrypted
  ASSERT_EQ(found.size(), 2u);
  auto pub = find(s, Template().text(CKA_LABEL, "theirs public"));
  ASSERT_EQ(pub.size(), 1u);
  EXPECT_EQ(attr(s, pub[0], CKA_VALUE), to_bytes("public value"));
  found.erase(pub[0]);
  CK_OBJECT_HANDLE priv = *found.begin();
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, priv, CKA_VALUE, &len), CKR_DEVICE_ERROR);
}

// A process further behind than the record of deletions reaches (pruned
// by later deletes) reads everything again, and so misses no deletion.
TEST_F(ChangesTest, ProcessBehindPrunedDeletionsReadsEverything) {
  CK_SESSION_HANDLE s = open(slot);
  CK_OBJECT_HANDLE x = data(s, "x", "x"), y = data(s, "y", "y"), z = data(s, "z", "z");
  ASSERT_EQ(all_data(s).size(), 3u);
  std::string db = db_path(slot);
  ASSERT_EQ(in_child(
                [&](CK_SESSION_HANDLE cs) {
                  CK_OBJECT_HANDLE h = one(cs, "x");
                  return h && p11->C_DestroyObject(cs, h) == CKR_OK ? 0 : 1;
                },
                false),
            0);
  int64_t deleted_at = sql_int(db, "SELECT generation FROM deleted");
  ASSERT_GT(deleted_at, 0);
  // Two thousand writes later (their objects are not ours to care about)...
  sql(db, "UPDATE token SET generation = generation + 2000");
  ASSERT_EQ(in_child(
                [&](CK_SESSION_HANDLE cs) {
                  CK_OBJECT_HANDLE h = one(cs, "y");
                  return h && p11->C_DestroyObject(cs, h) == CKR_OK ? 0 : 1;
                },
                false),
            0);
  // ... the record of x's deletion is gone.
  EXPECT_EQ(
      sql_int(db, "SELECT count(*) FROM deleted WHERE generation = " + std::to_string(deleted_at)),
      0);
  EXPECT_GT(sql_int(db, "SELECT forgotten FROM token"), deleted_at);
  auto now = all_data(s);
  EXPECT_EQ(now, std::set<CK_OBJECT_HANDLE>{z});
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, x, CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(attr_rv(s, y, CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(attr(s, z, CKA_VALUE), to_bytes("z"));
}

// Re-initialised by another process: every object this one held is gone.
TEST_F(ChangesTest, ReinitialisationElsewhereEndsEveryHandle) {
  CK_SESSION_HANDLE s = open(slot);
  CK_OBJECT_HANDLE x = data(s, "x", "x");
  ASSERT_EQ(all_data(s).size(), 1u);
  ASSERT_EQ(in_child(
                [&](CK_SESSION_HANDLE cs) {
                  if (p11->C_CloseSession(cs) != CKR_OK) return 1;
                  CK_UTF8CHAR label[32];
                  std::memset(label, ' ', sizeof label);
                  std::string so = kSoPin;
                  return p11->C_InitToken(slot, reinterpret_cast<CK_UTF8CHAR*>(so.data()),
                                          so.size(), label) == CKR_OK
                             ? 0
                             : 2;
                },
                false),
            0);
  EXPECT_TRUE(all_data(s).empty());
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, x, CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(find(s, Template().ulong(CKA_CLASS, 9 /* CKO_PROFILE */)).size(), 1u);
}

// A writer that knows nothing of `changed` and `deleted` (the version 2
// module, still loaded by a mail client when a newer one upgraded the
// file): its statements, as that module ran them, then its counter bump.
TEST_F(ChangesTest, WriterWithoutTheRecordOfChangesIsSeen) {
  CK_SESSION_HANDLE s = open(slot);
  CK_OBJECT_HANDLE x = data(s, "x", "x"), y = data(s, "y", "y");
  ASSERT_EQ(all_data(s).size(), 2u);
  std::string db = db_path(slot);
  CK_OBJECT_CLASS cls = CKO_DATA;
  CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
  auto hex = [](const void* p, size_t n) {
    std::string out = "x'";
    for (size_t i = 0; i < n; ++i) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", static_cast<const unsigned char*>(p)[i]);
      out += b;
    }
    return out + "'";
  };
  sql(db,
      "BEGIN IMMEDIATE;"
      "INSERT INTO objects(class, private, ckaid, label, ckaid_mac, label_mac)"
      " VALUES(0, 0, x'', CAST('old writer' AS BLOB), NULL, NULL);"
      "INSERT INTO attributes(uid, type, enc, value) VALUES"
      " ((SELECT max(uid) FROM objects), 0, 0, " +
          hex(&cls, sizeof cls) +
          "),"
          " ((SELECT max(uid) FROM objects), 1, 0, " +
          hex(&yes, 1) +
          "),"
          " ((SELECT max(uid) FROM objects), 2, 0, " +
          hex(&no, 1) +
          "),"
          " ((SELECT max(uid) FROM objects), 3, 0, CAST('old writer' AS BLOB)),"
          " ((SELECT max(uid) FROM objects), 0x11, 0, CAST('v' AS BLOB));"
          "UPDATE token SET generation = generation + 1 WHERE id = 1; COMMIT;");
  announce(db);
  auto found = find(s, Template().text(CKA_LABEL, "old writer"));
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(attr(s, found[0], CKA_VALUE), to_bytes("v"));
  EXPECT_EQ(all_data(s).size(), 3u);
  // Its change of an object: the attributes rewritten, the row's index
  // columns set again; and its delete.
  sql(db,
      "BEGIN IMMEDIATE;"
      "UPDATE objects SET ckaid = x'', label = CAST('y' AS BLOB), ckaid_mac = NULL,"
      " label_mac = NULL WHERE label = CAST('y' AS BLOB);"
      "UPDATE attributes SET value = CAST('y changed' AS BLOB) WHERE type = 0x11 AND uid ="
      " (SELECT uid FROM objects WHERE label = CAST('y' AS BLOB));"
      "DELETE FROM objects WHERE label = CAST('x' AS BLOB);"
      "UPDATE token SET generation = generation + 1 WHERE id = 1; COMMIT;");
  announce(db);
  EXPECT_EQ(attr(s, y, CKA_VALUE), to_bytes("y changed"));
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, x, CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(all_data(s).size(), 2u);
}

// A store written by version 2 of the format (tests/module/data/store-v2-changes.db,
// made by the version 2 module with pkcs11-tool: token "v2 format", user
// PIN kUserPin, private data objects private-1..3, public ones public-1..3,
// an object "doomed" made and deleted, an EC P-256 key pair "v2 key" with
// id 0c0d, generation 12) opens, is moved through version 3 to 4, and from then on
// another process's changes are read as changes.
TEST_F(ChangesTest, VersionTwoStoreOpensAndIsUpgraded) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_SLOT_ID old = slot + 1;
  std::string db = db_path(old);
  std::filesystem::copy_file(TOKENKIT_TEST_DATA "/store-v2-changes.db", db);
  ASSERT_EQ(sql_int(db, "SELECT format FROM token"), 2);
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);
  slot = old;
  CK_SESSION_HANDLE s = open(old);
  EXPECT_EQ(sql_int(db, "SELECT format FROM token"), 4);
  EXPECT_EQ(sql_int(db, "SELECT forgotten FROM token"), 12);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM objects WHERE changed = 0"), 9);
  EXPECT_EQ(all_data(s).size(), 3u);
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_EQ(all_data(s).size(), 6u);
  auto p2 = find(s, Template().text(CKA_LABEL, "private-2"));
  ASSERT_EQ(p2.size(), 1u);
  EXPECT_EQ(attr(s, p2[0], CKA_VALUE), to_bytes("private value 2\n"));
  auto p1 = find(s, Template().text(CKA_LABEL, "private-1"));
  ASSERT_EQ(p1.size(), 1u);
  auto privs = find(s, Template().ulong(CKA_CLASS, CKO_PRIVATE_KEY).bytes(CKA_ID, {0x0c, 0x0d}));
  auto pubs = find(s, Template().ulong(CKA_CLASS, CKO_PUBLIC_KEY).text(CKA_LABEL, "v2 key"));
  ASSERT_EQ(privs.size(), 1u);
  ASSERT_EQ(pubs.size(), 1u);
  CK_MECHANISM m{CKM_ECDSA_SHA256, nullptr, 0};
  EXPECT_EQ(verify(s, m, pubs[0], to_bytes("v2"), sign(s, m, privs[0], to_bytes("v2"))), CKR_OK);

  ASSERT_EQ(in_child([&](CK_SESSION_HANDLE cs) {
              CK_OBJECT_HANDLE h = one(cs, "private-1");
              if (!h || p11->C_DestroyObject(cs, h) != CKR_OK) return 1;
              data(cs, "after upgrade", "new", true);
              return HasFailure() ? 2 : 0;
            }),
            0);
  EXPECT_EQ(sql_int(db, "SELECT count(*) FROM deleted"), 1);
  EXPECT_EQ(all_data(s).size(), 6u);
  CK_ULONG len = 0;
  EXPECT_EQ(attr_rv(s, p1[0], CKA_VALUE, &len), CKR_OBJECT_HANDLE_INVALID);
  EXPECT_EQ(attr(s, p2[0], CKA_VALUE), to_bytes("private value 2\n"));
  auto added = find(s, Template().text(CKA_LABEL, "after upgrade"));
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(attr(s, added[0], CKA_VALUE), to_bytes("new"));
}

}  // namespace
}  // namespace tkt
