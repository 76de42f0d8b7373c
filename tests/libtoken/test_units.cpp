// Parts of libtoken that need no token: names, errors, URIs, PIN sources.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>

#include "token/attributes.hpp"
#include "token/error.hpp"
#include "token/names.hpp"
#include "token/pin.hpp"
#include "token/uri.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using token::ErrorKind;

namespace {

TEST(Names, ComeFromTheHeader) {
  EXPECT_EQ(token::rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
  EXPECT_EQ(token::rv_name(CKR_OK), "CKR_OK");
  EXPECT_EQ(token::rv_name(0x80001234UL), "0x80001234");
  EXPECT_EQ(token::mechanism_name(CKM_SHA256_RSA_PKCS), "CKM_SHA256_RSA_PKCS");
  EXPECT_EQ(token::mechanism_name(CKM_EC_KEY_PAIR_GEN), "CKM_EC_KEY_PAIR_GEN");
  EXPECT_EQ(token::attribute_name(CKA_NEVER_EXTRACTABLE), "CKA_NEVER_EXTRACTABLE");
  EXPECT_EQ(token::class_name(CKO_PROFILE), "CKO_PROFILE");
  EXPECT_EQ(token::key_type_name(CKK_EC), "CKK_EC");
  CK_MECHANISM_TYPE m = 0;
  EXPECT_TRUE(token::mechanism_from_name("RSA_PKCS_OAEP", m));
  EXPECT_EQ(m, CKM_RSA_PKCS_OAEP);
  EXPECT_FALSE(token::mechanism_from_name("CKM_NOPE", m));
}

TEST(Errors, NameTheCallTheSymbolAndTheObject) {
  auto e = token::Error::from_rv("C_Login", CKR_PIN_INCORRECT, "token \"alice\"");
  EXPECT_STREQ(e.what(), "C_Login on token \"alice\": CKR_PIN_INCORRECT (0xa0)");
  EXPECT_EQ(e.kind(), ErrorKind::PinIncorrect);
  EXPECT_EQ(e.exit_code(), 5);
  EXPECT_EQ(token::Error::from_rv("C_Login", CKR_PIN_LOCKED, "").kind(), ErrorKind::PinLocked);
  EXPECT_STREQ(token::Error::from_rv("C_Sign", CKR_DEVICE_ERROR, "").what(),
               "C_Sign: CKR_DEVICE_ERROR (0x30)");
}

TEST(Uri, ParsesTokenAndObjectParts) {
  auto u = token::Uri::parse("pkcs11:token=My%20Token;object=mail;id=%01%02;type=private");
  CK_TOKEN_INFO t{};
  std::fill(std::begin(t.label), std::end(t.label), ' ');
  std::copy_n("My Token", 8, t.label);
  EXPECT_TRUE(u.names_token());
  EXPECT_TRUE(u.matches_token(t));
  t.label[0] = 'X';
  EXPECT_FALSE(u.matches_token(t));
  EXPECT_TRUE(u.names_object());
  EXPECT_EQ(u.object_template().size(), 3u);
}

TEST(Uri, ModuleAndPinQueryAttributes) {
  auto u = token::Uri::parse("pkcs11:token=a?module-path=/usr/lib/x.so&pin-source=file:/tmp/pin");
  EXPECT_EQ(u.module_path(), "/usr/lib/x.so");
  EXPECT_EQ(u.pin_source(), "file:/tmp/pin");
  EXPECT_FALSE(u.pin_value());
  auto n = token::Uri::parse("pkcs11:?module-name=softhsm2");
  EXPECT_EQ(n.module_name(), "softhsm2");
}

TEST(Uri, MalformedUrisAreNamedInTheError) {
  for (const char* bad : {"http://x", "pkcs11:id=%zz", "pkcs11:type=bogus", "pkcs11:tokn=x",
                          "pkcs11:token=a;token=b%"}) {
    try {
      token::Uri::parse(bad);
      ADD_FAILURE() << bad << " should be refused";
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Input);
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(Uri, ObjectUriRoundTrips) {
  CK_TOKEN_INFO t{};
  std::fill(std::begin(t.label), std::end(t.label), ' ');
  std::fill(std::begin(t.model), std::end(t.model), ' ');
  std::fill(std::begin(t.manufacturerID), std::end(t.manufacturerID), ' ');
  std::fill(std::begin(t.serialNumber), std::end(t.serialNumber), ' ');
  std::copy_n("alice;token", 11, t.label);
  auto s = token::Uri::for_object(t, CKO_PRIVATE_KEY, "my key/1", token::Bytes{0x01, 0xff});
  EXPECT_NE(s.find("token=alice%3Btoken"), std::string::npos) << s;
  EXPECT_NE(s.find("id=%01%FF"), std::string::npos) << s;
  EXPECT_NE(s.find("type=private"), std::string::npos) << s;
  auto u = token::Uri::parse(s);
  EXPECT_TRUE(u.matches_token(t));
  EXPECT_EQ(u.object_template().size(), 3u);
}

// tpm2-pkcs11 1.9 pads its model with NUL bytes ("SW   TPM" + 8 NULs), as
// the emulated TPM in tests/tpm shows; printed URIs must still parse and
// select the token.
TEST(Uri, NulPaddedTokenFieldsRoundTrip) {
  CK_TOKEN_INFO t{};
  std::fill(std::begin(t.label), std::end(t.label), ' ');
  std::fill(std::begin(t.manufacturerID), std::end(t.manufacturerID), ' ');
  std::fill(std::begin(t.serialNumber), std::end(t.serialNumber), ' ');
  std::copy_n("tpmtok", 6, t.label);
  std::copy_n("IBM", 3, t.manufacturerID);
  std::copy_n("SW   TPM", 8, t.model);  // the rest stays NUL
  for (const std::string& s :
       {token::Uri::for_token(t),
        token::Uri::for_object(t, CKO_PRIVATE_KEY, "k", token::Bytes{0x01})}) {
    EXPECT_EQ(s.find("%00"), std::string::npos) << s;
    EXPECT_NE(s.find("model=SW%20%20%20TPM;"), std::string::npos) << s;
    EXPECT_TRUE(token::Uri::parse(s).matches_token(t)) << s;
  }
  EXPECT_TRUE(token::Uri::parse("pkcs11:model=SW%20%20%20TPM").matches_token(t));
  EXPECT_FALSE(token::Uri::parse("pkcs11:model=SW").matches_token(t));
}

// p11-kit's decoder skips whitespace inside a value, even between `%` and
// its hex digits, so "% 00" is a NUL byte too (found by fuzz_uri).
TEST(Uri, NulInATextAttributeIsRefusedEvenWithWhitespaceInside) {
  for (const std::string& text :
       {std::string("pkcs11:token=a%00b"), std::string("pkcs11:token=a% 00b"),
        std::string("pkcs11:object=x%\n0 0;id=%01")}) {
    try {
      token::Uri::parse(text);
      ADD_FAILURE() << text << " parsed";
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), token::ErrorKind::Input) << text;
      EXPECT_NE(std::string(e.what()).find("NUL"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(token::Uri::parse("pkcs11:token=a;id=% 00%01"));
}

TEST(Hex, ParsesCommonSpellings) {
  EXPECT_EQ(token::from_hex("0a1B"), (token::Bytes{0x0a, 0x1b}));
  EXPECT_EQ(token::from_hex("0a:1b"), (token::Bytes{0x0a, 0x1b}));
  EXPECT_EQ(token::from_hex("%0a%1b"), (token::Bytes{0x0a, 0x1b}));
  EXPECT_FALSE(token::from_hex("abc"));
  EXPECT_FALSE(token::from_hex("zz"));
  EXPECT_EQ(token::to_hex({0x00, 0xff}), "00ff");
}

class PinSources : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = make_temp_dir("pin"); }
  void TearDown() override {
    remove_tree(dir_);
    unsetenv("TOKENKIT_TEST_PIN");
  }
  std::string dir_;
};

TEST_F(PinSources, FileDropsOneTrailingNewline) {
  write_file(dir_ + "/p", "1234\n");
  EXPECT_EQ(token::read_secret_file(dir_ + "/p", "PIN").view(), "1234");
  write_file(dir_ + "/p", "12 34\r\n");
  EXPECT_EQ(token::read_secret_file(dir_ + "/p", "PIN").view(), "12 34");
  write_file(dir_ + "/p", "1234\n\n");
  EXPECT_EQ(token::read_secret_file(dir_ + "/p", "PIN").view(), "1234\n");
}

TEST_F(PinSources, EmptyOrMissingFileIsAClearError) {
  write_file(dir_ + "/empty", "");
  try {
    token::read_secret_file(dir_ + "/empty", "user PIN");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input);
    EXPECT_EQ(std::string(e.what()), "user PIN from file " + dir_ + "/empty is empty");
  }
  write_file(dir_ + "/nl", "\n");
  EXPECT_THROW(token::read_secret_file(dir_ + "/nl", "PIN"), token::Error);
  try {
    token::read_secret_file(dir_ + "/missing", "user PIN");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Io);
    EXPECT_NE(std::string(e.what()).find(dir_ + "/missing"), std::string::npos);
  }
}

TEST_F(PinSources, EnvironmentAndDescriptor) {
  token::PinSource src;
  src.env = "TOKENKIT_TEST_PIN";
  EXPECT_THROW(token::read_secret(src, "PIN"), token::Error);
  setenv("TOKENKIT_TEST_PIN", "4321", 1);
  EXPECT_EQ(token::read_secret(src, "PIN").view(), "4321");

  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "9876\n", 5), 5);
  close(p[1]);
  token::PinSource fd;
  fd.fd = p[0];
  EXPECT_EQ(token::read_secret(fd, "PIN").view(), "9876");
  close(p[0]);
}

TEST_F(PinSources, NoSourceAndNoTerminalIsAUsageError) {
  token::PinSource none;
  none.default_env = "TOKENKIT_TEST_UNSET";
  none.allow_prompt = false;
  try {
    token::read_secret(none, "user PIN");
    FAIL();
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
  }
}

TEST(SecretBuffer, HoldsAndMovesWithoutCopies) {
  token::Secret a("s3cret");
  EXPECT_EQ(a.view(), "s3cret");
  const char* where = a.data();
  token::Secret b(std::move(a));
  EXPECT_EQ(b.data(), where);
  EXPECT_TRUE(a.empty());
}

}  // namespace
