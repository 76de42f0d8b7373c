// Keys born on the emulated YubiKey: tokenkit keygen into a chosen PIV slot
// through Yubico's ykcs11 (with the management key as SO PIN), a request
// signed on the card (tokenkit csr), the certificate the test CA issues for it
// stored in the same slot (tokenkit import-cert), then used through OpenSC's
// PIV driver and checked by openssl. OpenSC itself cannot generate keys on a
// PIV card and tokenkit says so. Runs only inside the piv ctest fixture.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "piv_fixture.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

struct SlotCase {
  std::string slot, type, id, mech;
  // OpenSC takes an EC key in 9d for key agreement only: sign through ykcs11.
  bool sign_through_opensc = true;
};

// How ctest names the cases: "9a rsa:2048".
void PrintTo(const SlotCase& c, std::ostream* os) { *os << c.slot << " " << c.type; }

class PivKeygen : public PivCardTest {
 protected:
  ProcessResult keygen(const std::string& module, std::vector<std::string> extra) {
    std::vector<std::string> a{"keygen", "--module", module, "--pin-file", card_->dir() + "/pin"};
    if (module == kYkcs11Module) a.insert(a.end(), {"--token-label", card_->label()});
    a.insert(a.end(), extra.begin(), extra.end());
    return tokenkit(a);
  }

  // Signs `data` with the key `id` through `module` (pkcs11-tool, not
  // tokenkit) and checks it with the issued certificate by openssl.
  void sign_and_verify(const std::string& module, const std::string& id, const std::string& mech,
                       const std::string& cert) {
    const std::string d = card_->dir();
    write_file(d + "/data", "a challenge for a key born on the card\n");
    std::vector<std::string> argv{
        "pkcs11-tool", "--module",      module,    "--login", "--pin", kUserPin,
        "--sign",      "--id",          id,        "-m",      mech,    "--input-file",
        d + "/data",   "--output-file", d + "/sig"};
    if (mech == "ECDSA-SHA256") argv.insert(argv.end(), {"--signature-format", "openssl"});
    run_ok(argv);
    run_ok({"openssl", "x509", "-in", cert, "-pubkey", "-noout", "-out", d + "/pub.pem"});
    auto r = run({"openssl", "dgst", "-sha256", "-verify", d + "/pub.pem", "-signature", d + "/sig",
                  d + "/data"});
    EXPECT_EQ(r.exit_code, 0) << "through " << module << ": " << r.out << r.err;
  }
};

class PivKeygenSlots : public PivKeygen, public ::testing::WithParamInterface<SlotCase> {};

