// The parts of certs lookup that take outside input, on their own: reading
// directory attribute values, judging certificates, the LDAP filter, the
// directories file. Certificates made by `openssl ca`.
#include <gtest/gtest.h>

#include <ctime>

#include "directories.hpp"
#include "process.hpp"
#include "testca.hpp"
#include "token/certcheck.hpp"
#include "token/certstore.hpp"
#include "token/directory.hpp"
#include "token/error.hpp"
#include "token/smime.hpp"
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

// SMIMECapabilities DER (RFC 8551 section 2.5.2), written out by hand: a
// SEQUENCE of SEQUENCEs, each an OID of the NIST AES arc 2.16.840.1.101.3.4.1.
std::string capabilities(std::initializer_list<unsigned char> last_arcs) {
  std::string body;
  for (unsigned char arc : last_arcs) {
    body += std::string("\x30\x0b\x06\x09\x60\x86\x48\x01\x65\x03\x04\x01", 12);
    body += static_cast<char>(arc);
  }
  return std::string("\x30") + static_cast<char>(body.size()) + body;
}

TEST(SmimeCapabilities, AesCiphersAreReadAndGarbageIsUnknown) {
  auto c = token::smime::announced_ciphers(capabilities({0x2e, 0x02}));  // 256-GCM, 128-CBC
  EXPECT_TRUE(c.readable);
  EXPECT_TRUE(c.aes256_gcm);
  EXPECT_TRUE(c.aes128_cbc);
  EXPECT_FALSE(c.aes128_gcm);
  EXPECT_FALSE(c.aes256_cbc);
  c = token::smime::announced_ciphers(capabilities({0x2a, 0x06}));  // 256-CBC, 128-GCM
  EXPECT_TRUE(c.aes256_cbc && c.aes128_gcm && !c.aes256_gcm && !c.aes128_cbc);
  std::string trailing = capabilities({0x2e}) + "x";
  std::string cut = capabilities({0x2e}).substr(0, 10);
  for (const std::string& bad : {std::string(), trailing, cut, std::string("\x04\x00", 2)}) {
    c = token::smime::announced_ciphers(bad);
    EXPECT_FALSE(c.readable || c.aes256_gcm || c.aes128_gcm || c.aes256_cbc || c.aes128_cbc);
  }
  EXPECT_TRUE(token::smime::announced_ciphers(capabilities({})).readable);  // an empty list
}

TEST_F(CertValues, StoreKeepsTheLatestCapabilitiesOfAStoredCertificate) {
  auto alice = ca_->issue(CertSpec("alice", {"alice@example.org"}));
  auto x = certs::read_certificate_file(alice.pem);
  certs::Store store(dir_ + "/store/certs.db");
  const std::string fp = certs::fingerprint(x.front().get());
  const std::string gcm = capabilities({0x2e}), cbc = capabilities({0x2a});
  EXPECT_FALSE(store.set_capabilities(fp, gcm, 100, 1000)) << "not in the store";
  EXPECT_FALSE(store.capabilities(fp));
  ASSERT_TRUE(store.add(x.front().get(), certs::Source::Verify, 1000));
  EXPECT_TRUE(store.set_capabilities(fp, gcm, 200, 1000));
  EXPECT_FALSE(store.set_capabilities(fp, cbc, 100, 1001)) << "an older message";
  EXPECT_EQ(store.capabilities(fp)->der, gcm);
  EXPECT_TRUE(store.set_capabilities(fp, cbc, 300, 1002));
  auto kept = store.capabilities(fp);
  ASSERT_TRUE(kept);
  EXPECT_EQ(kept->der, cbc);
  EXPECT_EQ(kept->signed_at, 300);
  EXPECT_EQ(kept->updated, 1002);
  EXPECT_EQ(store.remove({fp}), 1u);
  EXPECT_FALSE(store.capabilities(fp)) << "removed with its certificate";
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
