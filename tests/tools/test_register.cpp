// tokenkit register / unregister against real NSS databases (judged by NSS's
// own modutil and certutil), a Thunderbird profile laid out as Thunderbird
// lays it out, and p11-kit (judged by p11-kit list-modules as a non-root user).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>

#include <array>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "mailclients.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

class Register : public ::testing::Test {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>("tokenkit", "mail");
    token_->write_rsa();
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
    home_ = token_->dir() + "/home";
    fs::create_directories(home_);
    env_["HOME"] = home_;
    env_["XDG_CONFIG_HOME"] = home_ + "/.config";
  }
  ProcessResult tool(std::vector<std::string> args) {
    args.insert(args.begin(), TOKENKIT_BINARY);
    return run(args, env_);
  }
  std::string modules(const std::string& db) {
    return run_ok({"modutil", "-list", "-dbdir", "sql:" + db}, env_);
  }
  // A profile as Thunderbird leaves one: profiles.ini naming it, prefs.js
  // with two identities.
  std::string make_profile() {
    const std::string tb = home_ + "/.thunderbird";
    fs::create_directories(tb + "/x1y2z3.default-esr");
    write_file(tb + "/profiles.ini",
               "[Profile0]\nName=default-esr\nIsRelative=1\nPath=x1y2z3.default-esr\n\n"
               "[Install4F96D1932A9F858E]\nDefault=x1y2z3.default-esr\nLocked=1\n\n"
               "[General]\nStartWithLastProfile=1\nVersion=2\n");
    const std::string dir = tb + "/x1y2z3.default-esr";
    write_file(dir + "/prefs.js",
               "// Mozilla User Preferences\n"
               "user_pref(\"mail.identity.id1.fullName\", \"Carol\");\n"
               "user_pref(\"mail.identity.id1.useremail\", \"carol@example.net\");\n"
               "user_pref(\"mail.identity.id2.fullName\", \"Alice Example\");\n"
               "user_pref(\"mail.identity.id2.useremail\", \"Alice@Example.org\");\n"
               "user_pref(\"mail.identity.id2.reply_on_top\", 1);\n");
    return dir;
  }
  std::unique_ptr<FreshToken> token_;
  Env env_;
  std::string home_;
};

// The dbKey as Thunderbird computes it, rebuilt from `openssl asn1parse`'s
// offsets (not by the code under test): 8 zero bytes, serial length, issuer
// length, serial content octets, issuer DER.
std::string expected_db_key(const std::string& cert_der_path) {
  const std::string der = read_file(cert_der_path);
  auto out = run_ok({"openssl", "asn1parse", "-inform", "DER", "-in", cert_der_path});
  // "    4:d=1  hl=4 l= 714 cons: SEQUENCE"
  std::regex line_re(R"(^\s*(\d+):d=(\d+)\s+hl=(\d+)\s+l=\s*(\d+)\s+(\w+):\s*(\S+))");
  std::istringstream in(out);
  std::string line;
  std::vector<std::array<std::size_t, 3>> tbs_items;  // offset, hl, l at depth 2
  std::vector<std::string> kinds;
  while (std::getline(in, line)) {
    std::smatch m;
    if (!std::regex_search(line, m, line_re) || m[2] != "2") continue;
    tbs_items.push_back({std::stoul(m[1]), std::stoul(m[3]), std::stoul(m[4])});
    kinds.push_back(m[6]);
  }
  // [0] version, INTEGER serial, SEQUENCE algorithm, SEQUENCE issuer.
  EXPECT_EQ(kinds.at(1), "INTEGER");
  const auto serial = tbs_items.at(1), issuer = tbs_items.at(3);
  std::string key(8, '\0');
  auto put32 = [&](std::size_t v) {
    for (int s = 24; s >= 0; s -= 8) key.push_back(static_cast<char>((v >> s) & 0xff));
  };
  put32(serial[2]);
  put32(issuer[1] + issuer[2]);
  key += der.substr(serial[0] + serial[1], serial[2]);
  key += der.substr(issuer[0], issuer[1] + issuer[2]);
  auto b64 = run({"openssl", "base64", "-A"}, {}, key);
  EXPECT_EQ(b64.exit_code, 0) << b64.err;
  return b64.out;
}

