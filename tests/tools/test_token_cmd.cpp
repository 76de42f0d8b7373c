// tokenkit token init|init-pin|set-pin, through each module's free slot.
#include <gtest/gtest.h>

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
    for (auto [name, value] : {std::pair{"so", "87654321"}, {"new", "24682468"}, {"newer", "13571357"}}) {
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
  EXPECT_NE(std::find(j["flags"].begin(), j["flags"].end(), "user PIN initialized"), j["flags"].end());
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
  EXPECT_EQ(tool({"objects", "--token-label", token_->label(), "--pin-file", f("new")}).exit_code, 0);
}

TEST_P(TokenCmd, BadInputIsRefusedBeforeAnythingChanges) {
  EXPECT_EQ(tool({"token", "init", "--so-pin-file", f("so"), "--new-pin-file", f("new")}).exit_code, 2);
  EXPECT_EQ(tool({"token", "frobnicate"}).exit_code, 2);
  auto r = tool({"token", "init", "--label", std::string(33, 'x'), "--so-pin-file", f("so"),
                 "--new-pin-file", f("new")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  write_file(f("empty"), "");
  r = tool({"token", "init", "--label", "x", "--so-pin-file", f("empty"), "--new-pin-file", f("new")});
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

}  // namespace
