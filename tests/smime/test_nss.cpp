// Interop with NSS's cmsutil (what Thunderbird's S/MIME is built on), with
// certificates issued by a test CA, because NSS will not accept the
// self-signed test certificates as email signers.
#include <gtest/gtest.h>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage = "Content-Type: text/plain\n\nSigned on a token, read by NSS.\n";

class Nss : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    dir_ = token_->dir();
    write_file(path("pin"), std::string(kUserPin) + "\n");
    write_file(path("msg.eml"), kMessage);
    make_ca();
    const auto& k = test_keys();
    issue_and_store(k.rsa_key_der, "rsa", "05", "alice@example.org",
                    "digitalSignature,keyEncipherment", "--usage-decrypt");
    issue_and_store(k.ec_key_der, "ec", "06", "bob@example.org", "digitalSignature,keyAgreement",
                    "--usage-derive");
    run_ok({"certutil", "-N", "-d", db(), "--empty-password"});
    run_ok({"certutil", "-A", "-d", db(), "-n", "test-ca", "-t", "CT,CT,CT", "-i", path("ca.crt")});
  }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  std::string db() const { return "sql:" + dir_; }

  void make_ca() {
    run_ok({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("ca.key"),
            "-out", path("ca.crt"), "-days", "2", "-subj", "/CN=tokenkit test CA", "-addext",
            "basicConstraints=critical,CA:TRUE", "-addext",
            "keyUsage=critical,keyCertSign,cRLSign"});
  }
  // A CA-issued email certificate for a test key; key and certificate go on
  // the token with `id`.
  void issue_and_store(const std::string& key_der, const std::string& name, const std::string& id,
                       const std::string& email, const std::string& usage,
                       const std::string& key_flag) {
    run_ok({"openssl", "pkey", "-inform", "DER", "-in", key_der, "-out", path(name + ".key")});
    run_ok({"openssl", "req", "-new", "-key", path(name + ".key"), "-subj",
            "/CN=" + name + "/emailAddress=" + email, "-out", path(name + ".csr")});
    write_file(path(name + ".ext"),
               "subjectAltName=email:" + email + "\nkeyUsage=" + usage +
                   "\nextendedKeyUsage=emailProtection\nbasicConstraints=CA:FALSE\n");
    run_ok({"openssl", "x509", "-req", "-in", path(name + ".csr"), "-CA", path("ca.crt"), "-CAkey",
            path("ca.key"), "-set_serial", id, "-days", "2", "-extfile", path(name + ".ext"),
            "-out", path(name + ".crt")});
    run_ok({"openssl", "x509", "-in", path(name + ".crt"), "-outform", "DER", "-out",
            path(name + ".crt.der")});
    const std::vector<std::string> login{"--login", "--pin", kUserPin};
    auto tool = [&](std::vector<std::string> a) {
      a.insert(a.end(), login.begin(), login.end());
      token_->pkcs11_tool(a);
    };
    tool({"--write-object", key_der, "--type", "privkey", "--id", id, "--label", name,
          "--usage-sign", key_flag});
    tool(
        {"--write-object", path(name + ".crt.der"), "--type", "cert", "--id", id, "--label", name});
  }
  ProcessResult tokenkit(std::vector<std::string> args) {
    return token_->run_tool(kTool, std::move(args));
  }
  std::string uri(const std::string& id) const {
    return "pkcs11:token=" + token_->label() + ";id=%" + id;
  }
  // S/MIME to the DER that cmsutil reads, and back.
  void to_der(const std::string& eml, const std::string& der) {
    run_ok({"openssl", "cms", "-cmsout", "-in", path(eml), "-outform", "DER", "-out", path(der)});
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Nss, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Nss, CmsutilVerifiesWhatWeSign) {
  write_file(path("content"), crlf(kMessage));
  for (const auto& [id, extra] :
       {std::pair<std::string, std::string>{"05", ""}, {"05", "--pss"}, {"06", ""}}) {
    std::vector<std::string> a{"smime",     "sign", "--key",         uri(id), "--pin-file",
                               path("pin"), "--in", path("msg.eml"), "--out", path("s.eml")};
    if (!extra.empty()) a.push_back(extra);
    auto r = tokenkit(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    to_der("s.eml", "s.der");
    auto v = run({"cmsutil", "-D", "-i", path("s.der"), "-c", path("content"), "-d", db()});
    EXPECT_EQ(v.exit_code, 0) << id << " " << extra << ": " << v.err;
    // And our own verify accepts the chain to the test CA.
    auto ours = tokenkit({"smime", "verify", "--no-system-cas", "--ca-file", path("ca.crt"), "--in",
                          path("s.eml"), "--out", path("s.out")});
    EXPECT_EQ(ours.exit_code, 0) << ours.err;
  }
  write_file(path("content"), crlf(kMessage) + "tampered");
  auto v = run({"cmsutil", "-D", "-i", path("s.der"), "-c", path("content"), "-d", db()});
  EXPECT_NE(v.exit_code, 0) << "cmsutil must notice changed content";
}

TEST_P(Nss, WeDecryptWhatCmsutilEncrypts) {
  run_ok({"certutil", "-A", "-d", db(), "-n", "alice", "-t", ",,", "-i", path("rsa.crt")});
  run_ok({"cmsutil", "-E", "-i", path("msg.eml"), "-o", path("e.der"), "-r", "alice@example.org",
          "-d", db()});
  run_ok(
      {"openssl", "cms", "-cmsout", "-inform", "DER", "-in", path("e.der"), "-out", path("e.eml")});
  auto r = tokenkit(
      {"smime", "decrypt", "--key", uri("05"), "--pin-file", path("pin"), "--in", path("e.eml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMessage);
}

TEST_P(Nss, CmsutilDecryptsWhatWeEncryptWithCbc) {
  // cmsutil (NSS 3.87) reads neither AES-GCM AuthEnvelopedData nor OAEP:
  // --cbc is the way to reach NSS-based clients of that age.
  run_ok({"openssl", "pkcs12", "-export", "-in", path("rsa.crt"), "-inkey", path("rsa.key"), "-out",
          path("rsa.p12"), "-passout", "pass:x"});
  run_ok({"pk12util", "-i", path("rsa.p12"), "-d", db(), "-W", "x"});
  auto r = tokenkit({"smime", "encrypt", "--recipient", path("rsa.crt"), "--cbc", "--in",
                     path("msg.eml"), "--out", path("e.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  to_der("e.eml", "e.der");
  auto d = run({"cmsutil", "-D", "-i", path("e.der"), "-d", db()});
  EXPECT_EQ(d.exit_code, 0) << d.err;
  EXPECT_EQ(d.out, crlf(kMessage));
}

}  // namespace
