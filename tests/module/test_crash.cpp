// Crash safety and several writers (docs/store-format.md): a child process
// that creates, changes and destroys token objects is killed with SIGKILL at
// many different points; each time the token opens again, every change
// whose call returned CKR_OK is there, intact, and the store is not corrupt.
// Two processes writing one token at once lose nothing.
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <optional>

#include "fixture.h"

namespace tkt {
namespace {

// The writers' deterministic program: step k creates object k, changes the
// value of object k-1, or destroys object k-5 (made at a step k-5 = 0 mod 6,
// which nothing else touches).
enum class Kind { kCreate, kSet, kDestroy };
struct Step {
  Kind kind;
  int target;
};
Step step(int k) {
  if (k % 3 != 2) return {Kind::kCreate, k};
  if (k % 6 == 2) return {Kind::kSet, k - 1};
  return {Kind::kDestroy, k - 5};
}

std::string label_of(const std::string& prefix, int target) {
  return prefix + "-" + std::to_string(target);
}

// Object `target`'s value, version 0 (created) or 1 (changed): 200 bytes
// that differ per object, so a mixed-up or torn value shows.
Bytes value_of(const std::string& prefix, int target, int version) {
  Bytes v(200);
  std::string tag = label_of(prefix, target) + "/v" + std::to_string(version) + "/";
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<unsigned char>(tag[i % tag.size()] ^ (i * 31));
  return v;
}

using State = std::map<std::string, Bytes>;  // label -> value

void apply(State& s, const std::string& prefix, int k) {
  Step st = step(k);
  std::string l = label_of(prefix, st.target);
  if (st.kind == Kind::kCreate) s[l] = value_of(prefix, st.target, 0);
  if (st.kind == Kind::kSet) s[l] = value_of(prefix, st.target, 1);
  if (st.kind == Kind::kDestroy) s.erase(l);
}

// In a forked child: runs steps [0, count) (count < 0: until killed) with
// prefix, writing each finished step's number to `report` right after its
// call returned CKR_OK. Never returns.
[[noreturn]] void writer(CK_FUNCTION_LIST* p11, CK_SLOT_ID slot, const std::string& prefix,
                         int count, int report) {
  if (p11->C_Initialize(nullptr) != CKR_OK) _exit(10);
  CK_SESSION_HANDLE s = 0;
  if (p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s) != CKR_OK)
    _exit(11);
  std::string pin = kUserPin;
  if (p11->C_Login(s, CKU_USER, reinterpret_cast<CK_UTF8CHAR*>(pin.data()), pin.size()) != CKR_OK)
    _exit(12);
  std::map<int, CK_OBJECT_HANDLE> handles;
  for (int k = 0; count < 0 || k < count; ++k) {
    Step st = step(k);
    CK_RV rv = CKR_OK;
    if (st.kind == Kind::kCreate) {
      Bytes v = value_of(prefix, st.target, 0);
      Template t;
      t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).flag(CKA_PRIVATE, st.target % 2 == 0);
      t.text(CKA_APPLICATION, "crash").text(CKA_LABEL, label_of(prefix, st.target));
      t.bytes(CKA_VALUE, v);
      rv = p11->C_CreateObject(s, t.data(), t.size(), &handles[st.target]);
    } else if (st.kind == Kind::kSet) {
      Template t;
      t.bytes(CKA_VALUE, value_of(prefix, st.target, 1));
      rv = p11->C_SetAttributeValue(s, handles.at(st.target), t.data(), t.size());
    } else {
      rv = p11->C_DestroyObject(s, handles.at(st.target));
    }
    if (rv != CKR_OK) _exit(20);
    if (write(report, &k, sizeof k) != static_cast<ssize_t>(sizeof k)) _exit(21);
  }
  _exit(0);  // no C_Finalize: every change must already be durable
}

class CrashTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    slot = make_token("crash");
  }

  // What the token holds now, read through a freshly initialised module.
  State token_state() {
    reinitialize();
    CK_SESSION_HANDLE s = user_session(slot);
    State out;
    for (CK_OBJECT_HANDLE o : find(s, Template().text(CKA_APPLICATION, "crash"))) {
      Bytes label = attr(s, o, CKA_LABEL);
      out[std::string(label.begin(), label.end())] = attr(s, o, CKA_VALUE);
    }
    p11->C_CloseSession(s);
    return out;
  }

  std::string integrity() {
    sqlite3* db = nullptr;
    std::string result = "cannot open";
    if (sqlite3_open_v2(db_path(slot).c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        result = reinterpret_cast<const char*>(sqlite3_column_text(st, 0));
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return result;
  }

  CK_SLOT_ID slot = 0;
};

// Reads every step number the writer reported, until `want` of them (or the
// pipe's end when want < 0). Returns how many steps are acknowledged.
int read_reports(int fd, int have, int want) {
  while (want < 0 || have < want) {
    int k = 0;
    ssize_t n = read(fd, &k, sizeof k);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof k)) break;
    EXPECT_EQ(k, have) << "steps are reported in order";
    have = k + 1;
  }
  return have;
}

TEST_F(CrashTest, KilledWriterLosesNoCommittedChange) {
  State expected;  // what earlier rounds left, as found after each kill
  const int kRounds = 36;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("kill point " + std::to_string(round));
    std::string prefix = "r" + std::to_string(round);
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      writer(p11, slot, prefix, -1, fds[1]);
    }
    close(fds[1]);
    // Kill points: after 0..22 acknowledged steps, plus 0..3 ms, so that
    // the kill lands before, inside and after the calls and their commits.
    int acked = read_reports(fds[0], 0, (round * 5) % 23);
    usleep(static_cast<useconds_t>((round * 397) % 3000));
    ASSERT_EQ(kill(pid, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << "the writer stopped by itself, status " << status;
    acked = read_reports(fds[0], acked, -1);  // reports written before it died
    close(fds[0]);

    State before = expected, after = expected;
    for (int k = 0; k < acked; ++k) apply(before, prefix, k);
    after = before;
    apply(after, prefix, acked);  // the step in flight may or may not have landed
    ASSERT_EQ(integrity(), "ok");
    State found = token_state();
    ASSERT_TRUE(found == before || found == after)
        << acked << " steps acknowledged; token holds " << found.size() << " objects, expected "
        << before.size() << " or " << after.size();
    expected = found;
  }
  EXPECT_GT(expected.size(), 30u);
}

TEST_F(CrashTest, TwoWritersAtOnceLoseNothing) {
  const int kSteps = 60;
  pid_t pids[2];
  int fds[2][2];
  const char* prefixes[2] = {"a", "b"};
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(pipe(fds[i]), 0);
    pids[i] = fork();
    ASSERT_GE(pids[i], 0);
    if (pids[i] == 0) {
      close(fds[i][0]);
      writer(p11, slot, prefixes[i], kSteps, fds[i][1]);
    }
    close(fds[i][1]);
  }
  State expected;
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(read_reports(fds[i][0], 0, -1), kSteps);
    close(fds[i][0]);
    int status = 0;
    ASSERT_EQ(waitpid(pids[i], &status, 0), pids[i]);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
    for (int k = 0; k < kSteps; ++k) apply(expected, prefixes[i], k);
  }
  EXPECT_EQ(integrity(), "ok");
  State found = token_state();
  EXPECT_EQ(found.size(), expected.size());
  EXPECT_TRUE(found == expected);
}

}  // namespace
}  // namespace tkt
