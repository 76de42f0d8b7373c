// Parts of the smime layer that need no token: the CRLF output filter and
// the header reader used by verify.
#include <gtest/gtest.h>
#include <openssl/bio.h>

#include <string>

#include "smime/crlf_bio.hpp"
#include "smime/headers.hpp"
#include "token/error.hpp"

namespace {

std::string through_crlf(const std::vector<std::string>& writes) {
  BIO* mem = BIO_new(BIO_s_mem());
  BIO* chain = BIO_push(token::smime::new_crlf_filter(), mem);
  for (const auto& w : writes) BIO_write(chain, w.data(), static_cast<int>(w.size()));
  char* data = nullptr;
  long n = BIO_get_mem_data(mem, &data);
  std::string out(data, static_cast<std::size_t>(n));
  BIO_free_all(chain);
  return out;
}

TEST(CrlfFilter, AddsCrOnlyWhereMissing) {
  EXPECT_EQ(through_crlf({"a\nb\r\nc"}), "a\r\nb\r\nc");
  EXPECT_EQ(through_crlf({"\n\n"}), "\r\n\r\n");
  EXPECT_EQ(through_crlf({"a\r", "\nb\n"}), "a\r\nb\r\n") << "CRLF split across writes";
  EXPECT_EQ(through_crlf({"a", "\n", "b"}), "a\r\nb");
  EXPECT_EQ(through_crlf({"x\ry\n"}), "x\ry\r\n") << "a lone CR is content";
}

TEST(Headers, UnfoldsAndFindsFieldsCaseInsensitively) {
  const std::string block =
      "Subject: hi\r\nfrom: Alice Example\r\n <Alice@Example.ORG>\r\nTo: bob@example.org\r\n\r\n";
  auto from = token::smime::header_value(block, "From");
  ASSERT_TRUE(from);
  EXPECT_EQ(*from, "Alice Example <Alice@Example.ORG>");
  EXPECT_EQ(token::smime::mail_address(*from), "alice@example.org");
  EXPECT_EQ(token::smime::mail_address(" bob@example.org "), "bob@example.org");
  EXPECT_FALSE(token::smime::header_value(block, "Cc"));
}

TEST(Headers, PrefixFilterReplaysWhatWasReadAhead) {
  const std::string msg = "A: 1\nB: 2\n\nbody line\nlast";
  BIO* src = BIO_new_mem_buf(msg.data(), static_cast<int>(msg.size()));
  std::string block = token::smime::read_header_block(src);
  EXPECT_EQ(block, "A: 1\nB: 2\n\n");
  BIO* chain = BIO_push(token::smime::new_prefix_filter(block), src);
  std::string again;
  char line[8];  // smaller than a line: gets must hand out pieces
  int n;
  while ((n = BIO_gets(chain, line, sizeof line)) > 0)
    again.append(line, static_cast<std::size_t>(n));
  EXPECT_EQ(again, msg);
  BIO_free_all(chain);
}

TEST(Headers, HugeHeaderBlockIsRefused) {
  const std::string msg = "X: " + std::string(10000, 'a') + "\n\n";
  BIO* src = BIO_new_mem_buf(msg.data(), static_cast<int>(msg.size()));
  EXPECT_THROW(token::smime::read_header_block(src, 4096), token::Error);
  BIO_free(src);
}

}  // namespace
