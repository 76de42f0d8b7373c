// Several threads on one token at once, as applications that pass
// CKF_OS_LOCKING_OK do. C_Sign in different sessions runs in parallel; a
// logout, a destroyed key, a closed session, C_Finalize or a second thread
// on the same session, happening in another thread while signers run, ends
// their work with the standard's error or lets it finish with a valid
// signature: never a crash, never a wrong signature, never a key use
// missing from the audit table. Label "threads": scripts/checks/20-tsan.sh
// runs these under ThreadSanitizer.
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fixture.h"

namespace tkt {
namespace {

// What signers saw: valid and invalid signatures, and each error by call.
struct Tally {
  std::atomic<int> good{0}, bad{0};
  std::mutex mu;
  std::map<std::string, int> errors;
  void error(const char* call, CK_RV rv) {
    std::lock_guard<std::mutex> l(mu);
    ++errors[std::string(call) + " 0x" + to_hex(rv)];
  }
  static std::string to_hex(CK_RV rv) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%lx", rv);
    return buf;
  }
  // Every error seen is one of `allowed` ("C_Sign 0x91").
  std::string unexpected(const std::set<std::string>& allowed) {
    std::lock_guard<std::mutex> l(mu);
    std::string out;
    for (const auto& [what, n] : errors)
      if (!allowed.count(what)) out += what + " (" + std::to_string(n) + "x) ";
    return out;
  }
};

class ThreadsTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
    CK_C_INITIALIZE_ARGS args = {};
    args.flags = CKF_OS_LOCKING_OK;
    ASSERT_EQ(p11->C_Initialize(&args), CKR_OK);
    slot = make_token("threads");
    s = user_session(slot);
    gen_ec(s, kP256, "shared", &pub, &priv);
    key = public_key(attr(s, pub, CKA_EC_POINT));
    ASSERT_NE(key, nullptr);
  }
  void TearDown() override {
    EVP_PKEY_free(key);
    TokenTest::TearDown();
  }

  // The public key as OpenSSL sees it, from CKA_EC_POINT (DER OCTET STRING).
  static EVP_PKEY* public_key(const Bytes& der_point) {
    if (der_point.size() != 67) return nullptr;
    OSSL_PARAM_BLD* b = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
    OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, der_point.data() + 2, 65);
    OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
    EVP_PKEY* k = nullptr;
    if (EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
      k = nullptr;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(b);
    return k;
  }

  // OpenSSL's verdict on an r||s signature of `data` (ECDSA with SHA-256).
  bool valid(const Bytes& data, const Bytes& sig) const {
    if (sig.size() != 64) return false;
    ECDSA_SIG* es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(sig.data(), 32, nullptr), BN_bin2bn(sig.data() + 32, 32, nullptr));
    unsigned char* der = nullptr;
    int dlen = i2d_ECDSA_SIG(es, &der);
    EVP_MD_CTX* md = EVP_MD_CTX_new();
    bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
              EVP_DigestVerify(md, der, static_cast<size_t>(dlen), data.data(), data.size()) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
  }

  // One signature in `session`; false once the session (or the module) is
  // gone, so the signer stops.
  bool sign_once(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE k, const std::string& msg, Tally& t) {
    CK_MECHANISM m = {CKM_ECDSA_SHA256, nullptr, 0};
    Bytes data = to_bytes(msg);
    CK_RV rv = p11->C_SignInit(session, &m, k);
    if (rv != CKR_OK) {
      t.error("C_SignInit", rv);
      return rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    Bytes sig(64);
    CK_ULONG n = sig.size();
    rv = p11->C_Sign(session, data.data(), data.size(), sig.data(), &n);
    if (rv != CKR_OK) {
      t.error("C_Sign", rv);
      return rv != CKR_SESSION_HANDLE_INVALID && rv != CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    sig.resize(n);
    ++(valid(data, sig) ? t.good : t.bad);
    return true;
  }

  // Runs `threads` signers, each in a session of its own (opened here, in
  // `signers`), `rounds` signatures each or until their session is gone,
  // while `other` runs in this thread.
  void sign_while(int threads, int rounds, Tally& t, const std::function<void()>& other,
                  CK_OBJECT_HANDLE k = 0) {
    std::vector<CK_SESSION_HANDLE>& sessions = signers;
    sessions.clear();
    for (int i = 0; i < threads; ++i) sessions.push_back(open(slot, false));
    std::atomic<int> started{0};
    std::vector<std::thread> pool;
    for (int i = 0; i < threads; ++i) {
      pool.emplace_back([&, i] {
        ++started;
        for (int r = 0; r < rounds; ++r)
          if (!sign_once(sessions[i], k ? k : priv, std::to_string(i) + "/" + std::to_string(r), t))
            break;
      });
    }
    while (started.load() < threads) std::this_thread::yield();
    other();
    for (auto& th : pool) th.join();
  }

  int audit_rows() {
    sqlite3* db = nullptr;
    int n = -1;
    if (sqlite3_open_v2(db_path(slot).c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5000);
      sqlite3_stmt* st = nullptr;
      // Rows count identical uses of one second: the uses are their sum.
      std::string sql =
          "SELECT coalesce(sum(count), 0) FROM audit WHERE operation = 'sign' AND pid = " +
          std::to_string(getpid());
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
          sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    sqlite3_close(db);
    return n;
  }

  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE s = 0;
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  EVP_PKEY* key = nullptr;
  std::vector<CK_SESSION_HANDLE> signers;
};

TEST_F(ThreadsTest, SignersInTheirOwnSessionsAllSucceed) {
  Tally t;
  sign_while(4, 40, t, [] {});
  EXPECT_EQ(t.good.load(), 160);
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({}), "");
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);  // writes the queued audit rows
  EXPECT_EQ(audit_rows(), 160) << "every signature recorded, none lost between threads";
}

