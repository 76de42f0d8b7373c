// tokenkit doctor on tokens made broken on purpose: certificates issued by a
// test CA (openssl), written with pkcs11-tool with a wrong CKA_ID, no label,
// no emailProtection, an expired validity; each gives its finding, and
// --fix repairs ids and labels so that a second run is clean.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A CA and certificates for one key, made once per process by openssl.
struct DoctorPki {
  std::string dir;
  std::string f(const std::string& n) const { return dir + "/" + n; }
  DoctorPki() {
    dir = make_temp_dir("doctor-pki");
    auto ossl = [](std::vector<std::string> a) {
      a.insert(a.begin(), "openssl");
      run_ok(a);
    };
    ossl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f("ca.key"), "-out",
          f("ca.crt"), "-days", "3650", "-subj", "/CN=Doctor Test CA", "-addext",
          "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
    ossl({"req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", f("dora.pem"), "-out",
          f("dora.csr"), "-subj", "/CN=Dora Example/emailAddress=dora@example.org"});
    write_file(f("good.ext"),
               "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
               "extendedKeyUsage=emailProtection\nsubjectAltName=email:dora@example.org\n");
    write_file(f("noemail.ext"),
               "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
               "extendedKeyUsage=clientAuth\nsubjectAltName=email:dora@example.org\n");
    for (std::string n : {"good", "noemail"})
      ossl({"x509", "-req", "-in", f("dora.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"),
            "-CAcreateserial", "-days", "365", "-extfile", f(n + ".ext"), "-outform", "DER", "-out",
            f(n + ".der")});
    // Expired: `openssl ca` is the one that takes explicit dates.
    fs::create_directories(f("ca-db"));
    write_file(f("ca-db/index.txt"), "");
    write_file(f("ca-db/serial"), "1000\n");
    write_file(f("ca.cnf"), "[ca]\ndefault_ca=d\n[d]\ndatabase=" + f("ca-db/index.txt") +
                                "\nnew_certs_dir=" + f("ca-db") + "\nserial=" + f("ca-db/serial") +
                                "\ndefault_md=sha256\npolicy=p\nunique_subject=no\n"
                                "[p]\ncommonName=supplied\nemailAddress=optional\n");
    ossl({"ca", "-batch", "-config", f("ca.cnf"), "-cert", f("ca.crt"), "-keyfile", f("ca.key"),
          "-startdate", "20200101000000Z", "-enddate", "20210101000000Z", "-extfile", f("good.ext"),
          "-notext", "-in", f("dora.csr"), "-out", f("expired.pem")});
    ossl({"x509", "-in", f("expired.pem"), "-outform", "DER", "-out", f("expired.der")});
    ossl({"pkey", "-in", f("dora.pem"), "-outform", "DER", "-out", f("dora.key.der")});
    ossl({"pkey", "-in", f("dora.pem"), "-pubout", "-outform", "DER", "-out", f("dora.pub.der")});
  }
  ~DoctorPki() { remove_tree(dir); }
};
const DoctorPki& pki() {
  static DoctorPki p;
  return p;
}

class Doctor : public ::testing::Test {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>("tokenkit", "doc");
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
    env_["TOKENKIT_PIN"] = kUserPin;
    env_["HOME"] = token_->dir();  // no profile, no NSS database: warnings only
    env_["XDG_CONFIG_HOME"] = token_->dir() + "/config";
  }
  // The key pair with `key_id`, and `cert` with `cert_id` and `cert_label`
  // (none when empty), written by pkcs11-tool.
  void write(const std::string& cert, const std::string& key_id, const std::string& cert_id,
             const std::string& cert_label = "dora") {
    const std::vector<std::string> login{"--login", "--pin", kUserPin};
    auto with = [&](std::vector<std::string> a) {
      a.insert(a.end(), login.begin(), login.end());
      token_->pkcs11_tool(a);
    };
    with({"--write-object", pki().f("dora.key.der"), "--type", "privkey", "--id", key_id, "--label",
          "dora", "--usage-sign", "--usage-decrypt"});
    with({"--write-object", pki().f("dora.pub.der"), "--type", "pubkey", "--id", key_id, "--label",
          "dora"});
    std::vector<std::string> c{"--write-object", pki().f(cert + ".der"), "--type", "cert", "--id",
                               cert_id};
    if (!cert_label.empty()) c.insert(c.end(), {"--label", cert_label});
    with(c);
  }
  ProcessResult doctor(std::vector<std::string> args) {
    args.insert(args.begin(), {TOKENKIT_BINARY, "doctor", "pkcs11:token=doc", "--email",
                               "dora@example.org", "--ca-file", pki().f("ca.crt")});
    return run(args, env_);
  }
  // The findings of `check` with `severity`.
  static std::vector<Json> findings(const ProcessResult& r, const std::string& check,
                                    const std::string& severity) {
    std::vector<Json> out;
    const Json j = Json::parse(r.out);
    for (const auto& f : j["findings"])
      if (f["check"] == check && f["severity"] == severity) out.push_back(f);
    return out;
  }
  std::string objects_listing() {
    return run_ok({"pkcs11-tool", "--module", token_->module(), "--token-label", "doc",
                   "--list-objects", "--login", "--pin", kUserPin},
                  env_);
  }
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

}  // namespace

