// tokenkit certs lookup against a real OpenLDAP slapd on 127.0.0.1 (its own
// config and database in a temporary directory), with certificates made by
// `openssl ca`: what it accepts, what it rejects and why, StartTLS and
// ldaps:// against a test CA, simple bind, limits, and directories that are
// down or never answer. The end-to-end case: lookup --store, smime encrypt
// --to, smime decrypt with the key on a fresh token.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "slapd.hpp"
#include "testca.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kPeople = "ou=people,dc=example,dc=org";

std::string person(const std::string& uid, const std::string& mail,
                   const std::vector<std::string>& cert_lines) {
  std::string e = "dn: uid=" + uid + "," + kPeople + "\nobjectClass: inetOrgPerson\nuid: " + uid +
                  "\ncn: " + uid + "\nsn: " + uid + "\nmail: " + mail + "\n";
  for (const auto& l : cert_lines) e += l;
  return e + "\n";
}

// One directory for the whole suite: starting slapd and making certificates
// is the slow part.
class Ldap : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(make_temp_dir("ldap"));
    ca_ = new TestCa(*dir_ + "/ca", "A");
    other_ca_ = new TestCa(*dir_ + "/other", "B");
    tls_ca_ = new TestCa(*dir_ + "/tls", "TLS");
    auto& c = *ca_;
    auto bin = [](const Issued& i) { return ldif_binary("userCertificate;binary", i.der); };
    bob_old_ = new Issued(c.issue(CertSpec("bob-old", {"bob@example.org"})));
    bob_new_ =
        new Issued(c.issue(CertSpec("bob-new", {"bob@example.org"}).valid("20250601000000Z")));
    auto carol = c.issue(
        CertSpec("carol", {"carol@example.org"}).valid("20200101000000Z", "20210101000000Z"));
    auto dave = c.issue(CertSpec("dave", {"dave@example.org"}).usage("digitalSignature"));
    auto erin = c.issue(CertSpec("erin", {"frank@example.org"}));
    auto hank = c.issue(CertSpec("hank", {"hank@example.org"}).ec());
    auto ivan = other_ca_->issue(CertSpec("ivan", {"ivan@example.org"}));
    auto kate = c.issue(CertSpec("kate", {"kate@example.org"}).ext_usage("clientAuth"));
    run_ok({"openssl", "crl2pkcs7", "-nocrl", "-certfile", hank.pem, "-outform", "DER", "-out",
            *dir_ + "/hank.p7c"});
    // slapd checks userCertificate's syntax; userSMIMECertificate is plain
    // binary, so a broken or huge value can only arrive there.
    write_file(*dir_ + "/garbage.der", std::string(300, '\x30'));
    write_file(*dir_ + "/big.der", std::string(100 * 1024, 'x'));
    write_file(*dir_ + "/huge.der", std::string(2 * 1024 * 1024, 'y'));
    std::string ldif = "dn: " + kPeople + "\nobjectClass: organizationalUnit\nou: people\n\n";
    ldif += person("bob", "bob@example.org", {bin(*bob_old_), bin(*bob_new_)});
    ldif += person("carol", "carol@example.org", {bin(carol)});
    ldif += person("dave", "dave@example.org", {bin(dave)});
    ldif += person("erin", "erin@example.org", {bin(erin)});
    ldif += person("gina", "gina@example.org", {});
    ldif += person("hank", "hank@example.org",
                   {ldif_binary("userSMIMECertificate", *dir_ + "/hank.p7c")});
    ldif += person("ivan", "ivan@example.org", {bin(ivan)});
    ldif += person("jane", "jane@example.org",
                   {ldif_binary("userSMIMECertificate", *dir_ + "/garbage.der"),
                    ldif_binary("userSMIMECertificate", *dir_ + "/big.der")});
    ldif += person("kate", "kate@example.org", {bin(kate)});
    ldif += person("huge", "huge@example.org",
                   {ldif_binary("userSMIMECertificate", *dir_ + "/huge.der")});
    for (int i = 0; i < 30; ++i) {
      ldif += person("many" + std::to_string(i), "many@example.org", {bin(*bob_old_)});
    }
    auto server = tls_ca_->issue(CertSpec("127.0.0.1", {}).server("IP:127.0.0.1"));
    slapd_ = new Slapd(*dir_ + "/slapd", ldif, {tls_ca_->cert_pem(), server.pem, server.key});
  }
  static void TearDownTestSuite() {
    delete slapd_;
    remove_tree(*dir_);
    delete dir_;
  }
  void SetUp() override {
    store_ = make_temp_dir("ldap-store");
    write_file(store_ + "/pin", std::string(kUserPin) + "\n");
  }
  void TearDown() override { remove_tree(store_); }

  ProcessResult tool(std::vector<std::string> args, Env env = {}) {
    args.insert(args.begin(), kTool);
    env["TOKENKIT_CERTS_DIR"] = store_ + "/store";
    env["TOKENKIT_CONFIG_DIR"] = store_ + "/config";
    return run(args, env);
  }
  // certs lookup EMAIL against the test directory, trusting CA A only.
  ProcessResult lookup(const std::string& email, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{
        "certs", "lookup",          email,     "--ldap",       slapd_->ldap_uri(), "--base",
        kPeople, "--no-system-cas", "--trust", ca_->cert_pem()};
    a.insert(a.end(), extra.begin(), extra.end());
    return tool(a);
  }
  Json lookup_json(const std::string& email, std::vector<std::string> extra = {}) {
    extra.push_back("--json");
    auto r = lookup(email, extra);
    return Json::parse(r.out.empty() ? std::string("{}") : r.out);
  }

  static std::string* dir_;
  static TestCa *ca_, *other_ca_, *tls_ca_;
  static Issued *bob_old_, *bob_new_;
  static Slapd* slapd_;
  std::string store_;
};
std::string* Ldap::dir_ = nullptr;
TestCa* Ldap::ca_ = nullptr;
TestCa* Ldap::other_ca_ = nullptr;
TestCa* Ldap::tls_ca_ = nullptr;
Issued* Ldap::bob_old_ = nullptr;
Issued* Ldap::bob_new_ = nullptr;
Slapd* Ldap::slapd_ = nullptr;

