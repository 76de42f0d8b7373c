#include <gtest/gtest.h>

#include "token_fixture.hpp"

using namespace tokenkit::test;
using token::ErrorKind;

namespace {

class ModuleTest : public TokenTest {};
TOKENKIT_TOKEN_SUITE(ModuleTest);

TEST_P(ModuleTest, LoadsByPathAndShowsTheToken) {
  auto m = module();
  CK_INFO info = m.info();
  EXPECT_EQ(info.cryptokiVersion.major, 2);
  auto s = slot(m);
  EXPECT_TRUE(s.has_token);
  EXPECT_EQ(token::pkcs11_text(s.token.label), token_->label());
  EXPECT_TRUE(s.token.flags & CKF_TOKEN_INITIALIZED);
  EXPECT_TRUE(token::user_pin_state(s.token.flags).empty());
}

TEST_P(ModuleTest, SecondLoadSharesTheInitialisedModule) {
  auto a = module();
  auto b = module();
  EXPECT_EQ(a.functions(), b.functions());
  EXPECT_NO_THROW(b.info());
}

TEST_P(ModuleTest, MechanismsHaveInfoAndNames) {
  auto m = module();
  auto mechs = m.mechanisms(slot(m).id);
  ASSERT_FALSE(mechs.empty());
  bool rsa = false;
  for (const auto& mi : mechs) {
    if (mi.type == CKM_RSA_PKCS) {
      rsa = true;
      EXPECT_TRUE(mi.info.flags & CKF_SIGN);
      EXPECT_GE(mi.info.ulMaxKeySize, 2048u);
    }
  }
  EXPECT_TRUE(rsa);
}

TEST_P(ModuleTest, SelectsByLabelAndReportsMissingAndAmbiguousTokens) {
  token_->add_token("second");
  token_->add_token("second");
  auto m = module();
  token::TokenSelector sel;
  sel.label = "second";
  try {
    token::select_token(m, sel);
    FAIL() << "two tokens labelled second must be ambiguous";
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Ambiguous);
    EXPECT_NE(std::string(e.what()).find("2 tokens match label \"second\""), std::string::npos)
        << e.what();
  }
  sel.label = "nobody";
  try {
    token::select_token(m, sel);
    FAIL() << "no token is labelled nobody";
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("\"" + token_->label() + "\""), std::string::npos)
        << "the message should list the tokens there are: " << e.what();
  }
  sel.label = token_->label();
  EXPECT_NO_THROW(token::select_token(m, sel));
}

TEST_P(ModuleTest, SelectsByUri) {
  auto m = module();
  token::TokenSelector sel;
  sel.uri = token::Uri::parse("pkcs11:token=" + token_->label());
  EXPECT_EQ(token::pkcs11_text(token::select_token(m, sel).token.label), token_->label());
  sel.uri = token::Uri::parse(token::Uri::for_token(slot(m).token));
  EXPECT_EQ(token::select_token(m, sel).id, slot(m).id);
}

TEST(ModuleLoad, MissingFileIsAModuleError) {
  try {
    token::Module::load("/nonexistent/libnothing.so");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Module);
    EXPECT_STREQ(e.what(), "PKCS#11 module /nonexistent/libnothing.so does not exist");
  }
}

TEST(ModuleLoad, SharedLibraryWithoutPkcs11IsRefused) {
  try {
    token::Module::load("/lib/x86_64-linux-gnu/libz.so.1");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Module);
    EXPECT_NE(std::string(e.what()).find("exports no C_GetFunctionList"), std::string::npos);
  }
}

TEST(ModuleLoad, NonLibraryIsRefused) {
  EXPECT_THROW(token::Module::load("/etc/hostname"), token::Error);
}

TEST(ModuleLoad, UnknownP11KitNameListsTheRegisteredOnes) {
  try {
    token::Module::load("no-such-module");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("registered:"), std::string::npos) << e.what();
  }
}

TEST(ModuleLoad, RegisteredModulesComeFromP11Kit) {
  // Debian's softhsm2 package registers itself with p11-kit.
  bool found = false;
  for (const auto& m : token::registered_modules()) {
    if (m.name == "softhsm2") found = true;
  }
  EXPECT_TRUE(found);
}

class RegisteredName : public TokenTest {};
TOKENKIT_TOKEN_SUITE(RegisteredName);

TEST_P(RegisteredName, LoadsByP11KitName) {
  if (GetParam() != "softhsm2") GTEST_SKIP() << "only softhsm2 is registered with p11-kit";
  auto m = token::Module::load("softhsm2");
  EXPECT_EQ(m.path(), token_->module());
  EXPECT_EQ(token::pkcs11_text(slot(m).token.label), token_->label());
}

}  // namespace
