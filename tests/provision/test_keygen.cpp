// tokenkit keygen and import-cert: keys born on the token, and the
// certificate a CA (openssl here) issues for them stored next to them.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class Keygen : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    write_file(token_->dir() + "/pin", kUserPin);
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
  }
  ProcessResult tool(std::vector<std::string> args) {
    args.insert(args.begin(), TOKENKIT_BINARY);
    args.insert(args.end(), {"--token-label", token_->label(), "--pin-file", token_->dir() + "/pin"});
    return run(args, env_);
  }
  // The CA of p12_files() certifies the token's public key `id`, read off the
  // token with pkcs11-tool: no private key leaves the token for this.
  std::string issue_certificate(const std::string& id, const std::string& cn) {
    const std::string d = token_->dir();
    run_ok({"pkcs11-tool", "--module", token_->module(), "--token-label", token_->label(),
            "--read-object", "--type", "pubkey", "--id", id, "--output-file", d + "/pub.der"},
           env_);
    run_ok({"openssl", "pkey", "-pubin", "-inform", "DER", "-in", d + "/pub.der", "-out", d + "/pub.pem"});
    const std::string ca = p12_files().dir;
    run_ok({"openssl", "x509", "-new", "-force_pubkey", d + "/pub.pem", "-subj", "/CN=" + cn,
            "-CA", ca + "/ca.crt", "-CAkey", ca + "/ca.key", "-days", "30", "-out", d + "/issued.crt"});
    return d + "/issued.crt";
  }
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Keygen, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Keygen, KeysAreBornSensitiveAndNeverExtractable) {
  for (std::string type : {"rsa:2048", "ec:p256", "ec:p384"}) {
    auto r = tool({"keygen", "--type", type, "--label", "k-" + type, "--json"});
    ASSERT_EQ(r.exit_code, 0) << type << ": " << r.err;
    auto j = Json::parse(r.out);
    const auto& k = j["private_key"];
    EXPECT_EQ(k["sensitive"], true) << type;
    EXPECT_EQ(k["extractable"], false) << type;
    EXPECT_EQ(k["always_sensitive"], true) << type << ": born on the token";
    EXPECT_EQ(k["never_extractable"], true) << type;
    EXPECT_EQ(k["id"], j["public_key"]["id"]);
    EXPECT_EQ(k["id"].get<std::string>().size(), 40u) << "SHA-1 of the public key, as NSS";
    if (type.rfind("ec", 0) == 0) {
      EXPECT_NE(std::find(k["usage"].begin(), k["usage"].end(), "derive"), k["usage"].end());
    }
  }
}

TEST_P(Keygen, CertificateFromTheCaIsStoredNextToItsKey) {
  auto r = tool({"keygen", "--type", "ec:p256", "--label", "Alice mail", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string id = Json::parse(r.out)["private_key"]["id"];
  const std::string cert = issue_certificate(id, "Alice Example");
  r = tool({"import-cert", cert, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["id"], id);
  EXPECT_EQ(j["label"], "Alice mail");
  r = tool({"import-cert", cert, "--json"});
  EXPECT_EQ(Json::parse(r.out)["already_present"], true) << "not stored twice";
  // The token now holds the pair as NSS wants it.
  auto objs = Json::parse(tool({"objects", "--json"}).out)["objects"];
  int certs = 0;
  for (const auto& o : objs) {
    if (o["class"] == "certificate") {
      ++certs;
      EXPECT_EQ(o["id"], id);
      EXPECT_EQ(o["certificate"]["subject"], "CN=Alice Example");
    }
  }
  EXPECT_EQ(certs, 1);
}

TEST_P(Keygen, KeygenCsrCaImportCertWithoutTheKeyEverLeaving) {
  for (std::string type : {"rsa:2048", "ec:p256"}) {
    const std::string label = "mail-" + type;
    auto r = tool({"keygen", "--type", type, "--label", label, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const std::string id = Json::parse(r.out)["private_key"]["id"];
    const std::string csr = token_->dir() + "/req.pem";
    r = tool({"csr", "--key", "pkcs11:object=" + label + ";type=private", "--subject",
              "/CN=Alice Example/O=Example Corp", "--email", "alice@example.org", "--out", csr});
    ASSERT_EQ(r.exit_code, 0) << type << ": " << r.err;
    // openssl checks the signature the token made, and a CA (openssl) issues.
    auto v = run({"openssl", "req", "-in", csr, "-verify", "-noout", "-text"});
    EXPECT_EQ(v.exit_code, 0) << v.err;
    EXPECT_NE((v.out + v.err).find("verify OK"), std::string::npos) << v.out << v.err;
    EXPECT_NE(v.out.find("email:alice@example.org"), std::string::npos) << v.out;
    EXPECT_NE(v.out.find("E-mail Protection"), std::string::npos) << v.out;
    const std::string ca = p12_files().dir, crt = token_->dir() + "/issued.crt";
    run_ok({"openssl", "x509", "-req", "-in", csr, "-CA", ca + "/ca.crt", "-CAkey", ca + "/ca.key",
            "-copy_extensions", "copy", "-days", "30", "-out", crt});
    r = tool({"import-cert", crt, "--json"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(Json::parse(r.out)["id"], id);
  }
}

TEST_P(Keygen, CsrForAMissingKeyOrABadSubjectFails) {
  auto r = tool({"csr", "--key", "pkcs11:object=nobody;type=private", "--subject", "/CN=x",
                 "--out", token_->dir() + "/x.csr"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(token_->dir() + "/x.csr")) << "no output on failure";
  ASSERT_EQ(tool({"keygen", "--type", "ec:p256", "--label", "k"}).exit_code, 0);
  r = tool({"csr", "--key", "pkcs11:object=k;type=private", "--subject", "CN=no-slash"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  r = tool({"csr", "--key", "pkcs11:object=k;type=private", "--subject", "/XX=unknown"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST_P(Keygen, ACertificateForNoKeyHereIsRefused) {
  auto r = tool({"import-cert", p12_files().rsa_cert});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no key on token"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(p12_files().rsa_cert), std::string::npos) << r.err;
  write_file(token_->dir() + "/junk.crt", "not a certificate");
  EXPECT_EQ(tool({"import-cert", token_->dir() + "/junk.crt"}).exit_code, 10);
  EXPECT_EQ(tool({"keygen", "--type", "dsa:1024", "--label", "x"}).exit_code, 2);
  EXPECT_EQ(tool({"keygen", "--type", "rsa:2048"}).exit_code, 2) << "a label is required";
}

}  // namespace
