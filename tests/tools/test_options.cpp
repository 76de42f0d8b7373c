// Option parsing on its own, without a token.
#include <gtest/gtest.h>

#include "cli.hpp"
#include "token/error.hpp"

using namespace tokenkit;

namespace {

po::options_description options() {
  po::options_description d;
  d.add_options()("help,h", "")("uri", po::value<std::string>(), "");
  add_token_options(d);
  add_pin_options(d);
  return d;
}

TEST(Options, TokenAndPinValues) {
  auto d = options();
  po::positional_options_description pos;
  pos.add("uri", 1);
  auto p = parse({"pkcs11:token=a", "--module", "m.so", "--slot", "3", "--pin-file", "/p"}, d, &pos);
  auto t = token_options(p.vm);
  EXPECT_EQ(t.uri, "pkcs11:token=a");
  EXPECT_EQ(t.module, "m.so");
  EXPECT_EQ(t.slot, 3u);
  auto pin = pin_options(p.vm);
  EXPECT_TRUE(pin.login) << "a PIN source implies --login";
  EXPECT_EQ(pin.source.file, "/p");
}

TEST(Options, UsageErrors) {
  auto d = options();
  for (std::vector<std::string> bad : {std::vector<std::string>{"--slot", "x"},
                                       {"--bogus"},
                                       {"--module"}}) {
    try {
      parse(bad, d);
      ADD_FAILURE() << bad[0];
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), token::ErrorKind::Usage);
    }
  }
  auto p = parse({"--pin", "1", "--pin-fd", "3"}, d);
  EXPECT_THROW(pin_options(p.vm), token::Error);
}

}  // namespace
