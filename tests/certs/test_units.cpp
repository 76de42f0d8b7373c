// The parts of certs lookup that take outside input, on their own: reading
// directory attribute values, judging certificates, the LDAP filter, the
// directories file. Certificates made by `openssl ca`.
#include <gtest/gtest.h>

#include <ctime>

#include "directories.hpp"
#include "process.hpp"
#include "testca.hpp"
#include "token/certcheck.hpp"
#include "token/directory.hpp"
#include "token/error.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
namespace certs = token::certs;

namespace {

class CertValues : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("certvalues");
    ca_ = std::make_unique<TestCa>(dir_ + "/ca");
  }
  void TearDown() override { remove_tree(dir_); }
  std::string dir_;
  std::unique_ptr<TestCa> ca_;
};

TEST_F(CertValues, DerPkcs7AndPemAreReadGarbageAndOversizeRefused) {
  auto a = ca_->issue(CertSpec("a", {"a@example.org"}));
  auto b = ca_->issue(CertSpec("b", {"a@example.org"}).valid("20250101000000Z"));
  run_ok({"openssl", "crl2pkcs7", "-nocrl", "-certfile", a.pem, "-certfile", b.pem, "-outform",
          "DER", "-out", dir_ + "/ab.p7c"});
  const std::string der = read_file(a.der), p7 = read_file(dir_ + "/ab.p7c"),
                    pem = read_file(b.pem);
  EXPECT_EQ(certs::parse_value(der).certs.size(), 1u);
  EXPECT_EQ(certs::parse_value(p7).certs.size(), 2u);
  EXPECT_EQ(certs::parse_value(pem).certs.size(), 1u);
  EXPECT_NE(certs::parse_value(der + "x").problem, "") << "trailing bytes are refused";
  EXPECT_NE(certs::parse_value("hello").problem.find("not a certificate"), std::string::npos);
  certs::ValueLimits small;
  small.max_value_bytes = 100;
  EXPECT_NE(certs::parse_value(der, small).problem.find("too large"), std::string::npos);
  small.max_value_bytes = 64 * 1024;
  small.max_certs_per_value = 1;
  EXPECT_EQ(certs::parse_value(p7, small).certs.size(), 1u);

  // Judged for a@example.org: both accepted, newest first, duplicates once.
  const std::time_t now = std::time(nullptr);
  auto j = certs::judge_values({der, p7, pem, "junk"}, "A@Example.org", now, nullptr);
  ASSERT_EQ(j.accepted.size(), 2u);
  EXPECT_EQ(certs::fingerprint(j.accepted[0].cert.get()), openssl_fingerprint(b.pem));
  EXPECT_EQ(j.unreadable.size(), 1u);
  EXPECT_EQ(j.unreadable[0].rfind("value 4: ", 0), 0u) << j.unreadable[0];
  certs::ValueLimits two;
  two.max_values = 2;
  j = certs::judge_values({der, p7, pem, "junk"}, "a@example.org", now, nullptr, two);
  EXPECT_EQ(j.values_skipped, 2u);
}

TEST_F(CertValues, EmailsComeFromSubjectAltNameAndSubject) {
  auto c =
      ca_->issue(CertSpec("c", {"C@Example.org", "c2@example.org"}).subject_mail("c3@example.org"));
  auto x = certs::read_certificate_file(c.pem);
  ASSERT_EQ(x.size(), 1u);
  EXPECT_EQ(certs::emails(x[0].get()),
            (std::vector<std::string>{"c@example.org", "c2@example.org", "c3@example.org"}));
}

TEST(LdapFilter, AddressIsEscapedAsRfc4515Asks) {
  EXPECT_EQ(token::directory::make_filter("(mail=%s)", "bob@example.org"),
            "(mail=bob@example.org)");
  EXPECT_EQ(token::directory::make_filter("(|(mail=%s)(otherMailbox=%s))", "a*b()\\@x"),
            "(|(mail=a\\2ab\\28\\29\\5c@x)(otherMailbox=a\\2ab\\28\\29\\5c@x))");
}

TEST(DirectoriesFile, SectionsInOrderWithTheirKeys) {
  const std::string dir = make_temp_dir("dirconf");
  write_file(dir + "/d.conf",
             "# two directories\n[corp]\nuri = ldaps://ldap.example.org\nbase = dc=example\n"
             "starttls = no\nbind-dn = cn=reader\npassword-file = /p\ntimeout = 2.5\n"
             "size-limit = 7\ntrust = /ca.pem\n\n[backup]\nuri = ldap://10.0.0.1\n"
             "filter = (uid=%s)\nattribute = userCertificate\n");
  tokenkit::Directories d = tokenkit::read_directories_file(dir + "/d.conf", true);
  ASSERT_EQ(d.list.size(), 2u);
  EXPECT_EQ(d.list[0].uri, "ldaps://ldap.example.org");
  EXPECT_EQ(d.list[0].base, "dc=example");
  EXPECT_EQ(d.list[0].bind_dn.value_or(""), "cn=reader");
  EXPECT_EQ(d.list[0].password.file.value_or(""), "/p");
  EXPECT_EQ(d.list[0].timeout_ms, 2500);
  EXPECT_EQ(d.list[0].max_entries, 7u);
  EXPECT_EQ(d.list[0].attributes.size(), 2u) << "defaults kept";
  EXPECT_EQ(d.list[1].filter, "(uid=%s)");
  EXPECT_EQ(d.list[1].attributes, std::vector<std::string>{"userCertificate"});
  EXPECT_EQ(d.trust_files, std::vector<std::string>{"/ca.pem"});
  for (const auto& bad : {std::string("uri = ldap://x\n"), std::string("[a]\nbase = x\n"),
                          std::string("[a]\nuri = ldap://x\ntimeout = soon\n"),
                          std::string("[a]\nuri = ldap://x\nnonsense\n")}) {
    write_file(dir + "/bad.conf", bad);
    try {
      tokenkit::read_directories_file(dir + "/bad.conf", true);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), token::ErrorKind::Input) << bad;
      EXPECT_NE(std::string(e.what()).find(dir + "/bad.conf"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(tokenkit::read_directories_file(dir + "/missing.conf", false).list.empty());
  remove_tree(dir);
}

}  // namespace