TEST_F(Doctor, AGoodTokenHasNoErrorsAndItsKeySignsAndDecrypts) {
  write("good", "0a", "0a");
  auto r = doctor({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["errors"], 0) << r.out;
  for (const char* c : {"ids", "label", "key usage", "email protection", "email", "validity",
                        "chain", "sign", "decrypt", "public certificates"})
    EXPECT_EQ(findings(r, c, "ok").size(), 1u) << c << "\n" << r.out;
  // Nothing registered in this empty HOME: said, but a warning only.
  EXPECT_FALSE(findings(r, "registered", "warning").empty()) << r.out;
}

TEST_F(Doctor, WithoutAPinKeyOperationsAreSkippedWithAWarning) {
  write("good", "0a", "0a");
  env_.erase("TOKENKIT_PIN");
  auto r = doctor({"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(findings(r, "sign", "warning").size(), 1u) << r.out;
  EXPECT_TRUE(findings(r, "sign", "ok").empty());
}

TEST_F(Doctor, MismatchedIdIsFoundAndFixed) {
  write("good", "0a", "0b");
  auto r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto ids = findings(r, "ids", "error");
  ASSERT_EQ(ids.size(), 1u) << r.out;
  EXPECT_NE(ids[0]["object"].get<std::string>().find("id 0b"), std::string::npos) << r.out;

  // --fix refuses to act unconfirmed without a terminal.
  r = doctor({"--fix"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(findings(doctor({"--json"}), "ids", "error").size(), 1u);

  r = doctor({"--fix", "--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("set CKA_ID of certificate \"dora\" (id 0b) to 0a"), std::string::npos)
      << r.out;
  r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Json::parse(r.out)["errors"], 0) << r.out;
  EXPECT_EQ(findings(r, "sign", "ok").size(), 1u) << r.out;
  // A peer sees the repaired id too.
  const std::string listing = objects_listing();
  EXPECT_EQ(listing.find("ID:         0b"), std::string::npos) << listing;
}

TEST_F(Doctor, MismatchedIdIsFoundBeforeLoginThroughThePublicKey) {
  write("good", "0a", "0b");
  env_.erase("TOKENKIT_PIN");
  auto r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto ids = findings(r, "ids", "error");
  ASSERT_EQ(ids.size(), 1u) << r.out;
  EXPECT_NE(ids[0]["fix"].get<std::string>().find("PIN"), std::string::npos) << r.out;
}

TEST_F(Doctor, EmptyLabelIsFoundAndFixedWithTheKeysLabel) {
  write("good", "0a", "0a", "");
  auto r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  ASSERT_EQ(findings(r, "label", "error").size(), 1u) << r.out;
  r = doctor({"--fix", "--yes"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(findings(r, "label", "ok").size(), 1u) << r.out;
  const std::string listing = objects_listing();
  std::size_t cert = listing.find("Certificate Object");
  ASSERT_NE(cert, std::string::npos) << listing;
  EXPECT_NE(listing.find("label:      dora", cert), std::string::npos) << listing;
}

TEST_F(Doctor, CertificateWithoutEmailProtectionIsAnError) {
  write("noemail", "0a", "0a");
  auto r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(findings(r, "email protection", "error").size(), 1u) << r.out;
  EXPECT_TRUE(findings(r, "ids", "error").empty()) << r.out;
}

TEST_F(Doctor, ExpiredCertificateIsAnError) {
  write("expired", "0a", "0a");
  auto r = doctor({"--json"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto v = findings(r, "validity", "error");
  ASSERT_EQ(v.size(), 1u) << r.out;
  EXPECT_NE(v[0]["message"].get<std::string>().find("expired"), std::string::npos);
}

TEST_F(Doctor, WrongAddressAndUntrustedChainAreErrors) {
  write("good", "0a", "0a");
  auto r =
      run({TOKENKIT_BINARY, "doctor", "pkcs11:token=doc", "--email", "eve@example.org", "--json"},
          env_);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto e = findings(r, "email", "error");
  ASSERT_EQ(e.size(), 1u) << r.out;
  EXPECT_NE(e[0]["message"].get<std::string>().find("dora@example.org"), std::string::npos);
  EXPECT_EQ(findings(r, "chain", "error").size(), 1u) << r.out;
}

TEST_F(Doctor, RegistrationIsSeenWhereItWasMade) {
  write("good", "0a", "0a");
  const std::string db = token_->dir() + "/nssdb";
  ASSERT_EQ(run({TOKENKIT_BINARY, "register", "--nss-db", db}, env_).exit_code, 0);
  auto r = doctor({"--nss-db", db, "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(findings(r, "registered", "ok").size(), 1u) << r.out;
}

TEST(DoctorSoftHsm, TokenWithoutPublicCertificatesIsWarned) {
  FreshToken t("softhsm2", "doc");
  t.write_rsa();
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  env["HOME"] = t.dir();
  auto r = run({TOKENKIT_BINARY, "doctor", "pkcs11:token=doc", "--json"}, env);
  ASSERT_FALSE(r.out.empty()) << r.err;
  bool warned = false;
  const Json j = Json::parse(r.out);
  for (const auto& f : j["findings"])
    if (f["check"] == "public certificates" && f["severity"] == "warning") warned = true;
  EXPECT_TRUE(warned) << r.out;
}
