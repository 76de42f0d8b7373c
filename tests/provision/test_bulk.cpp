// tokenkit provision: a 50-entry manifest over several tokens, a report, one
// bad entry that does not stop the rest, and a run killed midway that a
// re-run finishes without duplicates.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "process.hpp"
#include "token/module.hpp"
#include "token/select.hpp"
#include "token/session.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class Bulk : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam(), "t1");
    for (int i = 2; i <= kTokens; ++i) token_->add_token("t" + std::to_string(i));
    write_file(dir() + "/pin", kUserPin);
    write_file(dir() + "/pw", p12_files().password);
    std::string csv = "name,keygen,p12,password_file,label,token,pin_file\n";
    for (int i = 1; i <= kEntries; ++i) {
      const std::string tok = "pkcs11:token=t" + std::to_string((i - 1) % kTokens + 1);
      const std::string name = "e" + std::to_string(i);
      if (i % 10 == 0) {
        csv += name + ",," + p12_files().rsa_chain + "," + dir() + "/pw,," + tok + "," + dir() + "/pin\n";
      } else {
        csv += name + ",ec:p256,,,key-" + name + "," + tok + "," + dir() + "/pin\n";
      }
    }
    write_file(manifest(), csv);
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
  }
  std::string dir() const { return token_->dir(); }
  std::string manifest() const { return dir() + "/staff.csv"; }

  // Private keys on every token, by label.
  std::map<std::string, int> keys_by_label() {
    std::map<std::string, int> out;
    auto m = token::Module::load(token_->module());
    for (int i = 1; i <= kTokens; ++i) {
      token::TokenSelector sel;
      sel.label = "t" + std::to_string(i);
      token::Session s(m, token::select_token(m, sel).id);
      s.login(token::Secret(kUserPin));
      token::AttributeTemplate t;
      t.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY));
      const CK_ATTRIBUTE_TYPE want[] = {CKA_LABEL};
      for (auto h : s.find(t)) ++out[s.read(h, want).string_value(CKA_LABEL).value_or("")];
    }
    return out;
  }

  static constexpr int kTokens = 5;
  static constexpr int kEntries = 50;
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Bulk, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Bulk, FiftyEntriesOverFiveTokensWithAReport) {
  auto r = run({TOKENKIT_BINARY, "provision", manifest(), "--report", dir() + "/report.json"}, env_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("provision: [50/50] e50: done"), std::string::npos) << "progress lines";
  auto report = Json::parse(read_file(dir() + "/report.json"));
  EXPECT_EQ(report["summary"]["ok"], kEntries);
  EXPECT_EQ(report["entries"][9]["action"], "import");
  EXPECT_EQ(report["entries"][9]["certificate_sha256"].size(), 1u);
  auto keys = keys_by_label();
  // Entries 10, 20, ... 50 all import the same file onto t5: once written,
  // then found already there.
  EXPECT_EQ(keys.size(), 46u) << "45 generated keys and one imported identity";
  for (const auto& [label, count] : keys) EXPECT_EQ(count, 1) << label;
}

TEST_P(Bulk, ABadEntryIsReportedAndTheRestGoOn) {
  std::string csv = read_file(manifest());
  csv += "broken,,/nonexistent.p12," + dir() + "/pw,,pkcs11:token=t1," + dir() + "/pin\n";
  csv += "nowhere,ec:p256,,,x,,pkcs11:token=nobody," + dir() + "/pin\n";
  csv.erase(csv.find("nowhere,ec:p256,,,x,,"), 0);
  write_file(manifest(), csv.substr(0, csv.rfind("nowhere")) + "nowhere,ec:p256,,,x,pkcs11:token=nobody," + dir() + "/pin\n");
  auto r = run({TOKENKIT_BINARY, "provision", manifest(), "--json", "-q"}, env_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["summary"]["failed"], 2);
  EXPECT_EQ(j["summary"]["ok"], kEntries);
  const auto& broken = j["entries"][kEntries];
  EXPECT_EQ(broken["status"], "failed");
  EXPECT_NE(broken["error"].get<std::string>().find("/nonexistent.p12"), std::string::npos);
  EXPECT_NE(j["entries"][kEntries + 1]["error"].get<std::string>().find("no token matches"), std::string::npos);
}

TEST_P(Bulk, KilledMidwayAndRunAgainFinishesWithoutDuplicates) {
  int err[2];
  ASSERT_EQ(pipe(err), 0);
  pid_t pid = fork();
  if (pid == 0) {
    dup2(err[1], 2);
    close(err[0]);
    for (const auto& [k, v] : env_) setenv(k.c_str(), v.c_str(), 1);
    execl(TOKENKIT_BINARY, TOKENKIT_BINARY, "provision", manifest().c_str(), nullptr);
    _exit(127);
  }
  close(err[1]);
  std::string seen;
  char buf[512];
  ssize_t n;
  while (seen.find("[20/50]") == std::string::npos && (n = read(err[0], buf, sizeof buf)) > 0) {
    seen.append(buf, static_cast<std::size_t>(n));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  close(err[0]);
  ASSERT_TRUE(WIFSIGNALED(status)) << "it finished before it could be killed:\n" << seen;

  auto r = run({TOKENKIT_BINARY, "provision", manifest(), "--json", "-q"}, env_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  int already = 0;
  for (const auto& e : j["entries"]) already += e["status"] == "already-done";
  EXPECT_GE(already, 20);
  auto keys = keys_by_label();
  EXPECT_EQ(keys.size(), 46u);
  for (const auto& [label, count] : keys) EXPECT_EQ(count, 1) << label << " was written twice";
}

TEST_P(Bulk, CheckParsesOnlyAndBadManifestsSayWhere) {
  auto r = run({TOKENKIT_BINARY, "provision", manifest(), "--check"}, env_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("50 entries, all well-formed"), std::string::npos);
  write_file(dir() + "/bad.csv", "name,keygen,tokn\nx,ec,t\n");
  r = run({TOKENKIT_BINARY, "provision", dir() + "/bad.csv"}, env_);
  EXPECT_EQ(r.exit_code, 10);
  EXPECT_NE(r.err.find("bad.csv line 1: unknown field \"tokn\""), std::string::npos) << r.err;
  EXPECT_TRUE(keys_by_label().empty()) << "nothing written for a bad manifest";
}

}  // namespace
