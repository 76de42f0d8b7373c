// tokenkit import-p12 onto the emulated YubiKey (../shared/emulators):
// written through Yubico's ykcs11 into a PIV slot, then seen and used
// through OpenSC's PIV driver. Runs only inside the piv ctest fixture
// (tests/piv/CMakeLists.txt), which starts the card and sets TOKENKIT_PIV_LAB.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "piv_fixture.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

// The fixture (a fresh card per test, helpers to run tokenkit and peers) is
// shared with the other PIV suites.
using PivImport = PivCardTest;

TEST_F(PivImport, RsaIntoSlot9aThroughYkcs11IsUsedThroughOpensc) {
  auto r = import(p12_files().rsa_chain,
                  {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/so", "--no-chain"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("in PIV slot 9a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("signature"), std::string::npos) << r.out;
  Json yk = objects(kYkcs11Module);
  EXPECT_EQ(count(yk, "private key", "01"), 1) << yk.dump(2);
  EXPECT_EQ(count(yk, "certificate", "01"), 1) << yk.dump(2);
  Json sc = objects(kOpenscModule);
  EXPECT_EQ(count(sc, "private key", "01"), 1) << sc.dump(2);
  EXPECT_EQ(count(sc, "certificate", "01"), 1) << sc.dump(2);
  sign_through_opensc("01", "SHA256-RSA-PKCS", p12_files().rsa_cert);
  // Again: the same identity is already there, nothing is written.
  auto again = import(p12_files().rsa_chain,
                      {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/so", "--no-chain"});
  EXPECT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("Wrote 0 objects"), std::string::npos) << again.out;
}

TEST_F(PivImport, EcIntoSlot9cNeedsAContextLoginAndWorksThroughOpensc) {
  auto r = import(p12_files().ec_chain,
                  {"--piv-slot", "9c", "--so-pin-file", card_->dir() + "/so", "--no-chain"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("signature"), std::string::npos) << r.out;
  Json yk = objects(kYkcs11Module);
  EXPECT_EQ(count(yk, "private key", "02"), 1) << yk.dump(2);
  EXPECT_EQ(count(yk, "certificate", "02"), 1) << yk.dump(2);
  sign_through_opensc("02", "ECDSA-SHA256", p12_files().ec_cert);
}

TEST_F(PivImport, WrongUserPinLeavesTheCardAsBefore) {
  Json before = objects(kYkcs11Module);
  write_file(card_->dir() + "/pin", "654321");
  expect_wrong_pin_ = true;
  auto r =
      import(p12_files().rsa_chain, {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/so"});
  EXPECT_EQ(r.exit_code, 5) << r.out << r.err;
  EXPECT_NE(r.err.find("CKR_PIN_INCORRECT"), std::string::npos) << r.err;
  write_file(card_->dir() + "/pin", kUserPin);
  EXPECT_EQ(objects(kYkcs11Module), before);
}

TEST_F(PivImport, WrongManagementKeyLeavesTheCardAsBefore) {
  Json before = objects(kYkcs11Module);
  write_file(card_->dir() + "/bad", "0102030405060708010203040506070801020304050607FF");
  expect_wrong_pin_ = true;
  auto r =
      import(p12_files().rsa_chain, {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/bad"});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("C_Login"), std::string::npos) << r.err;
  EXPECT_EQ(objects(kYkcs11Module), before);
}

// A failed verification removes the certificate again; the key stays in
// its slot, because a PIV card before YubiKey 5.7 cannot delete keys, and
// the error says so (docs/import-p12.md, "Hardware tokens").
TEST_F(PivImport, FailedVerificationRemovesTheCertificateAndSaysTheKeyStays) {
  auto r = import(
      p12_files().rsa_chain,
      {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/so", "--no-chain"}, FAULTY_MODULE,
      {{"TOKENKIT_FAULTY_TARGET", kYkcs11Module}, {"TOKENKIT_FAULTY_CORRUPT_SIGN", "1"}});
  EXPECT_EQ(r.exit_code, 12) << r.out << r.err;
  EXPECT_NE(r.err.find("the private key stays in its slot"), std::string::npos) << r.err;
  Json yk = objects(kYkcs11Module);
  EXPECT_EQ(count(yk, "certificate", "01"), 0) << yk.dump(2);
}

TEST_F(PivImport, PivCardsNeedASlotAndRefuseNssIds) {
  auto no_slot = import(p12_files().rsa_chain, {"--so-pin-file", card_->dir() + "/so"});
  EXPECT_EQ(no_slot.exit_code, 2) << no_slot.err;
  EXPECT_NE(no_slot.err.find("--piv-slot 9a|9c|9d|9e"), std::string::npos) << no_slot.err;
  auto nss = import(p12_files().rsa_chain,
                    {"--id", std::string(40, 'a'), "--so-pin-file", card_->dir() + "/so"});
  EXPECT_EQ(nss.exit_code, 2) << nss.err;
  EXPECT_NE(nss.err.find("NSS-style"), std::string::npos) << nss.err;
  auto bad = import(p12_files().rsa_chain, {"--piv-slot", "9b"});
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  auto no_so = import(p12_files().rsa_chain, {"--piv-slot", "9a"});
  EXPECT_NE(no_so.exit_code, 0) << no_so.out;
  EXPECT_NE(no_so.err.find("management key"), std::string::npos) << no_so.err;
}

TEST_F(PivImport, OpenscPivDriverCannotImportAndSaysSo) {
  auto r = import(p12_files().rsa_chain, {"--piv-slot", "9a"}, kOpenscModule);
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  EXPECT_NE(r.err.find("OpenSC's PIV driver cannot write"), std::string::npos) << r.err;
}

class PivListing : public PivImport, public ::testing::WithParamInterface<std::string> {};

TEST_P(PivListing, TokensAndObjectsWork) {
  ASSERT_EQ(import(p12_files().rsa_chain,
                   {"--piv-slot", "9a", "--so-pin-file", card_->dir() + "/so", "--no-chain"})
                .exit_code,
            0);
  const std::string module = GetParam() == "ykcs11" ? kYkcs11Module : kOpenscModule;
  auto t = tokenkit({"tokens", "--module", module});
  EXPECT_EQ(t.exit_code, 0) << t.err;
  EXPECT_NE(t.out.find(GetParam() == "ykcs11" ? "YubiKey PIV #1234567" : "piv_II"),
            std::string::npos)
      << t.out;
  auto o =
      tokenkit({"objects", "--module", module, "--login", "--pin-file", card_->dir() + "/pin"});
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_NE(o.out.find("Alice"), std::string::npos) << o.out;
}

INSTANTIATE_TEST_SUITE_P(Modules, PivListing, ::testing::Values("ykcs11", "opensc-piv"));

}  // namespace
