// The multipart/signed splitter over memory (verify's path for a mapped
// file) against the streaming one over a BIO (its path for a pipe): the
// same signed part, the same signature, or the same refusal with the same
// message, whatever the steps the memory one searches in.
#include <gtest/gtest.h>
#include <openssl/bio.h>

#include <memory>
#include <random>
#include <string>

#include "smime/multipart.hpp"
#include "token/error.hpp"

namespace {

using token::smime::find_dash_line;
using token::smime::split_multipart_signed;

struct Split {
  std::string content;
  token::Bytes signature;
  std::string error;  // "" when it split
  bool operator==(const Split&) const = default;
};

std::ostream& operator<<(std::ostream& o, const Split& s) {
  return o << "{content \"" << s.content << "\", " << s.signature.size() << " signature bytes, \""
           << s.error << "\"}";
}

Split streamed(const std::string& body, const std::string& boundary, std::size_t limit) {
  std::unique_ptr<BIO, decltype(&BIO_free)> in(
      BIO_new_mem_buf(body.data(), static_cast<int>(body.size())), BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
  Split s;
  try {
    s.signature = split_multipart_signed(in.get(), boundary, out.get(), limit);
    char* data = nullptr;
    const long n = BIO_get_mem_data(out.get(), &data);
    s.content.assign(data, static_cast<std::size_t>(n));
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), token::ErrorKind::Input) << e.what();
    s.error = e.what();
  }
  return s;
}

Split in_memory(const std::string& body, const std::string& boundary, std::size_t limit,
                std::size_t step) {
  Split s;
  std::size_t last = 0;
  try {
    const auto r = split_multipart_signed(
        body.data(), body.size(), boundary, limit,
        [&](std::size_t at) {
          EXPECT_GT(at, last) << "progress goes forward";
          EXPECT_LE(at, body.size());
          last = at;
        },
        step);
    EXPECT_LE(r.content_begin, r.content_end);
    EXPECT_LE(r.content_end, body.size());
    s.content = body.substr(r.content_begin, r.content_end - r.content_begin);
    s.signature = r.signature;
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), token::ErrorKind::Input) << e.what();
    s.error = e.what();
  }
  return s;
}

// Every step size from 1 to 40 (delimiters straddling every step boundary)
// and a large one give what the streaming splitter gives.
void expect_same(const std::string& body, const std::string& boundary = "b",
                 std::size_t limit = std::size_t{4} << 20) {
  const Split want = streamed(body, boundary, limit);
  for (std::size_t step = 1; step <= 40; ++step) {
    ASSERT_EQ(in_memory(body, boundary, limit, step), want) << "step " << step << ": " << body;
  }
  ASSERT_EQ(in_memory(body, boundary, limit, std::size_t{1} << 20), want) << body;
}

const std::string kSig =
    "Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
    "Content-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n";

