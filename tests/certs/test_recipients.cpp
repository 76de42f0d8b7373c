// Recipients of `smime encrypt` and `smime sign --encrypt-to` from every
// source: certificate files, certificates on a token (a pkcs11: URI; public
// ones without a login, private ones after one), the local certificate store
// (by address). Fresh tokens (SoftHSM2 and tokenkit's module) filled by
// pkcs11-tool, certificates made by `openssl ca`, every message decrypted by
// `openssl cms` with each recipient's key.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "process.hpp"
#include "testca.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage = "Content-Type: text/plain\n\nmeet at noon\n";

class Recipients : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam(), "Work");
    dir_ = token_->dir();
    ca_ = std::make_unique<TestCa>(path("ca"));
    write_file(path("msg.eml"), kMessage);
    write_file(path("pin"), std::string(kUserPin) + "\n");
  }
  // After a failure, what the token held as a peer (pkcs11-tool) sees it,
  // and the files of its store: a failure that did not come back on a
  // re-run can then be told from a token left in an unexpected state.
  void TearDown() override {
    if (!HasFailure() || !token_) return;
    auto objects = run({"pkcs11-tool", "--module", token_->module(), "--token-label",
                        token_->label(), "--login", "--pin", kUserPin, "--list-objects"},
                       token_->env());
    std::string files;
    std::error_code ec;
    for (const auto& f : std::filesystem::recursive_directory_iterator(path("tokens"), ec)) {
      if (f.is_regular_file())
        files += "  " + f.path().string() + " " + std::to_string(f.file_size()) + "\n";
    }
    std::cout << "token " << token_->label() << " after the failure (pkcs11-tool exit "
              << objects.exit_code << "):\n"
              << objects.out << objects.err << "token store files:\n"
              << files;
  }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  std::string uri(const std::string& rest = "") const {
    return "pkcs11:token=" + token_->label() + rest;
  }
  ProcessResult tool(std::vector<std::string> args) {
    // no directories file in XDG_CONFIG_HOME
    return token_->run_tool(
        kTool, std::move(args), {},
        {{"TOKENKIT_CERTS_DIR", path("store")}, {"XDG_CONFIG_HOME", path("config")}});
  }
  // Puts `who`'s certificate on the token (as pkcs11-tool writes it).
  void put_cert(const Issued& who, const std::string& id, const std::string& label,
                bool is_private = false) {
    if (!is_private) {
      token_->pkcs11_tool({"--login", "--pin", kUserPin, "--write-object", who.der, "--type",
                           "cert", "--id", id, "--label", label});
      return;
    }
    // pkcs11-tool writes every certificate public; GnuTLS's p11tool can mark
    // one private.
    Env env = token_->env();
    env["GNUTLS_PIN"] = kUserPin;
    run_ok({"p11tool", "--provider", token_->module(), "--login", "--write", "--mark-private",
            "--load-certificate", who.pem, "--label", label, "--id", id, uri()},
           env);
  }
  ProcessResult encrypt(std::vector<std::string> to, const std::string& out = "enc.eml") {
    std::vector<std::string> a{"smime", "encrypt", "--in", path("msg.eml"), "--out", path(out)};
    for (const auto& t : to) {
      a.emplace_back("--to");
      a.push_back(t);
    }
    return tool(a);
  }
  ProcessResult openssl_decrypt(const Issued& who, const std::string& file = "enc.eml") {
    return run(
        {"openssl", "cms", "-decrypt", "-in", path(file), "-recip", who.pem, "-inkey", who.key});
  }
  void expect_decrypts(const Issued& who, const std::string& file = "enc.eml") {
    auto d = openssl_decrypt(who, file);
    EXPECT_EQ(d.exit_code, 0) << who.pem << ": " << d.err;
    EXPECT_NE(d.out.find("meet at noon"), std::string::npos) << who.pem;
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Recipients, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Recipients, PublicCertificateOnATokenNeedsNoLogin) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  auto carol = ca_->issue(CertSpec("carol", {"carol@example.org"}).ec());
  put_cert(bob, "11", "Bob");
  put_cert(carol, "12", "Carol");
  // No PIN source anywhere and no terminal: a login would fail.
  auto r = encrypt({uri(";object=Bob")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("certificate \"Bob\" on token \"Work\""), std::string::npos) << r.err;
  expect_decrypts(bob);
  EXPECT_NE(openssl_decrypt(carol).exit_code, 0) << "only Bob's certificate was named";
  r = encrypt({uri(";id=%12;type=cert")}, "carol.eml");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_decrypts(carol, "carol.eml");
}