std::string reasons(const Json& j) {
  std::string s;
  for (const auto& d : j["directories"]) {
    for (const auto& r : d["rejected"]) s += r["reasons"].dump();
    for (const auto& u : d["unreadable"]) s += u.get<std::string>() + ";";
  }
  return s;
}

TEST_F(Ldap, TwoValidCertificatesForOneAddressBothAcceptedNewestFirst) {
  auto r = lookup("bob@example.org", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json j = Json::parse(r.out);
  const auto& d = j["directories"][0];
  EXPECT_EQ(d["entries"], 1);
  ASSERT_EQ(d["accepted"].size(), 2u) << r.out;
  EXPECT_EQ(d["accepted"][0]["fingerprint"], openssl_fingerprint(bob_new_->pem));
  EXPECT_EQ(d["accepted"][1]["fingerprint"], openssl_fingerprint(bob_old_->pem));
  EXPECT_EQ(d["rejected"].size(), 0u);
  // Nothing is stored without --store.
  auto l = tool({"certs", "list", "--json"});
  EXPECT_EQ(Json::parse(l.out).size(), 0u);
}

TEST_F(Ldap, EachRejectedCertificateSaysWhy) {
  struct Case {
    std::string email, reason;
  };
  const std::vector<Case> cases = {
      {"carol@example.org", "expired on 2021-01-01T00:00:00Z"},
      {"dave@example.org", "keyUsage lacks keyEncipherment"},
      {"erin@example.org", "it is not for erin@example.org (it names frank@example.org)"},
      {"ivan@example.org", "it does not chain to a trusted CA"},
      {"kate@example.org", "extendedKeyUsage lacks emailProtection"},
      {"jane@example.org", "not a certificate"},
      {"jane@example.org", "102400 bytes refused"},
  };
  for (const auto& c : cases) {
    auto r = lookup(c.email, {"--json"});
    EXPECT_EQ(r.exit_code, 3) << c.email << ": " << r.err;
    EXPECT_NE(r.err.find("no usable certificate for " + c.email), std::string::npos) << r.err;
    Json j = Json::parse(r.out);
    EXPECT_EQ(j["accepted"], 0) << c.email;
    std::string all = reasons(j);
    for (const auto& n : j["directories"][0]["notes"]) all += n.get<std::string>();
    EXPECT_NE(all.find(c.reason), std::string::npos) << c.email << ": " << r.out;
  }
  // The text output says the same, one line per certificate.
  auto r = lookup("carol@example.org");
  EXPECT_NE(r.out.find("rejected  CN = carol"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("expired on"), std::string::npos) << r.out;
}

TEST_F(Ldap, EntryWithoutCertificateAndUnknownAddressFindNothing) {
  for (const char* email : {"gina@example.org", "nobody@example.org"}) {
    auto r = lookup(email, {"--json"});
    EXPECT_EQ(r.exit_code, 3) << r.err;
    Json j = Json::parse(r.out);
    EXPECT_EQ(j["directories"][0]["entries"], std::string(email) == "gina@example.org" ? 1 : 0);
    EXPECT_EQ(j["accepted"], 0);
  }
}

TEST_F(Ldap, UserSmimeCertificatePkcs7IsRead) {
  Json j = lookup_json("hank@example.org");
  ASSERT_EQ(j["accepted"], 1) << j.dump();
  EXPECT_EQ(j["directories"][0]["accepted"][0]["emails"], Json({"hank@example.org"}));
}

TEST_F(Ldap, FilterIsEscapedAndConfigurable) {
  // A "*" in the address must not match every entry.
  Json j = lookup_json("*@example.org");
  EXPECT_EQ(j["directories"][0]["entries"], 0) << j.dump();
  j = lookup_json("bob@example.org", {"--filter", "(&(objectClass=inetOrgPerson)(uid=bob))"});
  EXPECT_EQ(j["accepted"], 2) << j.dump();
}

TEST_F(Ldap, StoreKeepsAcceptedOnesAndEncryptToUsesThemEndToEnd) {
  // Bob's newest key on a fresh token; his certificates in the directory.
  FreshToken token(token_providers().front());
  write_file(store_ + "/pw", "p12pass\n");
  run_ok({"openssl", "pkcs12", "-export", "-inkey", bob_new_->key, "-in", bob_new_->pem, "-passout",
          "pass:p12pass", "-out", store_ + "/bob.p12"});
  Env env = token.env();
  env["TOKENKIT_MODULE"] = token.module();
  const std::string uri = "pkcs11:token=" + token.label();
  auto r = tool({"import-p12", store_ + "/bob.p12", "--token", uri, "--pin-file", store_ + "/pin",
                 "--password-file", store_ + "/pw"},
                env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = lookup("bob@example.org", {"--store"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("stored 2 new certificate(s)"), std::string::npos) << r.out;
  auto l = Json::parse(tool({"certs", "list", "bob@example.org", "--json"}).out);
  ASSERT_EQ(l.size(), 2u);
  for (const auto& e : l) {
    EXPECT_EQ(e["source"], "ldap");
    EXPECT_EQ(e["chosen"], e["fingerprint"] == openssl_fingerprint(bob_new_->pem));
  }
  write_file(store_ + "/msg.eml", "Content-Type: text/plain\n\nfor Bob only\n");
  r = tool({"smime", "encrypt", "--to", "bob@example.org", "--in", store_ + "/msg.eml", "--out",
            store_ + "/enc.eml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = tool({"smime", "decrypt", "--key", uri + ";type=private", "--pin-file", store_ + "/pin",
            "--in", store_ + "/enc.eml", "--out", store_ + "/dec.eml"},
           env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(store_ + "/dec.eml"), "Content-Type: text/plain\r\n\r\nfor Bob only\r\n");
}

TEST_F(Ldap, EncryptToFallsBackToTheConfiguredDirectory) {
  std::filesystem::create_directories(store_ + "/config");
  write_file(store_ + "/config/directories.conf",
             "[test]\nuri = " + slapd_->ldap_uri() + "\nbase = " + kPeople +
                 "\ntrust = " + ca_->cert_pem() + "\ntimeout = 5\n");
  write_file(store_ + "/msg.eml", "Content-Type: text/plain\n\nhello\n");
  auto r = tool({"smime", "encrypt", "--to", "hank@example.org", "--in", store_ + "/msg.eml",
                 "--out", store_ + "/enc.eml"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("(from " + slapd_->ldap_uri() + ")"), std::string::npos) << r.err;
  // A refused one is explained, naming the directory.
  r = tool({"smime", "encrypt", "--to", "carol@example.org", "--in", store_ + "/msg.eml"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("in " + slapd_->ldap_uri() + ": CN = carol"), std::string::npos) << r.err;
  // A broken directories file names itself.
  write_file(store_ + "/config/directories.conf", "[test]\nuri = ldap://x\ncolour = blue\n");
  r = tool({"certs", "lookup", "bob@example.org"});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("directories.conf [test]: unknown key \"colour\""), std::string::npos)
      << r.err;
}

TEST_F(Ldap, StartTlsAndLdapsWithTheDirectorysCa) {
  auto r = lookup("bob@example.org", {"--starttls", "--ca-file", tls_ca_->cert_pem()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // Without the directory's CA, the TLS handshake fails and says so.
  r = lookup("bob@example.org", {"--starttls", "--ca-file", ca_->cert_pem()});
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("StartTLS failed"), std::string::npos) << r.err;
  r = tool({"certs", "lookup", "bob@example.org", "--ldap", slapd_->ldaps_uri(), "--base", kPeople,
            "--ca-file", tls_ca_->cert_pem(), "--no-system-cas", "--trust", ca_->cert_pem()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = tool({"certs", "lookup", "bob@example.org", "--ldap", slapd_->ldaps_uri(), "--base", kPeople,
            "--ca-file", ca_->cert_pem(), "--no-system-cas", "--trust", ca_->cert_pem()});
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("directory " + slapd_->ldaps_uri()), std::string::npos) << r.err;
}

TEST_F(Ldap, SimpleBindWithThePasswordFromAFile) {
  write_file(store_ + "/ldap-pw", std::string(Slapd::kRootPassword) + "\n");
  write_file(store_ + "/bad-pw", "wrong\n");
  auto r = lookup("bob@example.org",
                  {"--bind-dn", Slapd::kRootDn, "--password-file", store_ + "/ldap-pw"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = lookup("bob@example.org",
             {"--bind-dn", Slapd::kRootDn, "--password-file", store_ + "/bad-pw"});
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("bind as cn=admin,dc=example,dc=org: Invalid credentials"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("wrong"), std::string::npos) << "the password is never shown";
}

TEST_F(Ldap, LimitsOnEntriesAndBytesAreSaid) {
  Json j = lookup_json("many@example.org", {"--size-limit", "5"});
  const auto& d = j["directories"][0];
  EXPECT_EQ(d["entries"], 5) << j.dump();
  ASSERT_EQ(d["notes"].size(), 1u) << j.dump();
  EXPECT_NE(d["notes"][0].get<std::string>().find("entry limit is 5"), std::string::npos)
      << j.dump();
  // The same certificate (Bob's) in 5 entries is judged once.
  EXPECT_EQ(d["rejected"].size(), 1u) << j.dump();
  // An entry over the 1 MiB message limit is refused before it is read.
  auto r = lookup("huge@example.org");
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("1048576-byte limit"), std::string::npos) << r.err;
}

TEST_F(Ldap, DownAndSilentDirectoriesFailClearlyWithinTheBound) {
  // ctest's TIMEOUT on this suite is the bound; each call here has 1 s.
  SilentServer silent;
  const std::string down = "ldap://127.0.0.1:" + std::to_string(free_port());
  const std::string quiet = "ldap://127.0.0.1:" + std::to_string(silent.port());
  const std::string quiet_tls = "ldaps://127.0.0.1:" + std::to_string(silent.port());
  const std::vector<std::string> bounds{"--timeout", "1", "--network-timeout", "1"};
  auto r = tool({"certs", "lookup", "bob@example.org", "--ldap", down, "--timeout", "1",
                 "--network-timeout", "1"});
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("directory " + down + ": cannot connect"), std::string::npos) << r.err;
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {"--ldap", quiet}, {"--ldap", quiet, "--starttls"}, {"--ldap", quiet_tls}}) {
    std::vector<std::string> a{"certs", "lookup", "bob@example.org"};
    a.insert(a.end(), extra.begin(), extra.end());
    a.insert(a.end(), bounds.begin(), bounds.end());
    r = tool(a);
    EXPECT_EQ(r.exit_code, 14) << extra.back() << ": " << r.err;
    EXPECT_NE(r.err.find("directory " + extra[1]), std::string::npos) << r.err;
    EXPECT_TRUE(r.err.find("no answer within 1 s") != std::string::npos ||
                r.err.find("Timed out") != std::string::npos ||
                r.err.find("cannot connect") != std::string::npos)
        << extra.back() << ": " << r.err;
  }
  // One directory down does not hide another that answers.
  r = tool({"certs", "lookup", "bob@example.org", "--ldap", down, "--ldap", slapd_->ldap_uri(),
            "--base", kPeople, "--no-system-cas", "--trust", ca_->cert_pem(), "--timeout", "2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find(down + ": error:"), std::string::npos) << r.out;
}

// The LDAP client (libldap, GnuTLS, SASL...) lives in tokenkit-ldap.so,
// loaded on the first lookup only: glibc's loader (LD_DEBUG=files) says
// which files a process loads.
TEST_F(Ldap, TheLdapModuleIsLoadedForALookupOnly) {
  auto loaded = [](const std::string& err, const std::string& file) {
    return err.find("file=" + file) != std::string::npos;
  };
  auto r = tool({"certs", "list"}, {{"LD_DEBUG", "files"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(loaded(r.err, "libcrypto.so")) << "LD_DEBUG said nothing: " << r.err;
  for (const char* lib : {"tokenkit-ldap.so", "libldap", "liblber", "libgnutls", "libsasl2"}) {
    EXPECT_FALSE(loaded(r.err, lib)) << lib << " loaded by certs list";
  }
  std::vector<std::string> a{"certs",  "lookup", "bob@example.org", "--ldap",  slapd_->ldap_uri(),
                             "--base", kPeople,  "--no-system-cas", "--trust", ca_->cert_pem()};
  r = tool(a, {{"LD_DEBUG", "files"}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(loaded(r.err, std::string(LDAP_PLUGIN))) << r.err;
  EXPECT_TRUE(loaded(r.err, "libldap")) << r.err;
  // Without the module, a lookup fails as a directory does (exit 14), and
  // says what is missing where.
  r = tool(a, {{"TOKENKIT_LDAP_PLUGIN", store_ + "/missing/tokenkit-ldap.so"}});
  EXPECT_EQ(r.exit_code, 14) << r.err;
  EXPECT_NE(r.err.find("directory lookup unavailable: tokenkit's LDAP module (tokenkit-ldap.so) "
                       "is not installed; looked at " +
                       store_ + "/missing/tokenkit-ldap.so"),
            std::string::npos)
      << r.err;
}

}  // namespace
