// smime verify --store-sender-cert, smime verify --token (the token's CA
// certificates as trust anchors) and smime encrypt --to EMAIL from the
// certificate store; messages made and read back by openssl cms.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "testca.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage = "Content-Type: text/plain\n\nmeet at noon\n";

class SmimeStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("smime-store");
    ca_ = std::make_unique<TestCa>(dir_ + "/ca");
    write_file(path("msg.eml"), kMessage);
  }
  void TearDown() override { remove_tree(dir_); }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  ProcessResult tool(std::vector<std::string> args, Env env = {}) {
    args.insert(args.begin(), kTool);
    env["TOKENKIT_CERTS_DIR"] = path("store");
    return run(args, env);
  }
  Json list_json() {
    auto r = tool({"certs", "list", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out);
  }
  // Signs msg.eml as `who` with openssl cms into `out`.
  void openssl_sign(const Issued& who, const std::string& out) {
    run_ok({"openssl", "cms", "-sign", "-in", path("msg.eml"), "-signer", who.pem, "-inkey",
            who.key, "-out", path(out)});
  }
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
};

TEST_F(SmimeStore, VerifyStoresTheSenderCertificateOnlyAfterEveryCheckPassed) {
  auto alice = ca_->issue(CertSpec("alice", {"alice@example.org"}));
  openssl_sign(alice, "signed.eml");
  std::string bad = read_file(path("signed.eml"));
  bad.replace(bad.find("meet at noon"), 12, "meet at nine");
  write_file(path("tampered.eml"), bad);
  // A tampered message, and an untrusted signer: nothing stored.
  auto r = tool({"smime", "verify", "--no-system-cas", "--ca-file", ca_->cert_pem(), "--in",
                 path("tampered.eml"), "--out", path("c1"), "--store-sender-cert"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  r = tool({"smime", "verify", "--no-system-cas", "--in", path("signed.eml"), "--out", path("c2"),
            "--store-sender-cert"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(list_json().size(), 0u);
  // Without the option, a good message stores nothing either.
  r = tool({"smime", "verify", "--no-system-cas", "--ca-file", ca_->cert_pem(), "--in",
            path("signed.eml"), "--out", path("c3")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(list_json().size(), 0u);
  r = tool({"smime", "verify", "--no-system-cas", "--ca-file", ca_->cert_pem(), "--in",
            path("signed.eml"), "--out", path("c4"), "--store-sender-cert"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("stored the certificate of"), std::string::npos) << r.err;
  Json l = list_json();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["fingerprint"], openssl_fingerprint(alice.pem));
  EXPECT_EQ(l[0]["source"], "verify");
  EXPECT_EQ(l[0]["emails"], Json({"alice@example.org"}));
}

TEST_F(SmimeStore, VerifyTrustsTheTokensCaCertificates) {
  auto alice = ca_->issue(CertSpec("alice", {"alice@example.org"}));
  openssl_sign(alice, "signed.eml");
  FreshToken token(token_providers().front());
  write_file(path("pin"), std::string(kUserPin) + "\n");
  write_file(path("pw"), "p12pass\n");
  run_ok({"openssl", "pkcs12", "-export", "-inkey", alice.key, "-in", alice.pem, "-certfile",
          ca_->cert_pem(), "-passout", "pass:p12pass", "-out", path("alice.p12")});
  Env env = token.env();
  env["TOKENKIT_MODULE"] = token.module();
  const std::string uri = "pkcs11:token=" + token.label();
  auto r = tool({"import-p12", path("alice.p12"), "--token", uri, "--pin-file", path("pin"),
                 "--password-file", path("pw")},
                env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = tool({"smime", "verify", "--no-system-cas", "--in", path("signed.eml"), "--out", path("c1")},
           env);
  EXPECT_EQ(r.exit_code, 1) << "the CA is trusted only through the token: " << r.err;
  r = tool({"smime", "verify", "--no-system-cas", "--token", uri, "--in", path("signed.eml"),
            "--out", path("c2")},
           env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(path("c2")), "Content-Type: text/plain\r\n\r\nmeet at noon\r\n");
}

TEST_F(SmimeStore, EncryptToAddressUsesTheNewestUsableStoredCertificate) {
  auto old_bob = ca_->issue(CertSpec("bob-old", {"bob@example.org"}));
  auto new_bob = ca_->issue(CertSpec("bob-new", {"bob@example.org"}).valid("20250601000000Z"));
  auto expired = ca_->issue(
      CertSpec("bob-expired", {"bob@example.org"}).valid("20250701000000Z", "20251231000000Z"));
  auto carol = ca_->issue(CertSpec("carol", {"carol@example.org"}).ec());
  auto dave = ca_->issue(CertSpec("dave", {"dave@example.org"}));
  ASSERT_EQ(tool({"certs", "import", old_bob.pem, new_bob.pem, expired.pem, carol.pem}).exit_code,
            0);
  auto r = tool({"smime", "encrypt", "--to", "Bob@Example.org", "--to", "carol@example.org",
                 "--recipient", dave.pem, "--in", path("msg.eml"), "--out", path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("to Bob@Example.org: CN = bob-new"), std::string::npos) << r.err;
  auto decrypt = [&](const Issued& who) {
    return run({"openssl", "cms", "-decrypt", "-in", path("enc.eml"), "-recip", who.pem, "-inkey",
                who.key});
  };
  for (const Issued* who : {&new_bob, &carol, &dave}) {
    auto d = decrypt(*who);
    EXPECT_EQ(d.exit_code, 0) << who->pem << ": " << d.err;
    EXPECT_NE(d.out.find("meet at noon"), std::string::npos);
  }
  EXPECT_NE(decrypt(old_bob).exit_code, 0) << "only the newest of Bob's certificates is used";
  EXPECT_NE(decrypt(expired).exit_code, 0);
}

TEST_F(SmimeStore, EncryptToAddressWithoutAUsableCertificateSaysWhy) {
  ASSERT_EQ(
      tool(
          {"certs", "import",
           ca_->issue(CertSpec("erin-expired", {"erin@example.org"})
                          .valid("20200101000000Z", "20210101000000Z"))
               .pem,
           ca_->issue(CertSpec("erin-signing", {"erin@example.org"}).usage("digitalSignature")).pem,
           ca_->issue(CertSpec("erin-tls", {"erin@example.org"}).ext_usage("clientAuth")).pem})
          .exit_code,
      0);
  auto r = tool({"smime", "encrypt", "--to", "erin@example.org", "--in", path("msg.eml"), "--out",
                 path("enc.eml")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  for (const char* why : {"no usable certificate for erin@example.org", "expired on 2021-01-01",
                          "keyUsage lacks keyEncipherment", "lacks emailProtection"}) {
    EXPECT_NE(r.err.find(why), std::string::npos) << why << " in " << r.err;
  }
  EXPECT_FALSE(std::filesystem::exists(path("enc.eml")));
  r = tool({"smime", "encrypt", "--to", "nobody@example.org", "--in", path("msg.eml")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no usable certificate for nobody@example.org"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

}  // namespace
