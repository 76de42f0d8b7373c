// The tokenkit binary, run as a user runs it: exit codes, output, --json.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

const std::string kTool = TOKENKIT_BINARY;

class Cli : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    pin_file_ = token_->dir() + "/pin";
    write_file(pin_file_, std::string(kUserPin) + "\n");
  }
  ProcessResult tool(std::vector<std::string> args, const Env& extra = {}) {
    return token_->run_tool(kTool, std::move(args), {}, extra, expect_wrong_pin_);
  }
  std::unique_ptr<FreshToken> token_;
  std::string pin_file_;
  bool expect_wrong_pin_ = false;
};

// Objects a test wrote: a token's own profile object (PKCS#11 3.0, present
// on every tokenkit token) is left out.
Json written(const Json& objects) {
  Json out = Json::array();
  for (const auto& o : objects) {
    if (o["class"] != "profile") out.push_back(o);
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Tokens, Cli, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Cli, TokensJsonDescribesTheToken) {
  auto r = tool({"tokens", "--json", "--token-label", token_->label(), "--mechanisms"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  EXPECT_EQ(j["module"]["path"], token_->module());
  ASSERT_EQ(j["slots"].size(), 1u);
  auto t = j["slots"][0];
  EXPECT_EQ(t["label"], token_->label());
  EXPECT_TRUE(t["user_pin"].empty());
  EXPECT_NE(t["uri"].get<std::string>().find("token=" + token_->label()), std::string::npos);
  EXPECT_FALSE(t["mechanisms"].empty());
}

TEST_P(Cli, ObjectsShowKeysCertificatesAndUris) {
  token_->write_rsa();
  token_->write_ec();
  auto r = tool({"objects", "pkcs11:token=" + token_->label(), "--pin-file", pin_file_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  ASSERT_EQ(written(j["objects"]).size(), 6u) << r.out;
  int keys = 0;
  for (const auto& o : written(j["objects"])) {
    EXPECT_EQ(o["uri"].get<std::string>().rfind("pkcs11:", 0), 0u);
    if (o["class"] == "private key") {
      ++keys;
      EXPECT_EQ(o["sensitive"], true);
      EXPECT_EQ(o["extractable"], false);
      EXPECT_EQ(o["private"], true);
      if (o["label"] == "alice") {
        EXPECT_EQ(o["key_type"], "CKK_RSA");
        EXPECT_EQ(o["bits"], 2048);
      } else {
        EXPECT_EQ(o["key_type"], "CKK_EC");
        EXPECT_EQ(o["curve"], "prime256v1");
      }
    }
    if (o["class"] == "certificate" && o["label"] == "bob") {
      EXPECT_EQ(o["certificate"]["emails"][0], "bob@example.org");
    }
  }
  EXPECT_EQ(keys, 2);
}

TEST_P(Cli, ObjectsWithoutLoginHidePrivateKeys) {
  token_->write_rsa();
  auto r = tool({"objects", "--token-label", token_->label()}, {{"TOKENKIT_PIN", ""}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("objects visible without login"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("certificate  label \"alice\""), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("private key"), std::string::npos);
}

TEST_P(Cli, PinFromEnvironment) {
  token_->write_rsa();
  auto r = tool({"objects", "--token-label", token_->label(), "--login", "--json"},
                {{"TOKENKIT_PIN", kUserPin}});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(written(Json::parse(r.out)["objects"]).size(), 3u);
}

TEST_P(Cli, PinOnCommandLineWarns) {
  auto r = tool({"objects", "--token-label", token_->label(), "--pin", kUserPin});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("warning"), std::string::npos);
}

TEST_P(Cli, WrongPinExitsFiveAndNamesTheToken) {
  write_file(pin_file_, "999999");
  expect_wrong_pin_ = true;
  auto r = tool({"objects", "--token-label", token_->label(), "--pin-file", pin_file_});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_NE(r.err.find("C_Login on token \"" + token_->label() + "\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CKR_PIN_INCORRECT (0xa0)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("999999"), std::string::npos) << "the PIN must never be printed";
}

TEST_P(Cli, BadInputGivesOneClearLineAndItsExitCode) {
  struct Case {
    std::vector<std::string> args;
    int code;
    std::string says;
  };
  write_file(token_->dir() + "/empty", "");
  const std::vector<Case> cases = {
      {{"objects", "--token-label", "nobody"}, 3, "no token matches label \"nobody\""},
      {{"objects", "pkcs11:tokn=x"}, 10, "pkcs11:tokn=x"},
      {{"objects", "pkcs11:id=%zz"}, 10, "malformed PKCS#11 URI"},
      {{"objects", "--module", "/nonexistent.so"}, 8, "/nonexistent.so does not exist"},
      {{"objects", "--module", "/lib/x86_64-linux-gnu/libz.so.1"}, 8, "not a PKCS#11 module"},
      {{"objects", "--token-label", token_->label(), "--pin-file", token_->dir() + "/empty"},
       10,
       "is empty"},
      {{"objects", "--token-label", token_->label(), "--pin-file", token_->dir() + "/none"},
       9,
       "cannot open file " + token_->dir() + "/none with the user PIN"},
      {{"objects", "--no-such-option"}, 2, "unrecognised option"},
      {{"nonsense"}, 2, "unknown command"},
      {{"objects", "--pin-file", "a", "--pin-env", "B"}, 2, "one way only"},
  };
  for (const auto& c : cases) {
    auto r = tool(c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args[c.args.size() - 1] << ": " << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(r.out.empty()) << r.out;
  }
}

TEST_P(Cli, TwoTokensWithoutSelectionIsAmbiguous) {
  token_->add_token("other");
  auto r = tool({"objects"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("\"other\""), std::string::npos) << r.err;
}

TEST(CliHelp, EveryCommandHasHelpWithAnExample) {
  for (std::string c : {"modules", "tokens", "objects"}) {
    auto r = run({kTool, c, "--help"});
    EXPECT_EQ(r.exit_code, 0) << c;
    EXPECT_NE(r.out.find("Example:"), std::string::npos) << c;
    EXPECT_NE(r.out.find("Exit codes"), std::string::npos) << c;
  }
  auto r = run({kTool, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(run({kTool}).exit_code, 2);
}

TEST(CliModules, ListsP11KitRegisteredModulesAsJson) {
  auto r = run({kTool, "modules", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = Json::parse(r.out);
  bool softhsm = false;
  for (const auto& m : j) {
    if (m["name"] == "softhsm2") softhsm = true;
  }
  EXPECT_TRUE(softhsm) << r.out;
}

}  // namespace
