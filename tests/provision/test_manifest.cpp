// Manifest parsing on its own: formats, defaults, and clear errors.
#include <gtest/gtest.h>

#include "token/error.hpp"
#include "token/manifest.hpp"

namespace {

TEST(Manifest, CsvWithHeaderQuotesAndComments) {
  auto e = token::parse_manifest(
      "# staff\nname,p12,password_file,token,pin_file,label\n"
      "alice,alice.p12,pw,\"pkcs11:token=a;object=x\",pin,\"Alice, Mail\"\n"
      "\n,bob.p12,pw,pkcs11:token=b,pin,\n",
      "m.csv");
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].name, "alice");
  EXPECT_EQ(e[0].token, "pkcs11:token=a;object=x");
  EXPECT_EQ(e[0].label, "Alice, Mail");
  EXPECT_EQ(e[0].line, 3u);
  EXPECT_EQ(e[1].name, "entry-2");
  EXPECT_FALSE(e[1].label);
}

TEST(Manifest, JsonArrayOrObject) {
  auto e = token::parse_manifest(
      R"({"entries": [{"name": "k", "keygen": "ec:p256", "label": "mail", "serial": "1234", "pin_env": "PIN"}]})",
      "m.json");
  ASSERT_EQ(e.size(), 1u);
  EXPECT_EQ(e[0].keygen, "ec:p256");
  EXPECT_EQ(e[0].serial, "1234");
  EXPECT_EQ(token::parse_manifest("[" + std::string(R"({"keygen":"rsa","label":"l","token":"pkcs11:","pin_file":"p"})") + "]", "x").size(), 1u);
}

TEST(Manifest, ErrorsNameTheFileTheLineAndTheProblem) {
  struct Case {
    std::string text, says;
  };
  const std::vector<Case> cases = {
      {"name,p12,tokn\nx,a.p12,t\n", "m line 1: unknown field \"tokn\""},
      {"name,p12,keygen,token,pin_file,password_file\nx,a.p12,ec,t,p,w\n", "m line 2 (x): give exactly one of p12 and keygen"},
      {"name,keygen,token,pin_file\nx,ec,t,p\n", "keygen needs a label"},
      {"name,p12,pin_file,password_file\nx,a.p12,p,w\n", "name the token"},
      {"name,p12,token,password_file\nx,a.p12,t,w\n", "give the token's PIN"},
      {"name,p12,token,pin_file\nx,a.p12,t,p\n", "give the p12's password"},
      {"name,p12,token,pin_file,password_file\nx,a,t,p,w\nx,b,t,p,w\n", "the name \"x\" is used twice"},
      {"name,p12\nx\n", "m line 2: 1 fields, the header has 2"},
      {"name,p12\n\"x,a\n", "a quoted field is not closed"},
      {"[1, 2]", "m entry 1 is not an object"},
      {"{\"entries\": [{\"p12\": 5}]}", "field p12 is not a string"},
      {"[{", "m is not valid JSON"},
      {"", "m has no entries"},
  };
  for (const auto& c : cases) {
    try {
      token::parse_manifest(c.text, "m");
      ADD_FAILURE() << c.text;
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), token::ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find(c.says), std::string::npos) << e.what();
    }
  }
}

}  // namespace
