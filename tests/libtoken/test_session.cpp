#include <gtest/gtest.h>

#include "token/objects.hpp"
#include "token_fixture.hpp"

using namespace tokenkit::test;
using token::AttributeTemplate;
using token::ErrorKind;

namespace {

class SessionTest : public TokenTest {};
TOKENKIT_TOKEN_SUITE(SessionTest);

TEST_P(SessionTest, WrongPinIsNamedAndRightPinWorks) {
  auto m = module();
  token::Session s(m, slot(m).id);
  try {
    s.login(token::Secret("000000"));  // expected to fail: not counted as unexpected
    FAIL() << "a wrong PIN must not log in";
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::PinIncorrect);
    EXPECT_EQ(e.rv(), CKR_PIN_INCORRECT);
    EXPECT_EQ(std::string(e.what()), "C_Login on token \"" + token_->label() + "\" (slot " +
                                         std::to_string(slot(m).id) +
                                         "): CKR_PIN_INCORRECT (0xa0)");
  }
  login(s);
  EXPECT_EQ(s.info().state, CKS_RO_USER_FUNCTIONS);
  login(s);  // already logged in is not an error
  s.logout();
  EXPECT_EQ(s.info().state, CKS_RO_PUBLIC_SESSION);
}

TEST_P(SessionTest, ClosingASessionDoesNotLogOut) {
  auto m = module();
  token::Session keep(m, slot(m).id);
  {
    token::Session other(m, slot(m).id);
    login(other);
  }
  EXPECT_EQ(keep.info().state, CKS_RO_USER_FUNCTIONS);
}

TEST_P(SessionTest, LoginGuardLogsOutAtScopeEnd) {
  auto m = module();
  token::Session s(m, slot(m).id);
  {
    token::LoginGuard g(s, token::Secret(kUserPin));
    EXPECT_EQ(s.info().state, CKS_RO_USER_FUNCTIONS);
  }
  EXPECT_EQ(s.info().state, CKS_RO_PUBLIC_SESSION);
}

TEST_P(SessionTest, FindsKeysAndCertificatesByClassLabelAndId) {
  token_->write_rsa();
  token_->write_ec();
  auto m = module();
  token::Session s(m, slot(m).id);
  AttributeTemplate certs;
  certs.add(CKA_CLASS, CK_ULONG(CKO_CERTIFICATE));
  EXPECT_EQ(s.find(certs).size(), 2u);
  AttributeTemplate priv;
  priv.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY));
  EXPECT_EQ(s.find(priv).size(), 0u) << "private keys are invisible before login";
  login(s);
  EXPECT_EQ(s.find(priv).size(), 2u);
  AttributeTemplate bob;
  bob.add(CKA_LABEL, std::string("bob"));
  EXPECT_EQ(s.find(bob).size(), 3u);
  AttributeTemplate id1;
  id1.add(CKA_ID, token::Bytes{0x01}).add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY));
  EXPECT_EQ(s.find(id1).size(), 1u);
  AttributeTemplate none;
  none.add(CKA_LABEL, std::string("nobody"));
  EXPECT_TRUE(s.find(none).empty());
}

TEST_P(SessionTest, FindLoopsPastOneBatch) {
  // Session::find asks for 64 handles at a time; 70 data objects need two.
  auto m = module();
  token::Session s(m, slot(m).id, true);
  login(s);
  for (int i = 0; i < 70; ++i) {
    AttributeTemplate t;
    CK_OBJECT_HANDLE h;
    t.add(CKA_CLASS, CK_ULONG(CKO_DATA)).add_bool(CKA_TOKEN, false).add(CKA_LABEL, std::string("d"));
    m.call("C_CreateObject", m.functions()->C_CreateObject, s.context(), s.handle(), t.data(),
           t.size(), &h);
  }
  AttributeTemplate d;
  d.add(CKA_LABEL, std::string("d"));
  EXPECT_EQ(s.find(d).size(), 70u);
}

TEST_P(SessionTest, ReadToleratesRefusedAttributes) {
  token_->write_rsa();
  auto m = module();
  token::Session s(m, slot(m).id);
  login(s);
  AttributeTemplate priv;
  priv.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY));
  auto keys = s.find(priv);
  ASSERT_EQ(keys.size(), 1u);
  // CKA_PRIVATE_EXPONENT is sensitive and CKA_EC_POINT does not belong to an
  // RSA key: both are refused, and the rest still comes back.
  const CK_ATTRIBUTE_TYPE want[] = {CKA_LABEL, CKA_PRIVATE_EXPONENT, CKA_EC_POINT, CKA_MODULUS,
                                    CKA_SENSITIVE};
  auto v = s.read(keys[0], want);
  EXPECT_EQ(v.string_value(CKA_LABEL), "alice");
  EXPECT_FALSE(v.has(CKA_PRIVATE_EXPONENT));
  EXPECT_FALSE(v.has(CKA_EC_POINT));
  ASSERT_TRUE(v.bytes(CKA_MODULUS));
  EXPECT_EQ(v.bytes(CKA_MODULUS)->size(), 256u);
  EXPECT_EQ(v.bool_value(CKA_SENSITIVE), true);
}

TEST_P(SessionTest, DescribesKeysCertificatesAndTheirUris) {
  token_->write_rsa();
  token_->write_ec();
  auto m = module();
  auto sl = slot(m);
  token::Session s(m, sl.id);
  login(s);
  auto objs = token::list_objects(s, sl.token, token::Uri());
  int seen = 0;
  for (const auto& o : objs) {
    if (o.cls == CKO_PRIVATE_KEY && o.label == "alice") {
      ++seen;
      EXPECT_EQ(o.key_type, CKK_RSA);
      EXPECT_EQ(o.key_bits, 2048u);
      EXPECT_EQ(o.sensitive, true);
      EXPECT_EQ(o.extractable, false);
      EXPECT_EQ(o.can_sign, true);
      EXPECT_EQ(o.id, token::Bytes{0x01});
    }
    if (o.cls == CKO_PRIVATE_KEY && o.label == "bob") {
      ++seen;
      EXPECT_EQ(o.key_type, CKK_EC);
      EXPECT_EQ(o.key_bits, 256u);
      EXPECT_EQ(o.curve, "prime256v1");
    }
    if (o.cls == CKO_CERTIFICATE && o.label == "alice") {
      ++seen;
      ASSERT_TRUE(o.certificate);
      EXPECT_EQ(o.certificate->emails, std::vector<std::string>{"alice@example.org"});
      EXPECT_NE(o.certificate->subject.find("CN=Alice Example"), std::string::npos);
      EXPECT_FALSE(o.certificate->not_after.empty());
    }
    // Every URI selects exactly its object again.
    if (o.cls == CKO_PROFILE) {
      EXPECT_TRUE(o.uri.empty()) << "no RFC 7512 type can select a profile object";
      continue;
    }
    auto uri = token::Uri::parse(o.uri);
    EXPECT_TRUE(uri.matches_token(sl.token));
    auto again = token::list_objects(s, sl.token, uri);
    ASSERT_EQ(again.size(), 1u) << o.uri;
    EXPECT_EQ(again[0].handle, o.handle);
  }
  EXPECT_EQ(seen, 3);
}

}  // namespace
