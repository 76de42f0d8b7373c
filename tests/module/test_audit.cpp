// The key-access record (docs/store-format.md, "The audit table"): rows are
// queued and written in batches, yet every use is recorded, by a process
// that exits without C_Finalize, across fork(), without a writer thread
// (NSS), and a use whose row cannot be written releases no result.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <thread>

#include "fixture.h"

namespace tkt {
namespace {

class AuditTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token("audited");
    CK_SESSION_HANDLE s = user_session(slot);
    gen_ec(s, kP256, "audited key", &pub, &priv);
    ASSERT_EQ(p11->C_CloseSession(s), CKR_OK);
  }

  int sql_count(const std::string& sql) {
    sqlite3* db = nullptr;
    int n = -1;
    if (sqlite3_open_v2(db_path(slot).c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5000);
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
  }
  // The uses recorded for `pid`: a row counts identical uses of one second.
  int uses_of(pid_t pid) {
    return sql_count(
        "SELECT coalesce(sum(count), 0) FROM audit WHERE operation = 'sign' AND pid = " +
        std::to_string(pid));
  }
  // This process's uses once at least `n` are in the store, or after 30 s
  // (the writer waits at most 100 ms; the margin is for a loaded machine).
  int wait_for_uses(int n) {
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (uses_of(getpid()) < n && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return uses_of(getpid());
  }
  int rows_of(pid_t pid) {
    return sql_count("SELECT count(*) FROM audit WHERE pid = " + std::to_string(pid));
  }
  // The seconds in which `pid` used keys (the rows of one kind of use of
  // one second are one row).
  int seconds_of(pid_t pid) {
    return sql_count("SELECT count(DISTINCT time) FROM audit WHERE pid = " + std::to_string(pid));
  }
  void sql(const std::string& statement) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open_v2(db_path(slot).c_str(), &db, SQLITE_OPEN_READWRITE, nullptr),
              SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    EXPECT_EQ(sqlite3_exec(db, statement.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  // Handles are the module instance's: after C_Initialize, look again.
  CK_OBJECT_HANDLE private_key(CK_SESSION_HANDLE s) {
    Template t;
    t.ulong(CKA_CLASS, CKO_PRIVATE_KEY).text(CKA_LABEL, "audited key");
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (p11->C_FindObjectsInit(s, t.data(), t.size()) == CKR_OK) {
      p11->C_FindObjects(s, &h, 1, &n);
      p11->C_FindObjectsFinal(s);
    }
    return n == 1 ? h : CK_INVALID_HANDLE;
  }

  CK_RV sign_rv(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech = CKM_ECDSA_SHA256) {
    CK_MECHANISM m = {mech, nullptr, 0};
    CK_RV rv = p11->C_SignInit(s, &m, priv);
    if (rv != CKR_OK) return rv;
    Bytes data = to_bytes("audited"), sig(64);
    if (mech == CKM_ECDSA) data.resize(32);  // a hash
    CK_ULONG n = sig.size();
    return p11->C_Sign(s, data.data(), data.size(), sig.data(), &n);
  }

  // In a forked child: C_Initialize afresh (the parent's state is not the
  // child's), `n` signatures, then exit() without C_Finalize, C_Logout or
  // C_CloseSession, as a mail client quits. The exit code says what failed.
  [[noreturn]] void child_signs(int n) {
    int code = 0;
    CK_SESSION_HANDLE s = 0;
    if (p11->C_Initialize(nullptr) != CKR_OK) code = 10;
    if (!code && p11->C_OpenSession(slot, CKF_SERIAL_SESSION, nullptr, nullptr, &s) != CKR_OK)
      code = 11;
    std::string pin = kUserPin;
    if (!code &&
        p11->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()) != CKR_OK)
      code = 12;
    if (!code && (priv = private_key(s)) == CK_INVALID_HANDLE) code = 13;
    for (int i = 0; i < n && !code; ++i)
      if (sign_rv(s) != CKR_OK) code = 14;
    std::exit(code);
  }

  CK_SLOT_ID slot = 0;
  CK_OBJECT_HANDLE pub = 0, priv = 0;
};

TEST_F(AuditTest, AProcessThatExitsWithoutFinalizeHasEveryUseRecorded) {
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) child_signs(25);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(uses_of(pid), 25);
}

// fork() while this process has rows queued and its writer thread running:
// the child's C_Initialize works, its rows are its own, and no row is
// written twice (the child never writes what the parent queued).
TEST_F(AuditTest, ForkWithRowsQueuedWritesEachRowOnce) {
  CK_SESSION_HANDLE s = user_session(slot);
  for (int i = 0; i < 5; ++i) ASSERT_EQ(sign_rv(s), CKR_OK);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) child_signs(7);
  ASSERT_EQ(sign_rv(s), CKR_OK);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_EQ(WEXITSTATUS(status), 0);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(uses_of(getpid()), 6);
  EXPECT_EQ(uses_of(pid), 7);
  EXPECT_EQ(sql_count("SELECT sum(count) FROM audit"), 13);
}

// What NSS passes: no thread of ours, so each row is written before
// C_Sign returns.
TEST_F(AuditTest, WithoutThreadsEachRowIsWrittenBeforeTheCallReturns) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_C_INITIALIZE_ARGS nss = {};
  nss.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
  ASSERT_EQ(p11->C_Initialize(&nss), CKR_OK);
  CK_SESSION_HANDLE s = user_session(slot);
  priv = private_key(s);
  ASSERT_EQ(sign_rv(s), CKR_OK);
  EXPECT_EQ(uses_of(getpid()), 1);
  ASSERT_EQ(sign_rv(s), CKR_OK);
  EXPECT_EQ(uses_of(getpid()), 2);
}