TEST(MultipartInMemory, SplitsLikeTheStreamingReader) {
  const std::string ok = "preamble\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b\r\n" +
                         kSig + "--b--\r\nepilogue\r\n";
  const Split s = in_memory(ok, "b", 1 << 20, 7);
  EXPECT_EQ(s.content, "Content-Type: text/plain\r\n\r\nhello");
  EXPECT_EQ(s.signature, (token::Bytes{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(s.error, "");
  expect_same(ok);
}

TEST(MultipartInMemory, BareLfMessages) {
  expect_same(
      "--b\nContent-Type: text/plain\n\nhello\nworld\n--b\n"
      "Content-Type: application/pkcs7-signature\n\nAAEC\n--b--\n");
  // Mixed: the CR before the delimiter's LF goes with it, other CRs stay.
  expect_same("--b\r\nx\r\r\n--b\n" + kSig + "--b--\n");
  expect_same("--b\nx\r\n\n--b\n" + kSig + "--b--\n");
  expect_same("--b\n\r\n--b\n" + kSig + "--b--\n");
}

TEST(MultipartInMemory, DelimitersOnlyAtTheStartOfALine) {
  // The boundary in the middle of a line, and after a CR alone, is content.
  expect_same("--b\r\ntext --b text\r\nmore\r--b\r\n\r\n--b\r\n" + kSig + "--b--\r\n");
  // A line that starts with the boundary and goes on is a delimiter (as
  // the streaming reader has it): transport padding, or anything.
  expect_same("--b  \t\r\nx\r\n--b \r\n" + kSig + "--b-- \r\n");
  expect_same("--bb\r\nx\r\n--bxyz\r\n" + kSig + "--b--\r\n");
  // The preamble's "-b" and "--" lines are not delimiters.
  expect_same("-b\r\n--\r\n--c\r\n--b\r\nx\r\n--b\r\n" + kSig + "--b--\r\n");
}

TEST(MultipartInMemory, EmptyAndShortParts) {
  expect_same("--b\r\n--b\r\n" + kSig + "--b--\r\n");         // empty signed part
  expect_same("--b\r\n\r\n--b\r\n" + kSig + "--b--\r\n");     // one empty line
  expect_same("--b\n\n--b\n" + kSig + "--b--");               // no line end at the end
  expect_same("--b\r\nx\r\n--b\r\n" + kSig + "--b");          // a plain delimiter closes too
  expect_same("--b--\r\nx\r\n--b\r\n" + kSig + "--b--\r\n");  // a close delimiter first
  expect_same("--b\r\nx\r\n--b--\r\n" + kSig + "--b--\r\n");  // a close one second
  expect_same("--b-\r\nx\r\n--b-\r\n" + kSig + "--b--\r\n");  // "-" is not "--"
  expect_same("--b\r\nx");
  expect_same("--b\r\nx\r\n--b");
  expect_same("--b\r\nx\r\n--b\r\n");
  expect_same("--b");
  expect_same("");
  expect_same("no delimiter at all\r\n");
}

TEST(MultipartInMemory, RefusalsAreTheSame) {
  // Missing close delimiter.
  expect_same("--b\r\nx\r\n--b\r\n" + kSig);
  // Boundary-like text inside the signature part: mid-line it is base64
  // junk, at a line start it ends the part.
  expect_same("--b\r\nx\r\n--b\r\n" + kSig + "AA --b AA\r\n--b--\r\n");
  expect_same(
      "--b\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAEC\r\n"
      "--bogus\r\n--b--\r\n");
  // Wrong type, wrong encoding, not base64, over the limit.
  expect_same("--b\r\nx\r\n--b\r\nContent-Type: text/plain\r\n\r\nAAEC\r\n--b--\r\n");
  expect_same("--b\r\nx\r\n--b\r\n\r\nAAEC\r\n--b--\r\n");
  expect_same(
      "--b\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n"
      "Content-Transfer-Encoding: quoted-printable\r\n\r\nAAEC\r\n--b--\r\n");
  expect_same("--b\r\nx\r\n--b\r\nContent-Type: application/x-pkcs7-signature\r\n\r\n!!\r\n--b--");
  expect_same("--b\r\nx\r\n--b\r\n" + kSig + std::string(3000, 'A') + "\r\n--b--\r\n", "b", 2000);
  // Bad boundaries.
  expect_same("--\r\nx\r\n", "");
  expect_same("--b\r\nx\r\n", std::string(71, 'b'));
}

TEST(MultipartInMemory, LinesLongerThanTheStreamingReadersBuffer) {
  const std::string big(70000, 'x');
  // A content line over 64 KiB, with a delimiter-like text where the
  // streaming reader's 65535-byte piece ends.
  expect_same("--b\r\n" + big + "\r\n--b\r\n" + kSig + "--b--\r\n");
  expect_same("--b\r\n" + std::string(65535, 'y') + "--b\r\n--b\r\n" + kSig + "--b--\r\n");
  // A CRLF split between two pieces right before the delimiter.
  expect_same("--b\r\n" + std::string(65534, 'y') + "\r\n--b\r\n" + kSig + "--b--\r\n");
  // Delimiter lines over 64 KiB (transport padding): what follows the
  // piece is read as the next line, in both.
  expect_same("--b" + std::string(65600, ' ') + "\r\nx\r\n--b\r\n" + kSig + "--b--\r\n");
  expect_same("--b\r\nx\r\n--b" + std::string(65600, ' ') + "\r\n" + kSig + "--b--\r\n");
  expect_same("--b\r\nx\r\n--b" + std::string(65532, ' ') + "\r\n" + kSig + "--b--\r\n");
}

TEST(MultipartInMemory, BoundariesWithLineEnds) {
  // A quoted boundary may hold anything; the streaming reader's lines end
  // at an LF, so one with an LF inside never matches and one ending in LF
  // matches a whole line (and never closes).
  expect_same("--a\nb\r\nx\r\n--a\nb\r\n" + kSig + "--a\nb--\r\n", "a\nb");
  expect_same("--a\n--x\r\n--a\n" + kSig + "--a\n--\r\n", "a\n");
}

// Random bodies of delimiter-prone bytes: both splitters agree.
TEST(MultipartInMemory, RandomBodiesAgree) {
  std::mt19937 rng(2046);  // NOLINT(cert-msc32-c,cert-msc51-cpp): the same bodies every run
  const std::string pieces[] = {"--b", "--",    "-", "\r\n", "\n",  "\r",
                                "x",   "--b--", " ", kSig,   "AAEC"};
  for (int round = 0; round < 3000; ++round) {
    std::string body;
    const std::size_t parts = rng() % 24;
    for (std::size_t i = 0; i < parts; ++i) body += pieces[rng() % std::size(pieces)];
    const Split want = streamed(body, "b", 1 << 20);
    for (std::size_t step :
         {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5}, std::size_t{1} << 20}) {
      ASSERT_EQ(in_memory(body, "b", 1 << 20, step), want) << "round " << round << ": " << body;
    }
  }
}

TEST(MultipartInMemory, FindDashLine) {
  const std::string s = "--b\nx--b\n--b\r\n--b";
  constexpr auto npos = std::string_view::npos;
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 0, s.size()), 0U);
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 1, s.size()), 9U);
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 9, 10), 9U) << "starts in the range";
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 1, 9), npos) << "starts after it";
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 10, s.size()), 14U);
  EXPECT_EQ(find_dash_line(s.data(), s.size(), "--b", 15, s.size()), npos);
  EXPECT_EQ(find_dash_line(s.data(), 16, "--b", 10, 16), npos) << "cut by the end";
}

}  // namespace