TEST_P(Recipients, AUriMatchingSeveralCertificatesTakesEveryUsableOne) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  auto carol = ca_->issue(CertSpec("carol", {"carol@example.org"}).ec());
  auto old =
      ca_->issue(CertSpec("old", {"old@example.org"}).valid("20200101000000Z", "20210101000000Z"));
  auto signer = ca_->issue(CertSpec("signer", {"s@example.org"}).usage("digitalSignature"));
  put_cert(bob, "11", "Bob");
  put_cert(carol, "12", "Carol");
  put_cert(old, "13", "Old");
  put_cert(signer, "14", "Signer");
  auto r = encrypt({uri()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_decrypts(bob);
  expect_decrypts(carol);
  EXPECT_NE(openssl_decrypt(old).exit_code, 0);
  EXPECT_NE(openssl_decrypt(signer).exit_code, 0);
  EXPECT_NE(r.err.find("not to " + uri() + ": certificate \"Old\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("expired on 2021-01-01"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("keyUsage lacks keyEncipherment"), std::string::npos) << r.err;
  // Named alone, an unusable certificate is an error that says why.
  r = encrypt({uri(";object=Old")}, "old.eml");
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no usable certificate for " + uri(";object=Old")), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("expired on 2021-01-01"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("old.eml")));
}

TEST_P(Recipients, PrivateCertificateOnATokenNeedsTheUsersPin) {
  auto dave = ca_->issue(CertSpec("dave", {"dave@example.org"}));
  put_cert(dave, "21", "Dave", /*is_private=*/true);
  auto r = encrypt({uri(";object=Dave")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no certificate on token \"Work\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("private certificates were not searched"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("enc.eml")));
  r = tool({"smime", "encrypt", "--to", uri(";object=Dave"), "--pin-file", path("pin"), "--in",
            path("msg.eml"), "--out", path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_decrypts(dave);
}

TEST_P(Recipients, MixedSourcesInOneMessage) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  auto carol = ca_->issue(CertSpec("carol", {"carol@example.org"}).ec());
  auto erin = ca_->issue(CertSpec("erin", {"erin@example.org"}));
  auto frank = ca_->issue(CertSpec("frank", {"frank@example.org"}).ec());
  put_cert(bob, "11", "Bob");
  ASSERT_EQ(tool({"certs", "import", carol.pem}).exit_code, 0);
  // smime encrypt: a file (--recipient and --to), a token, an address.
  auto r = tool({"smime", "encrypt", "--recipient", erin.pem, "--to", frank.pem, "--to",
                 uri(";object=Bob"), "--to", "carol@example.org", "--in", path("msg.eml"), "--out",
                 path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const Issued* who : {&bob, &carol, &erin, &frank}) expect_decrypts(*who);
  // smime sign --encrypt-to takes the same kinds: the signer's key on the
  // token, the signed message to a token certificate, an address and a file.
  token_->write_rsa();
  r = tool({"smime", "sign", "--key", uri(";id=%01"), "--pin-file", path("pin"), "--in",
            path("msg.eml"), "--encrypt-to", uri(";object=Bob"), "--encrypt-to",
            "carol@example.org", "--encrypt-to", erin.pem, "--out", path("se.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const Issued* who : {&bob, &carol, &erin}) {
    auto d = openssl_decrypt(*who, "se.eml");
    ASSERT_EQ(d.exit_code, 0) << who->pem << ": " << d.err;
    write_file(path("inner.eml"), d.out);
    auto v = run({"openssl", "cms", "-verify", "-in", path("inner.eml"), "-CAfile",
                  test_keys().rsa_cert_pem});
    EXPECT_EQ(v.exit_code, 0) << v.err;
    EXPECT_NE(v.out.find("meet at noon"), std::string::npos);
  }
  EXPECT_NE(openssl_decrypt(frank, "se.eml").exit_code, 0);
}

TEST_P(Recipients, ClearErrorsAndNothingWritten) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  put_cert(bob, "11", "Bob");
  token_->write_rsa();  // a key pair and certificate "alice", id 01
  token_->pkcs11_tool({"--login", "--pin", kUserPin, "--write-object", test_keys().ec_key_der,
                       "--type", "privkey", "--id", "33", "--label", "keyonly"});
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::vector<std::string> says;
  };
  const std::vector<Case> cases = {
      {{"--to", uri(";object=Nobody"), "--pin-file", path("pin")},
       3,
       {"no certificate on token \"Work\"", "matches " + uri(";object=Nobody"),
        "; its certificates: ", "certificate \"Bob\" (id 11)", "certificate \"alice\" (id 01)"}},
      {{"--to", uri(";object=keyonly"), "--pin-file", path("pin")},
       3,
       {"matches " + uri(";object=keyonly"), "it names private key \"keyonly\" (id 33)"}},
      {{"--to", uri(";object=alice;type=private")}, 10, {"names a private key, not a certificate"}},
      {{"--to", "pkcs11:token=Absent;object=Bob"}, 3, {"no token matches", "Absent"}},
      {{"--to", "nobody@example.org", "--no-config"},
       3,
       {"no usable certificate for nobody@example.org", "has none for it"}},
      {{"--to", "no-such-file.pem"}, 9, {"no-such-file.pem", "no such file"}},
      {{"--recipient", "bob@example.org"}, 9, {"cannot open bob@example.org"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> a{"smime", "encrypt",       "--to",  uri(";object=Bob"),
                               "--in",  path("msg.eml"), "--out", path("enc.eml")};
    a.insert(a.end(), c.args.begin(), c.args.end());
    auto r = tool(a);
    std::string what;  // the whole command line, for a failure message
    for (const auto& x : a) what += " " + x;
    EXPECT_EQ(r.exit_code, c.exit_code) << what << ":\nstderr: " << r.err << "stdout: " << r.out;
    for (const auto& s : c.says)
      EXPECT_NE(r.err.find(s), std::string::npos) << s << " in " << r.err;
    EXPECT_FALSE(std::filesystem::exists(path("enc.eml"))) << what;
  }
  // sign --encrypt-to: the same errors, before anything is signed.
  auto r = tool({"smime", "sign", "--key", uri(";id=%01"), "--pin-file", path("pin"), "--in",
                 path("msg.eml"), "--encrypt-to", uri(";object=Nobody"), "--out", path("se.eml")});
  EXPECT_EQ(r.exit_code, 3) << "stderr: " << r.err << "stdout: " << r.out;
  EXPECT_NE(r.err.find("no certificate on token \"Work\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("se.eml")));
}

}  // namespace

namespace {

// The content cipher follows what recipients announced (RFC 8551 section
// 2.7.1): SMIMECapabilities kept from their signed messages, or a
// certificate's RFC 4262 extension.
class Capabilities : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("capabilities");
    ca_ = std::make_unique<TestCa>(path("ca"));
    write_file(path("msg.eml"), kMessage);
  }
  void TearDown() override { remove_tree(dir_); }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  ProcessResult tool(std::vector<std::string> args) {
    args.insert(args.begin(), kTool);
    return run(args, {{"TOKENKIT_CERTS_DIR", path("store")}, {"XDG_CONFIG_HOME", path("cfg")}});
  }
  // `who` signs a message with openssl cms (extra options appended) and the
  // receiver verifies it, keeping the certificate and what it announced.
  void receive_signed_from(const Issued& who, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"openssl", "cms",    "-sign", "-in",  path("msg.eml"),   "-signer",
                               who.pem,   "-inkey", who.key, "-out", path("signed.eml")};
    a.insert(a.end(), extra.begin(), extra.end());
    run_ok(a);
    auto r = tool({"smime", "verify", "--no-system-cas", "--ca-file", ca_->cert_pem(), "--in",
                   path("signed.eml"), "--out", path("content.eml"), "--store-sender-cert"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  // The content cipher of an encrypted message, as openssl reads it.
  std::string cipher_of(const std::string& file) {
    const std::string dump =
        run_ok({"openssl", "cms", "-cmsout", "-print", "-inform", "SMIME", "-in", path(file)});
    for (const char* c : {"aes-256-gcm", "aes-128-gcm", "aes-256-cbc", "aes-128-cbc"}) {
      if (dump.find(std::string("algorithm: ") + c) != std::string::npos) return c;
    }
    return "?";
  }
  void expect_decrypts(const Issued& who, const std::string& file) {
    auto d = run(
        {"openssl", "cms", "-decrypt", "-in", path(file), "-recip", who.pem, "-inkey", who.key});
    EXPECT_EQ(d.exit_code, 0) << who.pem << ": " << d.err;
    EXPECT_NE(d.out.find("meet at noon"), std::string::npos);
  }
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
};

TEST_F(Capabilities, ARecipientWhoseClientAnnouncedNoGcmGetsCbc) {
  auto alice = ca_->issue(CertSpec("alice", {"alice@example.org"}));
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  // Nothing known about Bob: AES-256-GCM.
  auto r = tool({"smime", "encrypt", "--recipient", bob.pem, "--in", path("msg.eml"), "--out",
                 path("bob.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cipher_of("bob.eml"), "aes-256-gcm");
  // openssl cms announces AES-CBC, 3DES and RC2, no GCM.
  receive_signed_from(alice);
  r = tool({"smime", "encrypt", "--to", "alice@example.org", "--recipient", bob.pem, "--in",
            path("msg.eml"), "--out", path("both.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("AES-256-CBC instead of AES-256-GCM: not announced by"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("alice"), std::string::npos) << r.err;
  EXPECT_EQ(cipher_of("both.eml"), "aes-256-cbc");
  EXPECT_NE(read_file(path("both.eml")).find("smime-type=enveloped-data"), std::string::npos);
  expect_decrypts(alice, "both.eml");
  expect_decrypts(bob, "both.eml");
}

TEST_F(Capabilities, AMessageWithoutCapabilitiesKeepsGcm) {
  auto carol = ca_->issue(CertSpec("carol", {"carol@example.org"}));
  receive_signed_from(carol, {"-nosmimecap"});
  auto r = tool({"smime", "encrypt", "--to", "carol@example.org", "--in", path("msg.eml"), "--out",
                 path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("instead of"), std::string::npos) << r.err;
  EXPECT_EQ(cipher_of("enc.eml"), "aes-256-gcm");
  expect_decrypts(carol, "enc.eml");
}

TEST_F(Capabilities, ACertificatesCapabilitiesExtensionIsHonoured) {
  // RFC 4262: SMIMECapabilities as an extension, here only aes128-CBC
  // (SEQUENCE { SEQUENCE { OID 2.16.840.1.101.3.4.1.2 } }).
  Issued gina{path("gina.pem"), "", path("gina.key")};
  run_ok({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", gina.key, "-out",
          gina.pem, "-subj", "/CN=gina", "-days", "30", "-addext",
          "subjectAltName=email:gina@example.org", "-addext",
          "1.2.840.113549.1.9.15=DER:300D300B0609608648016503040102"});
  auto r = tool({"smime", "encrypt", "--recipient", gina.pem, "--in", path("msg.eml"), "--out",
                 path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("AES-128-CBC instead of AES-256-GCM"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("its certificate's SMIMECapabilities extension"), std::string::npos)
      << r.err;
  EXPECT_EQ(cipher_of("enc.eml"), "aes-128-cbc");
  expect_decrypts(gina, "enc.eml");
  // --cbc with a recipient that can do AES-128-CBC only.
  r = tool({"smime", "encrypt", "--cbc", "--recipient", gina.pem, "--in", path("msg.eml"), "--out",
            path("cbc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("AES-128-CBC instead of AES-256-CBC"), std::string::npos) << r.err;
  EXPECT_EQ(cipher_of("cbc.eml"), "aes-128-cbc");
}

}  // namespace
