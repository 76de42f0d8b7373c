// tokenkit on the emulated TPM 2.0 token (../shared/emulators/tpm-up.sh,
// tpm2-pkcs11 over tpm2-abrmd and swtpm). A TPM keeps only keys generated
// on it: import-p12 must refuse cleanly and leave the token as it was, and
// keygen + csr + import-cert must give a key whose signatures openssl
// verifies with the certificate a CA issued for it. Runs only inside the tpm
// ctest fixture (tests/tpm/CMakeLists.txt), which starts the TPM.
//
// Signatures are made by tokenkit's own provider (smime sign) and by
// pkcs11-tool, never through libp11's engine: loading it breaks tpm2-pkcs11
// logins in the same process (FIELD-NOTES).
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class Tpm : public ::testing::Test {
 protected:
  void SetUp() override {
    // Never a silent pass: outside the fixture there is no TPM to test.
    ASSERT_NE(std::getenv("TOKENKIT_TPM_LAB"), nullptr)
        << "run through ctest (label tpm): the fixture tpm_lab_up starts the emulated TPM";
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>("tpm", "tpmtok");
    dir_ = token_->dir();
    write_file(dir_ + "/pin", kUserPin);
    write_file(dir_ + "/pw", p12_files().password + "\n");
    env_ = token_->env();
  }

  ProcessResult tokenkit(std::vector<std::string> args) {
    args.insert(args.begin(), TOKENKIT_BINARY);
    auto r = run(args, env_);
    if (r.exit_code == 5) note_unexpected_wrong_pin();
    return r;
  }
  // The options that name the token and the PIN source, as a user gives them.
  std::vector<std::string> on_token(std::vector<std::string> args) {
    args.insert(args.end(),
                {"--module", kTpmModule, "--token-label", "tpmtok", "--pin-file", dir_ + "/pin"});
    return args;
  }

  Json objects() {
    auto r = tokenkit(on_token({"objects", "--login", "--json"}));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? Json::parse(r.out)["objects"] : Json::array();
  }

  // keygen -> csr (through the URI keygen printed) -> the test CA issues ->
  // import-cert. Returns the id of the key pair.
  std::string key_with_certificate(const std::string& type, const std::string& label) {
    auto r = tokenkit(on_token({"keygen", "--type", type, "--label", label, "--json"}));
    EXPECT_EQ(r.exit_code, 0) << type << ": " << r.out << r.err;
    if (r.exit_code != 0) return {};
    const Json key = Json::parse(r.out)["private_key"];
    EXPECT_EQ(key["sensitive"], true) << type;
    EXPECT_EQ(key["extractable"], false) << type;
    EXPECT_EQ(key["never_extractable"], true) << type << ": born on the TPM";
    const std::string id = key["id"];
    // The URI tokenkit printed selects the key: the TPM pads its model with
    // NUL bytes, which must not end up in the token's fields of the URI (the
    // id is a hash and may hold a zero byte; it is percent-encoded as it is).
    const std::string uri = key["uri"];
    const std::string token_part = uri.substr(0, uri.find(";id="));
    EXPECT_NE(token_part.find("token=tpmtok"), std::string::npos) << uri;
    EXPECT_EQ(token_part.find("%00"), std::string::npos) << uri;
    r = tokenkit({"csr", "--module", kTpmModule, "--key", uri, "--subject", "/CN=" + label,
                  "--email", "alice@example.org", "--out", dir_ + "/req.csr", "--pin-file",
                  dir_ + "/pin"});
    EXPECT_EQ(r.exit_code, 0) << type << ": " << r.out << r.err;
    // The request's signature, made on the TPM, checked by openssl.
    auto v = run({"openssl", "req", "-in", dir_ + "/req.csr", "-verify", "-noout"});
    EXPECT_EQ(v.exit_code, 0) << type << ": " << v.out << v.err;
    const std::string ca = p12_files().dir;
    run_ok({"openssl", "x509", "-req", "-in", dir_ + "/req.csr", "-CA", ca + "/ca.crt", "-CAkey",
            ca + "/ca.key", "-copy_extensions", "copy", "-days", "30", "-set_serial", "4242",
            "-out", dir_ + "/issued.crt"});
    r = tokenkit(on_token({"import-cert", dir_ + "/issued.crt", "--login", "--json"}));
    EXPECT_EQ(r.exit_code, 0) << type << ": " << r.out << r.err;
    if (r.exit_code == 0) {
      const Json c = Json::parse(r.out);
      EXPECT_EQ(c["id"], id) << "paired to its key by public key";
      EXPECT_EQ(c["label"], label);
      EXPECT_EQ(c["already_present"], false);
    }
    return id;
  }

  // A signature by pkcs11-tool with the key `id`, checked by openssl with the
  // certificate's public key.
  void sign_with_pkcs11_tool(const std::string& id, const std::string& mech) {
    write_file(dir_ + "/data", "a challenge for the TPM\n");
    std::vector<std::string> argv{
        "pkcs11-tool", "--module",     kTpmModule,     "--token-label", "tpmtok",     "--login",
        "--pin",       kUserPin,       "--sign",       "--id",          id,           "-m",
        mech,          "--input-file", dir_ + "/data", "--output-file", dir_ + "/sig"};
    if (mech == "ECDSA-SHA256") argv.insert(argv.end(), {"--signature-format", "openssl"});
    run_ok(argv, env_);
    run_ok({"openssl", "x509", "-in", dir_ + "/issued.crt", "-pubkey", "-noout", "-out",
            dir_ + "/pub.pem"});
    auto r = run({"openssl", "dgst", "-sha256", "-verify", dir_ + "/pub.pem", "-signature",
                  dir_ + "/sig", dir_ + "/data"});
    EXPECT_EQ(r.exit_code, 0) << mech << ": the signature does not verify: " << r.out << r.err;
  }

  // An S/MIME signature by tokenkit's own provider, checked by openssl
  // against the test CA.
  void sign_with_tokenkit(const std::string& id) {
    write_file(dir_ + "/msg.eml",
               "Subject: from the TPM\r\n\r\nSigned by a key that never left it.\r\n");
    std::string pct;
    for (std::size_t i = 0; i < id.size(); i += 2) pct += "%" + id.substr(i, 2);
    auto r = tokenkit({"smime", "sign", "--module", kTpmModule, "--key",
                       "pkcs11:token=tpmtok;id=" + pct, "--pin-file", dir_ + "/pin", "--in",
                       dir_ + "/msg.eml", "--out", dir_ + "/signed.eml"});
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    auto v = run({"openssl", "smime", "-verify", "-in", dir_ + "/signed.eml", "-CAfile",
                  p12_files().dir + "/ca.crt", "-purpose", "any", "-out", dir_ + "/content"});
    EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
    EXPECT_NE(read_file(dir_ + "/content").find("never left it"), std::string::npos);
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
  Env env_;
};

TEST_F(Tpm, ImportP12IsRefusedWithAHintAndTheTokenIsUnchanged) {
  // Something on the token already, so "unchanged" is not just "empty".
  key_with_certificate("ec:p256", "already here");
  const Json before = objects();
  ASSERT_EQ(before.size(), 3u) << before.dump(2);
  for (const auto& extra : {std::vector<std::string>{}, std::vector<std::string>{"--dry-run"}}) {
    std::vector<std::string> a{"import-p12", p12_files().rsa_chain, "--password-file",
                               dir_ + "/pw"};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tokenkit(on_token(a));
    EXPECT_EQ(r.exit_code, 7) << r.out << r.err;  // a token error (docs/exit-codes.md)
    EXPECT_NE(r.err.find("token \"tpmtok\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("TPM"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("cannot take an imported key"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("tokenkit keygen"), std::string::npos)
        << "suggests on-token generation: " << r.err;
    EXPECT_EQ(r.out, "");
  }
  EXPECT_EQ(objects(), before);
  // The profile is right about the TPM: it does refuse an imported key
  // (written here by pkcs11-tool, not by tokenkit).
  auto r = run({"pkcs11-tool", "--module", kTpmModule, "--token-label", "tpmtok", "--login",
                "--pin", kUserPin, "--write-object", test_keys().rsa_key_der, "--type", "privkey",
                "--id", "77", "--label", "imported"},
               env_);
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(objects(), before);
}

TEST_F(Tpm, EcKeyGeneratedCertifiedAndUsedForSignatures) {
  const std::string id = key_with_certificate("ec:p256", "Alice TPM");
  ASSERT_FALSE(id.empty());
  const Json objs = objects();
  int with_id = 0;
  for (const auto& o : objs) with_id += o["id"] == id;
  EXPECT_EQ(with_id, 3) << "private key, public key and certificate under one id: " << objs.dump(2);
  sign_with_pkcs11_tool(id, "ECDSA-SHA256");
  sign_with_tokenkit(id);
  // Storing the certificate again writes nothing.
  auto r = tokenkit(on_token({"import-cert", dir_ + "/issued.crt", "--login", "--json"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["already_present"], true);
  EXPECT_EQ(objects().size(), objs.size());
}

TEST_F(Tpm, RsaKeyGeneratedCertifiedAndUsedForSignatures) {
  const std::string id = key_with_certificate("rsa:2048", "Bob TPM");
  ASSERT_FALSE(id.empty());
  sign_with_pkcs11_tool(id, "SHA256-RSA-PKCS");
  sign_with_tokenkit(id);
}

TEST_F(Tpm, KeyTypesTheTpmCannotMakeAreRefusedNamingTheToken) {
  const Json before = objects();
  auto r = tokenkit(on_token({"keygen", "--type", "ed25519", "--label", "edwards"}));
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  EXPECT_NE(r.err.find("token \"tpmtok\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("Ed25519"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cannot generate Ed25519 keys"), std::string::npos) << r.err;
  EXPECT_EQ(objects(), before);
}

TEST_F(Tpm, WrongPinIsRefusedAndNothingIsWritten) {
  const Json before = objects();
  write_file(dir_ + "/pin", "654321");
  auto r = run({TOKENKIT_BINARY, "keygen", "--module", kTpmModule, "--token-label", "tpmtok",
                "--pin-file", dir_ + "/pin", "--type", "ec:p256", "--label", "x"},
               env_);
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("CKR_PIN_INCORRECT"), std::string::npos) << r.err;
  write_file(dir_ + "/pin", kUserPin);
  EXPECT_EQ(objects(), before);
}

}  // namespace
