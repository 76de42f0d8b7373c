// tokenkit certs list|import|export|remove, run as a user runs them, on
// certificates made by `openssl ca`; the store in a fresh temporary
// directory per test.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "testca.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

const std::string kTool = TOKENKIT_BINARY;

class CertStore : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("certs");
    ca_ = std::make_unique<TestCa>(dir_ + "/ca");
  }
  void TearDown() override { remove_tree(dir_); }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  // Runs tokenkit with the store in this test's directory and no terminal
  // (setsid: a confirmation prompt cannot wait for a person).
  ProcessResult tool(std::vector<std::string> args) {
    args.insert(args.begin(), {"setsid", "-w", kTool});
    return run(args, {{"TOKENKIT_CERTS_DIR", path("store")}});
  }
  Json list_json(const std::vector<std::string>& extra = {}) {
    std::vector<std::string> a{"certs", "list", "--json"};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tool(a);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return Json::parse(r.out);
  }
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
};

TEST_F(CertStore, ImportTwiceIsOneEntryWithAddressesValidityAndSource) {
  auto bob = ca_->issue(CertSpec("bob", {"Bob@Example.org"}).subject_mail("bob.alias@example.org"));
  auto r = tool({"certs", "import", bob.pem});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("added"), std::string::npos) << r.out;
  r = tool({"certs", "import", bob.der});  // the same certificate, as DER
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("already present"), std::string::npos) << r.out;
  Json l = list_json();
  ASSERT_EQ(l.size(), 1u) << l.dump();
  EXPECT_EQ(l[0]["fingerprint"], openssl_fingerprint(bob.pem));
  EXPECT_EQ(l[0]["emails"], Json({"bob@example.org", "bob.alias@example.org"}));
  EXPECT_EQ(l[0]["source"], "import");
  EXPECT_EQ(l[0]["not_before"], "2024-01-01T00:00:00Z");
  EXPECT_EQ(l[0]["not_after"], "2049-12-31T00:00:00Z");
  EXPECT_EQ(l[0]["valid_now"], true);
  EXPECT_EQ(list_json({"bob.alias@example.org"}).size(), 1u);
  EXPECT_EQ(list_json({"carol@example.org"}).size(), 0u);
}

TEST_F(CertStore, NewestValidOneWinsAndOlderOnesAreKept) {
  auto old_cert = ca_->issue(CertSpec("bob-old", {"bob@example.org"}));
  auto new_cert = ca_->issue(CertSpec("bob-new", {"bob@example.org"}).valid("20250601000000Z"));
  // Newer still, but expired: must not win.
  auto expired = ca_->issue(
      CertSpec("bob-expired", {"bob@example.org"}).valid("20250701000000Z", "20251231000000Z"));
  // Newest, valid, but for signing only: must not win either.
  auto signing = ca_->issue(CertSpec("bob-signing", {"bob@example.org"})
                                .valid("20250801000000Z")
                                .usage("digitalSignature"));
  auto r = tool({"certs", "import", old_cert.pem, new_cert.pem, expired.pem, signing.pem});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  Json l = list_json({"bob@example.org"});
  ASSERT_EQ(l.size(), 4u);
  int chosen = 0;
  for (const auto& e : l) {
    if (e["chosen"] == true) {
      ++chosen;
      EXPECT_EQ(e["fingerprint"], openssl_fingerprint(new_cert.pem));
    }
  }
  EXPECT_EQ(chosen, 1);
  // Export by address gives the chosen one.
  r = tool({"certs", "export", "bob@example.org", "--out", path("bob.pem")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(openssl_fingerprint(path("bob.pem")), openssl_fingerprint(new_cert.pem));
  // Removing the winner makes the older valid one win; the rest stay.
  r = tool({"certs", "remove", openssl_fingerprint(new_cert.pem), "--yes"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  l = list_json({"bob@example.org"});
  ASSERT_EQ(l.size(), 3u);
  for (const auto& e : l) {
    EXPECT_EQ(e["chosen"] == true, e["fingerprint"] == openssl_fingerprint(old_cert.pem))
        << e.dump();
  }
}

TEST_F(CertStore, ImportRefusesGarbageNamingTheFileAndAddsNothing) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}));
  write_file(path("junk.pem"),
             "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END "
             "CERTIFICATE-----\n");
  write_file(path("text.txt"), "hello\n");
  for (const auto& junk : {path("junk.pem"), path("text.txt")}) {
    auto r = tool({"certs", "import", bob.pem, junk});
    EXPECT_EQ(r.exit_code, 10) << r.err;
    EXPECT_NE(r.err.find(junk + " is not a certificate"), std::string::npos) << r.err;
  }
  auto r = tool({"certs", "import", path("missing.pem")});
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("missing.pem"), std::string::npos) << r.err;
  EXPECT_EQ(list_json().size(), 0u);
}

TEST_F(CertStore, ExportWritesPemOrDerThatOpensslReads) {
  auto bob = ca_->issue(CertSpec("bob", {"bob@example.org"}).ec());
  ASSERT_EQ(tool({"certs", "import", bob.pem}).exit_code, 0);
  const std::string fp = openssl_fingerprint(bob.pem);
  auto r = tool({"certs", "export", fp.substr(0, 12), "--der", "--out", path("bob.der")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(path("bob.der")), read_file(bob.der));
  r = tool({"certs", "export", fp});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  write_file(path("stdout.pem"), r.out);
  EXPECT_EQ(openssl_fingerprint(path("stdout.pem")), fp);
  // Unknown names: not found, and no file left behind.
  r = tool({"certs", "export", "carol@example.org", "--out", path("carol.pem")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no certificate for carol@example.org"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("carol.pem")));
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".tokenkit-", 0), std::string::npos)
        << "temporary file left: " << e.path();
  }
}

TEST_F(CertStore, RemoveAsksAndWithoutATerminalNeedsYes) {
  auto a = ca_->issue(CertSpec("carol1", {"carol@example.org"}));
  auto b = ca_->issue(CertSpec("carol2", {"carol@example.org"}));
  auto d = ca_->issue(CertSpec("dave", {"dave@example.org"}));
  ASSERT_EQ(tool({"certs", "import", a.pem, b.pem, d.pem}).exit_code, 0);
  auto r = tool({"certs", "remove", "carol@example.org"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--yes"), std::string::npos) << r.err;
  EXPECT_EQ(list_json().size(), 3u);
  r = tool({"certs", "remove", "carol@example.org", "--yes", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["removed"].size(), 2u);
  Json l = list_json();
  ASSERT_EQ(l.size(), 1u);
  EXPECT_EQ(l[0]["emails"][0], "dave@example.org");
  r = tool({"certs", "remove", "0000000000", "--yes"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
}

TEST_F(CertStore, EveryActionHasHelpWithAnExample) {
  for (const char* a : {"list", "import", "export", "remove"}) {
    auto r = tool({"certs", a, "--help"});
    EXPECT_EQ(r.exit_code, 0) << a;
    EXPECT_NE(r.out.find("Example:"), std::string::npos) << a;
  }
}

}  // namespace
