// tokenkit audit: a key used by another program (pkcs11-tool) shows up, with
// when, which key (by the label of its certificate), mechanism and process.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

TEST(Audit, ShowsEveryUseOfAKeyOnATokenkitToken) {
  FreshToken t("tokenkit");
  t.write_rsa();
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  write_file(t.dir() + "/msg", "sign me");
  for (int i = 0; i < 3; ++i) {
    t.pkcs11_tool({"--login", "--pin", kUserPin, "--sign", "--id", "01", "-m", "SHA256-RSA-PKCS",
                   "--input-file", t.dir() + "/msg", "--output-file", t.dir() + "/sig"});
  }
  auto r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--json"}, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto rows = Json::parse(r.out);
  ASSERT_EQ(rows.size(), 3u) << r.out;
  for (const auto& row : rows) {
    EXPECT_EQ(row["operation"], "sign");
    EXPECT_EQ(row["mechanism"], "CKM_SHA256_RSA_PKCS");
    EXPECT_EQ(row["id"], "01");
    EXPECT_EQ(row["label"], "alice") << "named by its certificate's label";
    EXPECT_GT(row["pid"].get<long long>(), 0);
  }
  r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label(), "--last", "1"}, env);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("sign  CKM_SHA256_RSA_PKCS  key 01 \"alice\""), std::string::npos) << r.out;
}

TEST(Audit, RefusesTokensThatRecordNothing) {
  FreshToken t("softhsm2");
  Env env = t.env();
  env["TOKENKIT_MODULE"] = t.module();
  auto r = run({TOKENKIT_BINARY, "audit", "--token-label", t.label()}, env);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("not a tokenkit software token"), std::string::npos) << r.err;
}

}  // namespace
