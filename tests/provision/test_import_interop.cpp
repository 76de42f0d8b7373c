// After tokenkit import-p12, the peers use the token as their users expect:
// NSS pairs key and certificate (certutil -K / -L), OpenSC's pkcs11-tool
// sees the key sensitive and not extractable, and openssl cms signs through
// the token key (libp11 engine, pkcs11: URI) with a signature that verifies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class ImportInterop : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    write_file(dir() + "/pin", kUserPin);
    write_file(dir() + "/pw", p12_files().password);
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
    run_ok({TOKENKIT_BINARY, "import-p12", p12_files().rsa_chain, "--token-label", token_->label(),
            "--pin-file", dir() + "/pin", "--password-file", dir() + "/pw"},
           env_);
  }
  const std::string& dir() const { return token_->dir(); }
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, ImportInterop, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(ImportInterop, NssPairsKeyAndCertificate) {
  const std::string db = "sql:" + dir() + "/nss";
  std::filesystem::create_directories(dir() + "/nss");
  run_ok({"certutil", "-N", "-d", db, "--empty-password"}, env_);
  run_ok({"modutil", "-dbdir", db, "-add", "token", "-libfile", token_->module(), "-force"}, env_);
  auto keys =
      run_ok({"certutil", "-K", "-d", db, "-h", token_->label(), "-f", dir() + "/pin"}, env_);
  EXPECT_NE(keys.find("Alice Mail"), std::string::npos) << keys;
  EXPECT_EQ(keys.find("orphan"), std::string::npos) << "NSS found no certificate for the key:\n"
                                                    << keys;
  auto certs =
      run_ok({"certutil", "-L", "-d", db, "-h", token_->label(), "-f", dir() + "/pin"}, env_);
  EXPECT_NE(certs.find(token_->label() + ":Alice Mail"), std::string::npos) << certs;
  EXPECT_NE(certs.find("u,u,u"), std::string::npos) << "the user's own certificate:\n" << certs;
  EXPECT_NE(certs.find(token_->label() + ":Test Root CA"), std::string::npos) << certs;
}

TEST_P(ImportInterop, Pkcs11ToolSeesASensitiveNonExtractableKey) {
  auto out = run_ok({"pkcs11-tool", "--module", token_->module(), "--token-label", token_->label(),
                     "--login", "--pin", kUserPin, "-O", "--type", "privkey"},
                    env_);
  EXPECT_NE(out.find("Alice Mail"), std::string::npos) << out;
  // pkcs11-tool prints "extractable" only for a key that is; an imported key
  // was on the host once, so it is honestly not "always sensitive".
  auto access = out.substr(out.find("Access:"));
  access = access.substr(0, access.find('\n'));
  EXPECT_NE(access.find("sensitive"), std::string::npos) << out;
  EXPECT_EQ(access.find("extractable"), std::string::npos) << out;
}

TEST_P(ImportInterop, OpensslCmsSignsThroughTheTokenKey) {
  // `openssl -engine pkcs11` makes libp11's engine the default for RSA and EC
  // in its process; with the tokenkit module loaded in it too, the module
  // must still build its own keys (pkey.cpp key_ctx).
  auto objs =
      Json::parse(run_ok({TOKENKIT_BINARY, "objects", "pkcs11:type=private", "--token-label",
                          token_->label(), "--pin-file", dir() + "/pin", "--json"},
                         env_))["objects"];
  ASSERT_EQ(objs.size(), 1u);
  const std::string uri = objs[0]["uri"].get<std::string>() + ";pin-value=" + kUserPin;
  write_file(dir() + "/msg", "hello from the token\n");
  // libp11's engine loads p11-kit-proxy unless told the module to use.
  write_file(dir() + "/openssl.cnf",
             "openssl_conf = init\n[init]\nengines = engines\n[engines]\npkcs11 = p11\n"
             "[p11]\nengine_id = pkcs11\nMODULE_PATH = " +
                 token_->module() + "\ninit = 0\n");
  env_["OPENSSL_CONF"] = dir() + "/openssl.cnf";
  run_ok({"openssl", "cms", "-sign", "-engine", "pkcs11", "-keyform", "engine", "-inkey", uri,
          "-signer", p12_files().rsa_cert, "-in", dir() + "/msg", "-out", dir() + "/sig.pem",
          "-outform", "PEM"},
         env_);
  auto r = run({"openssl", "cms", "-verify", "-CAfile", p12_files().ca_cert, "-in",
                dir() + "/sig.pem", "-inform", "PEM", "-content", dir() + "/msg"},
               env_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("Verification successful"), std::string::npos) << r.err;
}

}  // namespace
