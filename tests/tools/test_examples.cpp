// The programs in examples/ build and do what their comments say.
#include <gtest/gtest.h>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

class Examples : public ::testing::TestWithParam<std::string> {};
INSTANTIATE_TEST_SUITE_P(Tokens, Examples, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Examples, ListKeysPrintsEveryKeyAndCertificateUri) {
  FreshToken t(GetParam());
  t.write_rsa();
  write_file(t.dir() + "/pin", kUserPin);
  auto r = run({LIST_KEYS_BINARY, t.module(), t.dir() + "/pin"}, t.env());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("token=" + t.label()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("private key\tpkcs11:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("object=alice;type=cert"), std::string::npos) << r.out;
  auto bad = run({LIST_KEYS_BINARY, "/nonexistent.so"});
  EXPECT_EQ(bad.exit_code, 8);
}

}  // namespace
