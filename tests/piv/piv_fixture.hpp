// The fixture of the tests on the emulated YubiKey (../shared/emulators):
// a fresh card per test (tests/piv/fresh-card.sh), tokenkit and peer tools
// run against it, and the suite stops at the first unexpected wrong PIN.
// Only inside the piv ctest fixture (tests/piv/CMakeLists.txt), which starts
// the card and sets TOKENKIT_PIV_LAB.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "p12_files.hpp"
#include "process.hpp"
#include "tokens.hpp"

namespace tokenkit::test {

class PivCardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // Never a silent pass: outside the fixture there is no card to test.
    ASSERT_NE(std::getenv("TOKENKIT_PIV_LAB"), nullptr)
        << "run through ctest (label piv): the fixture piv_lab_up starts the emulated card";
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    card_ = std::make_unique<FreshToken>("ykcs11");
    write_file(card_->dir() + "/pin", kUserPin);
    write_file(card_->dir() + "/so", kPivManagementKey);
    write_file(card_->dir() + "/pw", p12_files().password + "\n");
  }

  ProcessResult tokenkit(std::vector<std::string> args, const Env& env = {}) {
    args.insert(args.begin(), TOKENKIT_BINARY);
    auto r = run(args, env);
    if (r.exit_code == 5 && !expect_wrong_pin_) note_unexpected_wrong_pin();
    return r;
  }

  ProcessResult import(const std::string& file, std::vector<std::string> extra,
                       const std::string& module = kYkcs11Module, const Env& env = {}) {
    // The token selected by the label its module reports, as a user would.
    const std::string label = std::string(module) == kOpenscModule ? "PIV_II" : card_->label();
    std::vector<std::string> a{"import-p12",      file,
                               "--module",        module,
                               "--token-label",   label,
                               "--pin-file",      card_->dir() + "/pin",
                               "--password-file", card_->dir() + "/pw"};
    a.insert(a.end(), extra.begin(), extra.end());
    return tokenkit(a, env);
  }

  // Objects through a module, logged in, as tokenkit objects --json sees them.
  nlohmann::json objects(const std::string& module) {
    auto r = tokenkit(
        {"objects", "--module", module, "--login", "--pin-file", card_->dir() + "/pin", "--json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? nlohmann::json::parse(r.out)["objects"] : nlohmann::json::array();
  }

  static int count(const nlohmann::json& objs, const std::string& cls, const std::string& id) {
    int n = 0;
    for (const auto& o : objs) n += o["class"] == cls && o["id"] == id;
    return n;
  }

  // Signs with the key `id` through OpenSC's PIV driver (pkcs11-tool, not
  // tokenkit) and checks the signature with the certificate by openssl.
  void sign_through_opensc(const std::string& id, const std::string& mech,
                           const std::string& cert_pem) {
    const std::string d = card_->dir();
    write_file(d + "/data", "a challenge for the PIV card\n");
    std::vector<std::string> argv{"pkcs11-tool",
                                  "--module",
                                  kOpenscModule,
                                  "--login",
                                  "--pin",
                                  kUserPin,
                                  "--sign",
                                  "--id",
                                  id,
                                  "-m",
                                  mech,
                                  "--input-file",
                                  d + "/data",
                                  "--output-file",
                                  d + "/sig"};
    if (mech == "ECDSA-SHA256") argv.insert(argv.end(), {"--signature-format", "openssl"});
    run_ok(argv);
    run_ok({"openssl", "x509", "-in", cert_pem, "-pubkey", "-noout", "-out", d + "/pub.pem"});
    auto r = run({"openssl", "dgst", "-sha256", "-verify", d + "/pub.pem", "-signature", d + "/sig",
                  d + "/data"});
    EXPECT_EQ(r.exit_code, 0) << "a signature made through OpenSC does not verify: " << r.out
                              << r.err;
  }

  std::unique_ptr<FreshToken> card_;
  bool expect_wrong_pin_ = false;
};

}  // namespace tokenkit::test