// 5.6: a logout ends the operations of every session of the token; one in
// another thread's C_Sign finishes (the key it holds stays alive), the next
// C_SignInit needs a login again.
TEST_F(ThreadsTest, LogoutWhileOthersSign) {
  Tally t;
  int logouts = 0;
  sign_while(3, 150, t, [&] {
    // The logouts begin once a first signature is out: a signer stops at
    // its first refused C_SignInit, so a logout before any thread got to
    // sign (seen under TSan on a loaded machine) ends all of them at once
    // and nothing would be signed while logouts come. Bounded: if no
    // signature ever comes, the check below says so.
    for (int w = 0; t.good.load() == 0 && w < 10000; ++w) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    for (int i = 0; i < 15; ++i) {
      if (p11->C_Logout(s) == CKR_OK) ++logouts;
      std::this_thread::yield();
      ASSERT_EQ(login(s, CKU_USER, kUserPin), CKR_OK);
    }
  });
  EXPECT_EQ(logouts, 15);
  EXPECT_GT(t.good.load(), 0);
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0x101",  // CKR_USER_NOT_LOGGED_IN
                          "C_Sign 0x91"}),     // CKR_OPERATION_NOT_INITIALIZED
            "");
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(audit_rows(), t.good.load()) << "exactly the signatures released";
}

// C_DestroyObject of the key in use: operations already holding it finish,
// later C_SignInit calls find no key.
TEST_F(ThreadsTest, KeyDestroyedWhileOthersSign) {
  Tally t;
  sign_while(3, 150, t, [&] {
    std::this_thread::yield();
    EXPECT_EQ(p11->C_DestroyObject(s, priv), CKR_OK);
  });
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0x60"}), "");  // CKR_KEY_HANDLE_INVALID
  Template label;
  label.text(CKA_LABEL, "shared").ulong(CKA_CLASS, CKO_PRIVATE_KEY);
  EXPECT_TRUE(find(s, label).empty());
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(audit_rows(), t.good.load());
}