std::vector<std::string> lines_with(const std::string& text, const std::string& what) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (line.find(what) != std::string::npos) out.push_back(line);
  return out;
}

}  // namespace

TEST(MailParsers, DbKeyIsThunderbirdsLayout) {
  const auto& k = test_keys();
  const std::string der = read_file(k.rsa_cert_der);
  const std::string want = expected_db_key(k.rsa_cert_der);
  ASSERT_FALSE(want.empty());
  EXPECT_EQ(tokenkit::mail::cert_db_key(token::Bytes(der.begin(), der.end())), want);
  const std::string ec = read_file(k.ec_cert_der);
  EXPECT_EQ(tokenkit::mail::cert_db_key(token::Bytes(ec.begin(), ec.end())),
            expected_db_key(k.ec_cert_der));
}

TEST(MailParsers, PrefsAndIdentities) {
  auto prefs = tokenkit::mail::parse_prefs(
      "// comment\nuser_pref(\"a.b\", \"x \\\"q\\\" y\");\n  pref('c', true);\n"
      "user_pref(\"mail.identity.id7.useremail\", \" Bob@Example.org\");\nnot a pref\n"
      "user_pref(\"broken\", \"unterminated);\n");
  ASSERT_EQ(prefs.size(), 3u);
  EXPECT_EQ(prefs[0].value, "x \"q\" y");
  EXPECT_TRUE(prefs[0].is_string);
  EXPECT_EQ(prefs[1].name, "c");
  EXPECT_EQ(prefs[1].value, "true");
  EXPECT_EQ(tokenkit::mail::identities_for_email(prefs, "bob@example.ORG"),
            std::vector<std::string>{"id7"});
  EXPECT_TRUE(tokenkit::mail::identities_for_email(prefs, "eve@example.org").empty());
  // Round trip through the writer.
  tokenkit::mail::Pref p{"n", tokenkit::mail::quote_pref_string("a\"b\\c"), "a\"b\\c", true};
  auto again = tokenkit::mail::parse_prefs(tokenkit::mail::edit_prefs_text("", {p}, {}));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].value, "a\"b\\c");
}

TEST(MailParsers, ProfilesIniAndModutil) {
  auto ps = tokenkit::mail::profiles_from_ini(
      "[Profile1]\nName=other\nIsRelative=0\nPath=/abs/p\nDefault=1\n"
      "[Profile0]\nName=main\nIsRelative=1\nPath=ab.main\n"
      "[InstallXYZ]\nDefault=ab.main\n",
      "/h/.thunderbird");
  ASSERT_EQ(ps.size(), 2u);
  EXPECT_EQ(ps[0].path, "/abs/p");
  EXPECT_FALSE(ps[0].is_default);  // the install's default wins over Default=1
  EXPECT_EQ(ps[1].path, "/h/.thunderbird/ab.main");
  EXPECT_TRUE(ps[1].is_default);
  auto ms = tokenkit::mail::parse_modutil_list(
      "\nListing of PKCS #11 Modules\n-----\n  1. NSS Internal PKCS #11 Module\n"
      "\t   uri: pkcs11:x\n\t slots: 2 slots attached\n\n  2. tokenkit\n"
      "\tlibrary name: /usr/lib/tokenkit-pkcs11.so\n\t   uri: pkcs11:y\n");
  ASSERT_EQ(ms.size(), 2u);
  EXPECT_EQ(ms[0].library, "");
  EXPECT_EQ(ms[1].name, "tokenkit");
  EXPECT_EQ(ms[1].library, "/usr/lib/tokenkit-pkcs11.so");
}