// With a writer thread, queued rows reach the store while the process goes
// on, with no C_Logout or C_CloseSession to write them (the writer waits at
// most 100 ms; the test gives it 30 s on a loaded machine).
TEST_F(AuditTest, QueuedRowsReachTheStoreWhileTheProcessRuns) {
  CK_SESSION_HANDLE s = user_session(slot);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(sign_rv(s), CKR_OK);
  EXPECT_EQ(wait_for_uses(3), 3);
}

// When rows cannot be written (here: the audit table is gone), the next key
// use is refused with CKR_DEVICE_ERROR, not signed unrecorded; once the
// store takes rows again, the queued ones and the new one are written.
TEST_F(AuditTest, AUseThatCannotBeRecordedReleasesNoSignature) {
  CK_SESSION_HANDLE s = user_session(slot);
  ASSERT_EQ(sign_rv(s), CKR_OK);
  sql("ALTER TABLE audit RENAME TO audit_away");
  ASSERT_EQ(sign_rv(s), CKR_OK);        // queued: nothing has failed yet
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);  // its write fails: the rows stay queued
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  EXPECT_EQ(sign_rv(s), CKR_DEVICE_ERROR);
  EXPECT_EQ(sign_rv(s), CKR_DEVICE_ERROR);
  sql("ALTER TABLE audit_away RENAME TO audit");
  ASSERT_EQ(sign_rv(s), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(uses_of(getpid()), 3) << "the two queued uses and the last; refused ones are no use";
}

// Identical uses (the same second, key, mechanism, operation and process)
// are one row with their count, whether they were queued together or
// written in separate batches; a different use in between starts a row.
TEST_F(AuditTest, IdenticalUsesOfOneSecondAreOneRowWithTheirCount) {
  CK_SESSION_HANDLE s = user_session(slot);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(sign_rv(s), CKR_OK);
  // Let the writer write those, then more of the same: added to its row.
  ASSERT_EQ(wait_for_uses(40), 40);
  for (int i = 0; i < 40; ++i) ASSERT_EQ(sign_rv(s), CKR_OK);
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(uses_of(getpid()), 80) << "every use counted";
  EXPECT_EQ(rows_of(getpid()), seconds_of(getpid())) << "one row per second of the same use";
  EXPECT_LE(rows_of(getpid()), 80);

  // Alternating mechanisms: each change of kind is a new row.
  ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
  sql("DELETE FROM audit");
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(sign_rv(s, CKM_ECDSA_SHA256), CKR_OK);
    ASSERT_EQ(sign_rv(s, CKM_ECDSA_SHA256), CKR_OK);
    ASSERT_EQ(sign_rv(s, CKM_ECDSA), CKR_OK);
  }
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  const std::string mine = " FROM audit WHERE pid = " + std::to_string(getpid());
  EXPECT_EQ(sql_count("SELECT sum(count)" + mine +
                      " AND mechanism = " + std::to_string(CKM_ECDSA_SHA256)),
            6);
  EXPECT_EQ(sql_count("SELECT sum(count)" + mine + " AND mechanism = " + std::to_string(CKM_ECDSA)),
            3);
  EXPECT_EQ(sql_count("SELECT count(*)" + mine + " AND mechanism = " + std::to_string(CKM_ECDSA)),
            3)
      << "a row is never added to across a different use";
  EXPECT_GE(rows_of(getpid()), 6);
}

// Without a writer thread (NSS) each use is written before its call
// returns, and still adds to the row of the same uses.
TEST_F(AuditTest, WithoutThreadsIdenticalUsesAddToOneRow) {
  ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  CK_C_INITIALIZE_ARGS nss = {};
  nss.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
  ASSERT_EQ(p11->C_Initialize(&nss), CKR_OK);
  CK_SESSION_HANDLE s = user_session(slot);
  priv = private_key(s);
  for (int i = 1; i <= 20; ++i) {
    ASSERT_EQ(sign_rv(s), CKR_OK);
    ASSERT_EQ(uses_of(getpid()), i);
  }
  EXPECT_EQ(rows_of(getpid()), seconds_of(getpid()));
}

}  // namespace
}  // namespace tkt