TEST_P(PivKeygenSlots, KeyBornInTheSlotGetsItsCertificateAndSigns) {
  const SlotCase& c = GetParam();
  const std::string d = card_->dir();
  auto r = keygen(kYkcs11Module, {"--piv-slot", c.slot, "--type", c.type, "--label",
                                  "Alice " + c.slot, "--so-pin-file", d + "/so", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const Json key = Json::parse(r.out)["private_key"];
  EXPECT_EQ(key["id"], c.id) << "PIV slot " << c.slot << " is ykcs11's id " << c.id;
  EXPECT_EQ(key["sensitive"], true);
  EXPECT_EQ(key["extractable"], false);

  // The request, signed on the card (9c: with the PIN again, as the card wants).
  r = tokenkit({"csr", "--module", kYkcs11Module, "--token-label", card_->label(), "--key",
                "pkcs11:id=%" + c.id + ";type=private", "--subject", "/CN=Alice " + c.slot,
                "--email", "alice@example.org", "--out", d + "/req.csr", "--pin-file", d + "/pin"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = run({"openssl", "req", "-in", d + "/req.csr", "-verify", "-noout"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
  const std::string ca = p12_files().dir;
  run_ok({"openssl", "x509", "-req", "-in", d + "/req.csr", "-CA", ca + "/ca.crt", "-CAkey",
          ca + "/ca.key", "-copy_extensions", "copy", "-days", "30", "-set_serial", "7001", "-out",
          d + "/issued.crt"});

  r = tokenkit({"import-cert", d + "/issued.crt", "--module", kYkcs11Module, "--token-label",
                card_->label(), "--so-pin-file", d + "/so", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(Json::parse(r.out)["id"], c.id);
  EXPECT_EQ(Json::parse(r.out)["already_present"], false);

  // The slot holds a key now: a second keygen there is refused, and the key
  // stays (the signature below still verifies with its certificate).
  auto again = keygen(kYkcs11Module, {"--piv-slot", c.slot, "--type", c.type, "--label", "again",
                                      "--so-pin-file", d + "/so"});
  EXPECT_EQ(again.exit_code, 2) << again.out << again.err;
  EXPECT_NE(again.err.find("PIV slot " + c.slot), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("already holds a private key"), std::string::npos) << again.err;

  // OpenSC sees the key and the certificate in the slot.
  Json sc = objects(kOpenscModule);
  EXPECT_EQ(count(sc, "private key", c.id), 1) << sc.dump(2);
  EXPECT_EQ(count(sc, "certificate", c.id), 1) << sc.dump(2);
  sign_and_verify(c.sign_through_opensc ? kOpenscModule : kYkcs11Module, c.id, c.mech,
                  d + "/issued.crt");
}

INSTANTIATE_TEST_SUITE_P(Slots, PivKeygenSlots,
                         ::testing::Values(SlotCase{"9a", "rsa:2048", "01", "SHA256-RSA-PKCS"},
                                           SlotCase{"9c", "ec:p256", "02", "ECDSA-SHA256"},
                                           SlotCase{"9d", "ec:p256", "03", "ECDSA-SHA256", false},
                                           SlotCase{"9e", "ec:p384", "04", "ECDSA-SHA256"}),
                         [](const auto& i) { return "slot" + i.param.slot; });

// A request signed through OpenSC's PIV driver for a key ykcs11 generated:
// tokenkit's provider works through either module.
TEST_F(PivKeygen, RequestForACardKeyCanBeSignedThroughOpensc) {
  const std::string d = card_->dir();
  auto r = keygen(kYkcs11Module, {"--piv-slot", "9a", "--type", "ec:p256", "--label", "Alice",
                                  "--so-pin-file", d + "/so"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = tokenkit({"csr", "--module", kOpenscModule, "--key", "pkcs11:id=%01;type=private",
                "--subject", "/CN=Alice through OpenSC", "--out", d + "/req.csr", "--pin-file",
                d + "/pin"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  auto v = run({"openssl", "req", "-in", d + "/req.csr", "-verify", "-noout"});
  EXPECT_EQ(v.exit_code, 0) << v.out << v.err;
}

TEST_F(PivKeygen, OpenscCannotGenerateAndSaysWhatToUse) {
  const Json before = objects(kYkcs11Module);
  auto r = keygen(kOpenscModule, {"--piv-slot", "9a", "--type", "ec:p256", "--label", "x"});
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  EXPECT_NE(r.err.find("cannot generate EC P-256 keys"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("libykcs11.so"), std::string::npos)
      << "names the module that can: " << r.err;
  EXPECT_EQ(objects(kYkcs11Module), before);
}

TEST_F(PivKeygen, NeedsASlotAndTheManagementKey) {
  const std::string d = card_->dir();
  const Json before = objects(kYkcs11Module);
  auto no_slot =
      keygen(kYkcs11Module, {"--type", "ec:p256", "--label", "x", "--so-pin-file", d + "/so"});
  EXPECT_EQ(no_slot.exit_code, 2) << no_slot.out << no_slot.err;
  EXPECT_NE(no_slot.err.find("--piv-slot 9a, 9c, 9d or 9e"), std::string::npos) << no_slot.err;
  auto bad_slot = keygen(kYkcs11Module, {"--piv-slot", "9b", "--type", "ec:p256", "--label", "x"});
  EXPECT_EQ(bad_slot.exit_code, 2) << bad_slot.err;
  auto no_so = keygen(kYkcs11Module, {"--piv-slot", "9a", "--type", "ec:p256", "--label", "x"});
  EXPECT_NE(no_so.exit_code, 0) << no_so.out;
  EXPECT_NE(no_so.err.find("management key"), std::string::npos) << no_so.err;
  write_file(d + "/bad", "0102030405060708010203040506070801020304050607FF");
  expect_wrong_pin_ = true;
  auto bad_so = keygen(kYkcs11Module, {"--piv-slot", "9a", "--type", "ec:p256", "--label", "x",
                                       "--so-pin-file", d + "/bad"});
  EXPECT_NE(bad_so.exit_code, 0) << bad_so.out;
  EXPECT_NE(bad_so.err.find("C_Login"), std::string::npos) << bad_so.err;
  EXPECT_EQ(objects(kYkcs11Module), before);
}

}  // namespace
