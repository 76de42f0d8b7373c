// The card pulled out in the middle of an import: the emulated YubiKey's
// pivcard.py is stopped while import-p12 is between writing the key and
// writing the certificate (the faulty wrapper module holds the command there,
// so the moment is the same on every run; the failure that follows is the
// real one of ykcs11 and pcscd). Then the card comes back with its state
// file, as a real card keeps what it holds, and the import is run again.
// Runs only inside the piv ctest fixture.
#include <gtest/gtest.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "piv_fixture.hpp"
#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

// Puts the card back whatever happens, so the next test has one.
struct CardBack {
  ~CardBack() { run({PIV_CARD_OUT, "insert"}); }
};

using PivPulled = PivCardTest;

// Objects other than those with `id`: what the run must not touch.
Json without_id(const Json& objs, const std::string& id) {
  Json out = Json::array();
  for (const auto& o : objs) {
    if (o["id"] != id) out.push_back(o);
  }
  return out;
}

TEST_F(PivPulled, CardPulledOutDuringImportFailsClearlyAndTheRerunFinishes) {
  const std::string d = card_->dir();
  const std::string pause = d + "/pause";
  std::filesystem::create_directories(pause);
  // Something on the card already, in another slot, that must survive.
  ASSERT_EQ(
      import(p12_files().ec_chain, {"--piv-slot", "9d", "--so-pin-file", d + "/so", "--no-chain"})
          .exit_code,
      0);
  const Json before = objects(kYkcs11Module);
  ASSERT_EQ(count(before, "private key", "01"), 0) << before.dump(2);

  CardBack back;
  auto puller = std::async(std::launch::async, [&pause] {
    return run({PIV_CARD_OUT, "pull", pause});
  });
  auto r =
      import(p12_files().rsa_chain, {"--piv-slot", "9a", "--so-pin-file", d + "/so", "--no-chain"},
             FAULTY_MODULE,
             {{"TOKENKIT_FAULTY_TARGET", kYkcs11Module}, {"TOKENKIT_FAULTY_PAUSE_DIR", pause}});
  const ProcessResult pulled = puller.get();
  ASSERT_EQ(pulled.exit_code, 0) << pulled.out << pulled.err;

  // A clear error: non-zero, naming the token and the failing call, and no
  // crash or internal error.
  EXPECT_EQ(r.exit_code, 7) << r.out << r.err;
  EXPECT_NE(r.err.find("token \"" + card_->label() + "\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("writing the certificate"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CKR_"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("internal error"), std::string::npos) << r.err;

  auto in = run({PIV_CARD_OUT, "insert"});
  ASSERT_EQ(in.exit_code, 0) << in.out << in.err;
  // The card kept what it held before; slot 9a holds at most the key that
  // was written before the card went (a PIV card cannot delete keys).
  const Json after_pull = objects(kYkcs11Module);
  EXPECT_EQ(without_id(after_pull, "01"), without_id(before, "01")) << after_pull.dump(2);
  EXPECT_EQ(count(after_pull, "certificate", "01"), 0) << after_pull.dump(2);
  EXPECT_LE(count(after_pull, "private key", "01"), 1) << after_pull.dump(2);

  // Run again: it finishes, verified, with one key and one certificate in 9a.
  auto again =
      import(p12_files().rsa_chain, {"--piv-slot", "9a", "--so-pin-file", d + "/so", "--no-chain"});
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_NE(again.out.find("signature"), std::string::npos) << again.out;
  const Json done = objects(kYkcs11Module);
  EXPECT_EQ(count(done, "private key", "01"), 1) << done.dump(2);
  EXPECT_EQ(count(done, "certificate", "01"), 1) << done.dump(2);
  EXPECT_EQ(without_id(done, "01"), without_id(before, "01")) << done.dump(2);
  // And the key works through OpenSC with the imported certificate.
  sign_through_opensc("01", "SHA256-RSA-PKCS", p12_files().rsa_cert);
}

}  // namespace
