// tokenkit token init|init-pin|set-pin|delete, through each module's free slot.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class TokenCmd : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
    for (auto [name, value] :
         {std::pair{"so", "87654321"}, {"new", "24682468"}, {"newer", "13571357"}}) {
      write_file(token_->dir() + "/" + name, value);
    }
  }
  ProcessResult tool(std::vector<std::string> args) {
    args.insert(args.begin(), TOKENKIT_BINARY);
    return run(args, env_);
  }
  std::string f(const std::string& n) { return token_->dir() + "/" + n; }
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, TokenCmd, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(TokenCmd, InitMakesATokenWithAUserPinAndTheUserCanChangeIt) {
  auto r = tool({"token", "init", "--label", "fresh", "--so-pin-file", f("so"), "--new-pin-file",
                 f("new"), "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["label"], "fresh");
  EXPECT_NE(std::find(j["flags"].begin(), j["flags"].end(), "user PIN initialized"),
            j["flags"].end());
  r = tool({"objects", "--token-label", "fresh", "--pin-file", f("new")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = tool({"token", "set-pin", "--token-label", "fresh", "--pin-file", f("new"), "--new-pin-file",
            f("newer")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(tool({"objects", "--token-label", "fresh", "--pin-file", f("newer")}).exit_code, 0);
}

TEST_P(TokenCmd, SoSetsANewUserPin) {
  write_file(f("so"), kSoPin);
  auto r = tool({"token", "init-pin", "--token-label", token_->label(), "--so-pin-file", f("so"),
                 "--new-pin-file", f("new")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(tool({"objects", "--token-label", token_->label(), "--pin-file", f("new")}).exit_code,
            0);
}

TEST_P(TokenCmd, BadInputIsRefusedBeforeAnythingChanges) {
  EXPECT_EQ(tool({"token", "init", "--so-pin-file", f("so"), "--new-pin-file", f("new")}).exit_code,
            2);
  EXPECT_EQ(tool({"token", "frobnicate"}).exit_code, 2);
  auto r = tool({"token", "init", "--label", std::string(33, 'x'), "--so-pin-file", f("so"),
                 "--new-pin-file", f("new")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  write_file(f("empty"), "");
  r = tool(
      {"token", "init", "--label", "x", "--so-pin-file", f("empty"), "--new-pin-file", f("new")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  // Nothing was initialised: the free slot is still free.
  r = tool({"tokens", "--json", "--all-slots"});
  ASSERT_EQ(r.exit_code, 0);
  int initialised = 0;
  const Json slots = Json::parse(r.out)["slots"];
  for (const auto& s : slots) {
    if (s["token_present"] == true &&
        std::find(s["flags"].begin(), s["flags"].end(), "initialized") != s["flags"].end()) {
      ++initialised;
    }
  }
  EXPECT_EQ(initialised, 1);
}

// The labels of the initialised tokens `tokenkit tokens` lists.
std::vector<std::string> token_labels(const ProcessResult& r) {
  std::vector<std::string> out;
  const Json j = Json::parse(r.out);  // kept: the loop refers into it
  for (const auto& t : j["slots"])
    if (t.contains("label")) out.push_back(t["label"].get<std::string>());
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Only tokenkit's module can delete a token (PKCS#11 has no call for it):
// a wrong SO PIN deletes nothing; the right one removes the token and its
// store file, and the slot can hold a new token.
TEST_P(TokenCmd, DeleteRemovesATokenOfOursAfterCheckingTheSoPin) {
  auto before = tool({"tokens", "--json"});
  ASSERT_EQ(before.exit_code, 0) << before.err;
  ASSERT_TRUE(has(token_labels(before), token_->label())) << before.out;
  write_file(f("so"), kSoPin);
  write_file(f("wrong-so"), "99999999");
  auto r = tool({"token", "delete", "--token-label", token_->label(), "--so-pin-file",
                 f("wrong-so"), "--yes"});
  if (GetParam() != "tokenkit") {
    // Refused before any PIN is tried, with what to do instead.
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find("no call that deletes a token"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("token init --slot"), std::string::npos) << r.err;
    EXPECT_TRUE(has(token_labels(tool({"tokens", "--json"})), token_->label()));
    return;
  }
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("CKR_PIN_INCORRECT"), std::string::npos) << r.err;
  EXPECT_TRUE(has(token_labels(tool({"tokens", "--json"})), token_->label()));
  const std::string store = token_->env().at("TOKENKIT_PKCS11_DIR");
  auto db_files = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(store))
      n += e.path().extension() == ".db" ? 1 : 0;
    return n;
  };
  ASSERT_EQ(db_files(), 1);

  r = tool({"token", "delete", "--token-label", token_->label(), "--so-pin-file", f("so"), "--yes",
            "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out)["deleted"];
  EXPECT_EQ(j["label"], token_->label());
  EXPECT_EQ(j["module"].get<std::string>().find("tokenkit"), 0u);
  EXPECT_FALSE(has(token_labels(tool({"tokens", "--json"})), token_->label()));
  EXPECT_EQ(db_files(), 0);
  EXPECT_EQ(std::filesystem::is_empty(store), true) << "WAL files left behind";
  r = tool({"objects", "--token-label", token_->label(), "--pin-file", f("so")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  // The free slot takes a new token.
  r = tool(
      {"token", "init", "--label", "after", "--so-pin-file", f("so"), "--new-pin-file", f("new")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(token_labels(tool({"tokens", "--json"})), "after"));
}

TEST_P(TokenCmd, DeleteNeedsAToken) {
  write_file(f("so"), kSoPin);
  auto r = tool(
      {"token", "delete", "--token-label", "no such token", "--so-pin-file", f("so"), "--yes"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  r = tool({"token", "delete", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("tokenkit token delete --token-label"), std::string::npos) << r.out;
}

}  // namespace