TEST_F(Register, NssDatabaseShowsTheModuleAndListsTheCertificateWithoutAPin) {
  const std::string db = token_->dir() + "/nssdb";
  auto r = tool({"register", "--nss-db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("added module \"tokenkit\""), std::string::npos) << r.out;
  const std::string list = modules(db);
  EXPECT_NE(list.find("tokenkit"), std::string::npos) << list;
  EXPECT_NE(list.find(token_->module()), std::string::npos) << list;
  // No PIN on stdin: NSS must list the token's certificate without logging in.
  auto certs = run({"certutil", "-L", "-h", "all", "-d", "sql:" + db}, env_, "");
  EXPECT_EQ(certs.exit_code, 0) << certs.err;
  EXPECT_EQ(lines_with(certs.out, "mail:alice").size(), 1u) << certs.out;

  const std::string before = read_file(db + "/pkcs11.txt");
  r = tool({"register", "--nss-db", db, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_FALSE(j["changed"].get<bool>());
  EXPECT_EQ(read_file(db + "/pkcs11.txt"), before);

  r = tool({"unregister", "--nss-db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("removed module \"tokenkit\""), std::string::npos) << r.out;
  EXPECT_EQ(modules(db).find(token_->module()), std::string::npos);
  r = tool({"unregister", "--nss-db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Nothing needed changing"), std::string::npos) << r.out;
}

TEST_F(Register, CaFileIsTrustedForEmailOnceAndRemovedAgain) {
  const std::string db = token_->dir() + "/nssdb";
  // A CA made by openssl for this test.
  const std::string ca = token_->dir() + "/ca.pem";
  run_ok({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
          token_->dir() + "/ca.key", "-out", ca, "-days", "30", "-subj", "/CN=Mail Test CA",
          "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign"});
  write_file(token_->dir() + "/notacert.pem", "hello\n");
  auto r = tool({"register", "--nss-db", db, "--ca-file", token_->dir() + "/notacert.pem"});
  EXPECT_EQ(r.exit_code, 10) << r.out << r.err;
  EXPECT_FALSE(fs::exists(db));  // refused before anything was written

  r = tool({"register", "--nss-db", db, "--ca-file", ca});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto certs = run({"certutil", "-L", "-d", "sql:" + db}, env_, "");
  auto line = lines_with(certs.out, "tokenkit CA - Mail Test CA");
  ASSERT_EQ(line.size(), 1u) << certs.out;
  EXPECT_NE(line[0].find(",C,"), std::string::npos) << line[0];
  r = tool({"register", "--nss-db", db, "--ca-file", ca});
  EXPECT_NE(r.out.find("Nothing needed changing"), std::string::npos) << r.out;
  r = tool({"unregister", "--nss-db", db, "--ca-file", ca});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  certs = run({"certutil", "-L", "-d", "sql:" + db}, env_, "");
  EXPECT_TRUE(lines_with(certs.out, "tokenkit CA").empty()) << certs.out;
}

TEST_F(Register, DefaultNssDatabaseIsCreatedUnderHome) {
  auto r = tool({"register", "--nss-db"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(fs::exists(home_ + "/.pki/nssdb/cert9.db"));
  EXPECT_NE(modules(home_ + "/.pki/nssdb").find(token_->module()), std::string::npos);
}

TEST(RegisterOtherModule, AnyModuleIsRegisteredUnderItsFileName) {
  FreshToken t("softhsm2", "hsm");
  Env env = t.env();
  env["HOME"] = t.dir();
  const std::string db = t.dir() + "/nssdb";
  auto r =
      run({TOKENKIT_BINARY, "register", "--nss-db", db, "--module", t.module(), "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["name"], "softhsm2");
  auto list = run_ok({"modutil", "-list", "-dbdir", "sql:" + db}, env);
  EXPECT_NE(list.find("softhsm2"), std::string::npos) << list;
  EXPECT_NE(list.find("token: hsm"), std::string::npos) << list;
  r = run({TOKENKIT_BINARY, "unregister", "--nss-db", db, "--module", t.module()}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(run_ok({"modutil", "-list", "-dbdir", "sql:" + db}, env).find(t.module()),
            std::string::npos);
}

TEST_F(Register, ModuleUnderAnotherNameIsAConflictAndNothingChanges) {
  const std::string db = token_->dir() + "/nssdb";
  ASSERT_EQ(tool({"register", "--nss-db", db, "--name", "mytoken"}).exit_code, 0);
  const std::string before = read_file(db + "/pkcs11.txt");
  auto r = tool({"register", "--nss-db", db});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("as module \"mytoken\""), std::string::npos) << r.err;
  EXPECT_EQ(read_file(db + "/pkcs11.txt"), before);
}

TEST_F(Register, AFileThatIsNotAModuleIsRefusedBeforeAnythingIsWritten) {
  const std::string db = token_->dir() + "/nssdb";
  write_file(token_->dir() + "/notamodule.so", "just text");
  auto r = tool({"register", "--nss-db", db, "--module", token_->dir() + "/notamodule.so"});
  EXPECT_EQ(r.exit_code, 8) << r.out << r.err;
  EXPECT_FALSE(fs::exists(db));
}

TEST_F(Register, ThunderbirdProfileGetsTheModuleAndTheIdentitysCertificate) {
  const std::string dir = make_profile();
  auto r = tool({"register", "--thunderbird", "--identity", "alice@example.org", "--key",
                 "pkcs11:token=mail;object=alice;type=private"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(modules(dir).find(token_->module()), std::string::npos);
  auto certs = run({"certutil", "-L", "-h", "all", "-d", "sql:" + dir}, env_, "");
  EXPECT_EQ(lines_with(certs.out, "mail:alice").size(), 1u) << certs.out;

  const std::string user_js = read_file(dir + "/user.js");
  auto prefs = tokenkit::mail::parse_prefs(user_js);
  std::map<std::string, std::string> m;
  for (const auto& p : prefs) m[p.name] = p.value;
  const std::string key = expected_db_key(test_keys().rsa_cert_der);
  EXPECT_EQ(m["mail.identity.id2.signing_cert_dbkey"], key) << user_js;
  EXPECT_EQ(m["mail.identity.id2.encryption_cert_dbkey"], key);
  EXPECT_EQ(m["mail.identity.id2.signing_cert_name"], "mail:alice");
  EXPECT_EQ(m["mail.identity.id2.sign_mail"], "true");
  EXPECT_EQ(m.count("mail.identity.id1.signing_cert_dbkey"), 0u);

  // Again: nothing changes, byte for byte.
  r = tool({"register", "--thunderbird", "default-esr", "--identity", "alice@example.org", "--key",
            "pkcs11:token=mail;object=alice"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("Nothing needed changing"), std::string::npos) << r.out;
  EXPECT_EQ(read_file(dir + "/user.js"), user_js);

  // Thunderbird copies user.js into prefs.js when it runs; unregister takes
  // both copies away and the module out of the profile's database.
  write_file(dir + "/prefs.js", read_file(dir + "/prefs.js") + user_js);
  r = tool({"unregister", "--thunderbird", "--identity", "alice@example.org"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(lines_with(read_file(dir + "/user.js"), "mail.identity.id2").empty());
  const std::string prefs_js = read_file(dir + "/prefs.js");
  EXPECT_TRUE(lines_with(prefs_js, "cert_dbkey").empty()) << prefs_js;
  EXPECT_EQ(lines_with(prefs_js, "mail.identity.id2.useremail").size(), 1u);
  EXPECT_TRUE(fs::exists(dir + "/prefs.js.tokenkit-backup"));
  EXPECT_EQ(modules(dir).find(token_->module()), std::string::npos);
}

TEST_F(Register, UnknownIdentityNamesTheAddressAndChangesNothing) {
  const std::string dir = make_profile();
  auto r = tool({"register", "--profile-dir", dir, "--identity", "eve@example.org", "--key",
                 "pkcs11:token=mail;object=alice"});
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("eve@example.org"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("carol@example.net"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/cert9.db"));
  EXPECT_FALSE(fs::exists(dir + "/user.js"));
}

TEST_F(Register, ARunningThunderbirdKeepsItsProfileUntouched) {
  const std::string dir = make_profile();
  // What a running Thunderbird holds: an fcntl lock on .parentlock (taken
  // here, by this process, as Thunderbird takes it).
  int fd = ::open((dir + "/.parentlock").c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  ASSERT_EQ(::fcntl(fd, F_SETLK, &fl), 0);
  auto r = tool({"register", "--thunderbird", "--identity", "alice@example.org", "--key",
                 "pkcs11:token=mail;object=alice"});
  ::close(fd);
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("pid " + std::to_string(::getpid())), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/cert9.db"));
  EXPECT_FALSE(fs::exists(dir + "/user.js"));

  // The other lock, a symlink "lock" -> "IP:+PID" of a live process.
  fs::create_symlink("127.0.1.1:+" + std::to_string(::getpid()), dir + "/lock");
  r = tool({"register", "--profile-dir", dir});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_FALSE(fs::exists(dir + "/cert9.db"));
  // A stale one (no such process) does not stop it.
  fs::remove(dir + "/lock");
  fs::create_symlink("127.0.1.1:+999999999", dir + "/lock");
  r = tool({"register", "--profile-dir", dir});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Another program holding an NSS database, as NSS's own tools would meet
// it: a python3 process (started here, stopped at the end) holds a lock the
// way that program would.
class HeldDatabase {
 public:
  // Runs `script` (python3) in the background with `args`; returns once it
  // printed "held".
  HeldDatabase(const std::string& dir, const std::string& script,
               const std::vector<std::string>& args) {
    const std::string ready = dir + "/held.out";
    std::string cmd = "exec python3 -c '" + script + "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    auto r = run({"sh", "-c", "(" + cmd + ") >" + ready + " 2>&1 & echo $!"});
    pid_ = std::stoi(r.out);
    for (int i = 0; i < 300 && read_file_or_empty(ready).find("held") == std::string::npos; ++i)
      ::usleep(50 * 1000);
    EXPECT_NE(read_file_or_empty(ready).find("held"), std::string::npos)
        << read_file_or_empty(ready);
  }
  ~HeldDatabase() { release(); }
  HeldDatabase(const HeldDatabase&) = delete;
  HeldDatabase& operator=(const HeldDatabase&) = delete;
  void release() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    // Not this process's child (the shell that started it has gone): wait
    // until it is gone.
    for (int i = 0; i < 100 && ::kill(pid_, 0) == 0; ++i) ::usleep(50 * 1000);
    pid_ = -1;
  }
  int pid() const { return pid_; }

 private:
  static std::string read_file_or_empty(const std::string& p) {
    return fs::exists(p) ? read_file(p) : std::string();
  }
  int pid_ = -1;
};

// Holds SQLite's lock on each file: BEGIN EXCLUSIVE (or IMMEDIATE), for at
// most a minute.
const char* const kHoldSqlite =
    "import sqlite3, sys, time\n"
    "held = []\n"
    "for f in sys.argv[2:]:\n"
    "    c = sqlite3.connect(f, isolation_level=None)\n"
    "    c.execute(\"BEGIN \" + sys.argv[1])\n"
    "    held.append(c)\n"
    "print(\"held\", flush=True)\n"
    "time.sleep(60)\n";

// Has the files open, as a program using a legacy DBM database does.
const char* const kHoldOpen =
    "import sys, time\n"
    "held = [open(f, \"rb\") for f in sys.argv[1:]]\n"
    "print(\"held\", flush=True)\n"
    "time.sleep(60)\n";

TEST_F(Register, ALockedNssDatabaseIsNamedAndLeftUnchanged) {
  const std::string db = token_->dir() + "/nssdb";
  fs::create_directories(db);
  run_ok({"certutil", "-N", "-d", "sql:" + db, "--empty-password"}, env_);
  const std::string before = read_file(db + "/pkcs11.txt");
  for (const char* mode : {"EXCLUSIVE", "IMMEDIATE"}) {
    HeldDatabase held(token_->dir(), kHoldSqlite, {mode, db + "/cert9.db", db + "/key4.db"});
    // What NSS's own tool says meanwhile: nothing that names a lock.
    auto m =
        run({"modutil", "-add", "x", "-libfile", token_->module(), "-dbdir", "sql:" + db, "-force"},
            env_);
    EXPECT_NE(m.exit_code, 0) << mode << ": " << m.out;
    auto r = tool({"register", "--nss-db", db});
    EXPECT_EQ(r.exit_code, 13) << mode << ": " << r.out << r.err;
    for (const std::string& s :
         std::vector<std::string>{"the NSS database " + db + " is in use",
                                  "python3 (pid " + std::to_string(held.pid()) + ")",
                                  "SQLite lock on " + db + "/cert9.db", "nothing was changed"}) {
      EXPECT_NE(r.err.find(s), std::string::npos) << mode << ": " << s << " in " << r.err;
    }
    EXPECT_EQ(read_file(db + "/pkcs11.txt"), before) << mode;
    EXPECT_FALSE(fs::exists(db + "/pkcs11.txt.tokenkit-backup")) << mode;
    // unregister and a CA to trust are refused the same way.
    EXPECT_EQ(tool({"unregister", "--nss-db", db}).exit_code, 13) << mode;
  }
  // Once the other program let go, the same command works.
  auto r = tool({"register", "--nss-db", db});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(modules(db).find(token_->module()), std::string::npos);
}

TEST_F(Register, AProfileWhoseDatabaseIsHeldIsNotTouchedAtAll) {
  const std::string dir = make_profile();
  run_ok({"certutil", "-N", "-d", "sql:" + dir, "--empty-password"}, env_);
  const std::string nssdb = token_->dir() + "/nssdb";
  const std::string prefs = read_file(dir + "/prefs.js");
  HeldDatabase held(token_->dir(), kHoldSqlite, {"EXCLUSIVE", dir + "/key4.db"});
  // The profile's database is held: neither the profile nor the other
  // database named in the same command changes.
  auto r = tool({"register", "--nss-db", nssdb, "--thunderbird", "--identity", "alice@example.org",
                 "--key", "pkcs11:token=mail;object=alice"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  EXPECT_NE(r.err.find("SQLite lock on " + dir + "/key4.db"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir + "/prefs.js"), prefs);
  EXPECT_FALSE(fs::exists(dir + "/user.js"));
  EXPECT_FALSE(fs::exists(nssdb));
}

TEST_F(Register, ALegacyDbmDatabaseOpenInAnotherProgramIsRefused) {
  // NSS's old format, made by NSS's modutil: cert8.db, key3.db, secmod.db.
  const std::string db = token_->dir() + "/dbm";
  fs::create_directories(db);
  run_ok({"modutil", "-create", "-dbdir", "dbm:" + db, "-force"}, env_);
  ASSERT_TRUE(fs::exists(db + "/cert8.db"));
  HeldDatabase held(token_->dir(), kHoldOpen, {db + "/cert8.db", db + "/key3.db"});
  auto r = tool({"register", "--nss-db", db});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;
  for (const std::string& s : std::vector<std::string>{
           "python3 (pid " + std::to_string(held.pid()) + ") has cert8.db open",
           "legacy DBM database", "nothing was changed"}) {
    EXPECT_NE(r.err.find(s), std::string::npos) << s << " in " << r.err;
  }
  EXPECT_FALSE(fs::exists(db + "/cert9.db"));
  EXPECT_FALSE(fs::exists(db + "/pkcs11.txt"));
  // Not held: still refused (NSS would stop to ask for the old database's
  // password to upgrade it, after creating cert9.db), and at once.
  held.release();
  r = tool({"register", "--nss-db", db});
  EXPECT_EQ(r.exit_code, 10) << r.out << r.err;
  EXPECT_NE(r.err.find("legacy DBM NSS database"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was changed"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(db + "/cert9.db"));
  EXPECT_FALSE(fs::exists(db + "/pkcs11.txt"));
}

TEST_F(Register, ADirectoryThatIsNotAProfileIsRefused) {
  const std::string dir = token_->dir() + "/notaprofile";
  fs::create_directories(dir);
  write_file(dir + "/notes.txt", "hello");
  auto r = tool({"register", "--profile-dir", dir});
  EXPECT_EQ(r.exit_code, 10) << r.out << r.err;
  EXPECT_NE(r.err.find("not a Thunderbird profile"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir + "/cert9.db"));
  r = tool({"register", "--thunderbird"});  // no profiles.ini at all
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.err.find("profiles.ini"), std::string::npos) << r.err;
}

TEST_F(Register, P11KitModuleFileIsSeenByANonRootUser) {
  // A name no system configuration uses, so only the user file can show it.
  const std::string name = "tkmail" + std::to_string(::getpid());
  auto r = tool({"register", "--p11-kit", "--name", name});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string file = home_ + "/.config/pkcs11/modules/" + name + ".module";
  ASSERT_TRUE(fs::exists(file));
  EXPECT_EQ(tokenkit::mail::p11kit_module_path(read_file(file)), token_->module());
  r = tool({"register", "--p11-kit", "--name", name});
  EXPECT_NE(r.out.find("Nothing needed changing"), std::string::npos) << r.out;
  // The same module under a second name is a conflict.
  r = tool({"register", "--p11-kit", "--name", name + "b"});
  EXPECT_EQ(r.exit_code, 13) << r.out << r.err;

  // p11-kit reads user configuration only for ordinary users: run it as
  // nobody, with this HOME (made readable for it).
  for (const auto& e : fs::recursive_directory_iterator(token_->dir()))
    ::chmod(e.path().c_str(), e.is_directory() ? 0755 : 0644);
  ::chmod(token_->dir().c_str(), 0755);
  std::vector<std::string> argv{"p11-kit", "list-modules"};
  if (::geteuid() == 0)
    argv.insert(argv.begin(), {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
  auto list = run(argv, env_);
  EXPECT_NE(list.out.find(name + ":"), std::string::npos) << list.out << list.err;

  r = tool({"unregister", "--p11-kit", "--name", name});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(fs::exists(file));
  list = run(argv, env_);
  EXPECT_EQ(list.out.find(name + ":"), std::string::npos) << list.out;
}

// A relative --module path is what the user typed in their working
// directory; the mail client loads from its own, so the NSS database must hold
// the absolute path.
TEST(RegisterOtherModule, ARelativeModulePathIsWrittenDownAbsolute) {
  FreshToken t("softhsm2", "hsm");
  Env env = t.env();
  env["HOME"] = t.dir();
  const std::string db = t.dir() + "/nssdb";
  const std::string relative = fs::relative(t.module(), fs::current_path()).string();
  ASSERT_TRUE(fs::path(relative).is_relative()) << relative;
  const std::string given = relative.find('/') == std::string::npos ? "./" + relative : relative;
  auto r = run({TOKENKIT_BINARY, "register", "--nss-db", db, "--module", given}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string absolute = fs::absolute(given).lexically_normal().string();
  const std::string list = run_ok({"modutil", "-list", "-dbdir", "sql:" + db}, env);
  EXPECT_NE(list.find("library name: " + absolute), std::string::npos) << list;
}