// A session key (CKA_TOKEN false) goes with the session that made it, while
// signers in other sessions use it.
TEST_F(ThreadsTest, SessionKeyGoesWithItsSessionWhileOthersSign) {
  CK_SESSION_HANDLE owner = open(slot);
  CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, nullptr, 0};
  Template pt, kt;
  pt.bytes(CKA_EC_PARAMS, kP256).flag(CKA_TOKEN, false);
  kt.flag(CKA_TOKEN, false).flag(CKA_SIGN, true);
  CK_OBJECT_HANDLE spub = 0, spriv = 0;
  ASSERT_EQ(
      p11->C_GenerateKeyPair(owner, &m, pt.data(), pt.size(), kt.data(), kt.size(), &spub, &spriv),
      CKR_OK);
  EVP_PKEY_free(key);
  key = public_key(attr(owner, spub, CKA_EC_POINT));
  ASSERT_NE(key, nullptr);
  Tally t;
  sign_while(
      3, 150, t, [&] { EXPECT_EQ(p11->C_CloseSession(owner), CKR_OK); }, spriv);
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0x60"}), "");
}

// Sessions closed under signers: their next call finds no session.
TEST_F(ThreadsTest, SessionsClosedWhileTheySign) {
  Tally t;
  sign_while(4, 150, t, [&] {
    for (CK_SESSION_HANDLE h : signers) {
      std::this_thread::yield();
      EXPECT_EQ(p11->C_CloseSession(h), CKR_OK);
    }
  });
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0xb3", "C_Sign 0xb3"}), "");  // CKR_SESSION_HANDLE_INVALID
  ASSERT_EQ(p11->C_Logout(s), CKR_OK);
  EXPECT_EQ(audit_rows(), t.good.load());
}

// C_CloseAllSessions (which logs the user out) under signers.
TEST_F(ThreadsTest, AllSessionsClosedWhileTheySign) {
  Tally t;
  sign_while(3, 150, t, [&] {
    std::this_thread::yield();
    EXPECT_EQ(p11->C_CloseAllSessions(slot), CKR_OK);
  });
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0xb3", "C_Sign 0xb3"}), "");
  // A signature finished after its session closed is queued after that
  // C_CloseSession wrote the rows: another C_CloseSession writes it.
  ASSERT_EQ(p11->C_CloseSession(open(slot)), CKR_OK);
  EXPECT_EQ(audit_rows(), t.good.load());
}

// 6.7.7 forbids two threads on one session; the module must survive it:
// their calls run one after the other, and each either signs (validly, its
// own data) or gets the error the state machine gives.
TEST_F(ThreadsTest, OneSessionFromTwoThreads) {
  CK_SESSION_HANDLE shared = open(slot, false);
  Tally t;
  std::vector<std::thread> pool;
  for (int i = 0; i < 2; ++i) {
    pool.emplace_back([&, i] {
      for (int r = 0; r < 150; ++r)
        sign_once(shared, priv, "same session " + std::to_string(i) + "/" + std::to_string(r), t);
    });
  }
  for (auto& th : pool) th.join();
  EXPECT_GT(t.good.load(), 0);
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0x90",  // CKR_OPERATION_ACTIVE
                          "C_Sign 0x91"}),    // CKR_OPERATION_NOT_INITIALIZED
            "");
}

// C_Finalize while signers run (5.4 leaves it undefined; the module must
// not crash the host): every call after it fails, an operation already
// running finishes, and its key use is still recorded.
TEST_F(ThreadsTest, FinalizeWhileOthersSign) {
  Tally t;
  sign_while(3, 150, t, [&] {
    std::this_thread::yield();
    EXPECT_EQ(p11->C_Finalize(nullptr), CKR_OK);
  });
  EXPECT_EQ(t.bad.load(), 0);
  EXPECT_EQ(t.unexpected({"C_SignInit 0x190", "C_Sign 0x190"}), "");  // NOT_INITIALIZED
  EXPECT_EQ(audit_rows(), t.good.load());
  ASSERT_EQ(p11->C_Initialize(nullptr), CKR_OK);  // for TearDown
}

}  // namespace
}  // namespace tkt
