// The URIs tokenkit prints are accepted by the peers (GnuTLS p11tool, OpenSC
// pkcs11-tool), and the URIs p11tool prints are accepted by tokenkit.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class Interop : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    token_->write_rsa();
    token_->write_ec();
    env_ = token_->env();
    env_["TOKENKIT_MODULE"] = token_->module();
    env_["TOKENKIT_PIN"] = kUserPin;
    env_["GNUTLS_PIN"] = kUserPin;
  }
  Json objects(const std::string& uri) {
    return Json::parse(run_ok({TOKENKIT_BINARY, "objects", uri, "--login", "--json"}, env_))["objects"];
  }
  std::unique_ptr<FreshToken> token_;
  Env env_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Interop, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Interop, P11toolAcceptsEveryUriTokenkitPrints) {
  auto objs = objects("pkcs11:token=" + token_->label());
  int checked = 0;
  for (const auto& o : objs) {
    const std::string uri = o["uri"];
    if (uri.empty()) continue;  // a profile object: RFC 7512 has no type for it
    ++checked;
    auto out = run_ok({"p11tool", "--provider", token_->module(), "--login", "--list-all", uri},
                      env_);
    // Exactly one object, and it is the one the URI names.
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n') > 0, true);
    std::smatch m;
    std::string rest = out;
    int n = 0;
    std::string url;
    std::regex re("URL: (pkcs11:[^\n]+)");
    while (std::regex_search(rest, m, re)) {
      url = m[1];
      ++n;
      rest = m.suffix();
    }
    EXPECT_EQ(n, 1) << uri << "\n" << out;
    EXPECT_EQ(url, uri);
  }
  EXPECT_EQ(checked, 6);
}

TEST_P(Interop, P11toolSignsWithTheKeyUriTokenkitPrints) {
  for (const auto& o : objects("pkcs11:type=private")) {
    auto r = run({"p11tool", "--provider", token_->module(), "--login", "--test-sign",
                  o["uri"].get<std::string>()},
                 env_);
    const std::string said = r.out + r.err;
    EXPECT_EQ(r.exit_code, 0) << said;
    EXPECT_NE(said.find("Signing using"), std::string::npos) << said;
    EXPECT_NE(said.find("Verifying against public key in the token... ok"), std::string::npos)
        << said;
  }
}

TEST_P(Interop, TokenkitAcceptsUrisP11toolPrints) {
  auto out = run_ok({"p11tool", "--provider", token_->module(), "--login", "--list-all",
                     "pkcs11:token=" + token_->label()},
                    env_);
  std::regex re("URL: (pkcs11:[^\n]+)");
  int n = 0;
  for (auto it = std::sregex_iterator(out.begin(), out.end(), re); it != std::sregex_iterator();
       ++it) {
    const std::string url = (*it)[1];
    if (url.find(";type=") == std::string::npos) continue;  // a profile object: no RFC 7512 type
    ++n;
    auto objs = objects(url);
    EXPECT_EQ(objs.size(), 1u) << (*it)[1];
  }
  EXPECT_EQ(n, 6);
}

TEST_P(Interop, Pkcs11ToolFindsTheObjectByTheIdAndLabelOfTheUri) {
  // pkcs11-tool 0.23 takes no URIs; what a URI says maps onto its --id/--label.
  for (const auto& o : objects("pkcs11:type=cert")) {
    const std::string file = token_->dir() + "/out.der";
    run_ok({"pkcs11-tool", "--module", token_->module(), "--token-label", token_->label(),
            "--read-object", "--type", "cert", "--id", o["id"], "--label", o["label"],
            "--output-file", file},
           env_);
    const auto& k = test_keys();
    EXPECT_EQ(read_file(file), read_file(o["label"] == "alice" ? k.rsa_cert_der : k.ec_cert_der));
  }
}

}  // namespace
