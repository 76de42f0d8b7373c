// Parts of the smime layer that need no token: the CRLF output filter and
// the header reader used by verify, the X25519 recipient-info rewriter.
#include <gtest/gtest.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <random>
#include <string>

#include <openssl/cms.h>
#include <openssl/x509.h>

#include "smime/crlf_bio.hpp"
#include "smime/headers.hpp"
#include "smime/kari_x25519.hpp"
#include "token/error.hpp"
#include "token/smime.hpp"

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

std::string mem_data(BIO* mem) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(mem, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

// The canonical form must be exactly OpenSSL's (SMIME_crlf_copy), which
// `openssl cms -verify` applies again to the signed part: random texts of
// a, CR and LF with lines past OpenSSL's 1024-byte buffer, fed in random
// pieces, come out the same.
TEST(Canonicalizer, MatchesOpensslsSmimeCrlfCopy) {
  std::mt19937 rng(8551);
  for (int round = 0; round < 300; ++round) {
    std::string in;
    const std::size_t len = rng() % 8000;
    const unsigned lf_odds = 1 + rng() % 20;  // in 1200: lines of 60 to 1200 bytes
    const unsigned cr_odds = rng() % 20;
    while (in.size() < len) {
      const unsigned r = rng() % 1200;
      in += r < lf_odds ? '\n' : r < lf_odds + cr_odds ? '\r' : 'a';
    }
    BIO* src = BIO_new_mem_buf(in.data(), static_cast<int>(in.size()));
    BIO* want = BIO_new(BIO_s_mem());
    ASSERT_EQ(SMIME_crlf_copy(src, want, 0), 1);
    std::string got;
    token::smime::Canonicalizer c;
    for (std::size_t at = 0; at < in.size();) {
      const std::size_t k = std::min<std::size_t>(in.size() - at, 1 + rng() % 700);
      c.feed(in.data() + at, k, got);
      at += k;
    }
    c.finish();
    ASSERT_EQ(got, mem_data(want)) << "round " << round;
    BIO_free(src);
    BIO_free(want);
  }
}

// Our base64 writer and reader against OpenSSL's decoder and encoder, for
// every length around the line and quantum sizes, written in odd pieces.
TEST(Base64Filters, AgreeWithOpenssl) {
  for (std::size_t len : {0, 1, 2, 3, 47, 48, 49, 95, 96, 97, 1000, 70000}) {
    std::string data(len, '\0');
    RAND_bytes(reinterpret_cast<unsigned char*>(data.data()), static_cast<int>(len));
    BIO* mem = BIO_new(BIO_s_mem());
    BIO* enc = BIO_push(token::smime::new_base64_filter(), mem);
    for (std::size_t at = 0; at < len; at += 77) {
      const auto k = static_cast<int>(std::min<std::size_t>(77, len - at));
      ASSERT_EQ(BIO_write(enc, data.data() + at, k), k);
    }
    ASSERT_EQ(BIO_flush(enc), 1);
    const std::string text = mem_data(mem);
    BIO_free_all(enc);
    for (std::size_t at = text.find('\n'); at != std::string::npos; at = text.find('\n', at + 1)) {
      ASSERT_EQ(text[at - 1], '\r') << "CRLF line ends";
    }
    // OpenSSL's decoder reads it back.
    BIO* b64 = BIO_push(BIO_new(BIO_f_base64()),
                        BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
    std::string back(len + 10, '\0');
    int n = 0, r;
    while ((r = BIO_read(b64, back.data() + n, static_cast<int>(back.size()) - n)) > 0) n += r;
    BIO_free_all(b64);
    EXPECT_EQ(back.substr(0, static_cast<std::size_t>(n)), data) << len;
    // Ours reads what OpenSSL's encoder wrote (LF lines).
    BIO* omem = BIO_new(BIO_s_mem());
    BIO* oenc = BIO_push(BIO_new(BIO_f_base64()), omem);
    BIO_write(oenc, data.data(), static_cast<int>(len));
    (void)BIO_flush(oenc);
    const std::string otext = mem_data(omem);
    BIO_free_all(oenc);
    BIO* dec = BIO_push(token::smime::new_base64_decoder(),
                        BIO_new_mem_buf(otext.data(), static_cast<int>(otext.size())));
    std::string mine;
    char piece[5];  // small reads, as the BER reader makes
    while ((r = BIO_read(dec, piece, sizeof piece)) > 0)
      mine.append(piece, static_cast<std::size_t>(r));
    EXPECT_EQ(r, 0) << len;
    BIO_free_all(dec);
    EXPECT_EQ(mine, data) << len;
  }
  // A character outside the alphabet is an error, not silence.
  const std::string bad = "QUJD\nQU*D\n";
  BIO* dec = BIO_push(token::smime::new_base64_decoder(),
                      BIO_new_mem_buf(bad.data(), static_cast<int>(bad.size())));
  char buf[16];
  EXPECT_EQ(BIO_read(dec, buf, sizeof buf), -1);
  EXPECT_EQ(BIO_ctrl(dec, BIO_CTRL_EOF, 0, nullptr), -1);
  BIO_free_all(dec);
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

// The X25519 recipient-info rewriter (kari_x25519.hpp) sees the DER stream
// in whatever pieces OpenSSL writes it: one byte at a time or all at once,
// the output is the same, and it is CMS with a KeyAgreeRecipientInfo where
// the stand-in KEK recipient info was.
namespace x25519_units {

X509* x25519_cert() {
  EVP_PKEY* x = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  EVP_PKEY* ca = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  X509* c = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(c), 7);
  X509_NAME* n = X509_NAME_new();
  X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("Dave"),
                             -1, -1, 0);
  X509_set_subject_name(c, n);
  X509_set_issuer_name(c, n);
  X509_gmtime_adj(X509_getm_notBefore(c), 0);
  X509_gmtime_adj(X509_getm_notAfter(c), 3600);
  X509_set_pubkey(c, x);
  X509_sign(c, ca, nullptr);
  X509_NAME_free(n);
  EVP_PKEY_free(x);
  EVP_PKEY_free(ca);
  return c;
}

std::string mem_string(BIO* mem) {
  char* data = nullptr;
  const long n = BIO_get_mem_data(mem, &data);
  return std::string(data, static_cast<std::size_t>(n));
}

TEST(X25519Rewriter, SameOutputWhateverThePiecesAndAKariInIt) {
  X509* cert = x25519_cert();
  ASSERT_NE(cert, nullptr);
  EVP_CIPHER* aes = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  CMS_ContentInfo* cms = CMS_AuthEnvelopedData_create_ex(aes, nullptr, nullptr);
  EVP_CIPHER_free(aes);
  token::smime::x25519::Recipients r;
  r.add(cms, cert);
  // The stream as OpenSSL writes it, before any rewriting.
  BIO* raw = BIO_new(BIO_s_mem());
  BIO* in = BIO_new_mem_buf("hello\r\n", -1);
  ASSERT_EQ(i2d_CMS_bio_stream(raw, cms, in, CMS_STREAM | CMS_BINARY), 1);
  const std::string stream = mem_string(raw);
  std::string first;
  for (std::size_t piece : {std::size_t{1}, std::size_t{7}, stream.size()}) {
    BIO* out = BIO_new(BIO_s_mem());
    BIO* chain = BIO_push(token::smime::x25519::new_rewriter(r), out);
    for (std::size_t at = 0; at < stream.size(); at += piece) {
      const auto n = static_cast<int>(std::min(piece, stream.size() - at));
      ASSERT_EQ(BIO_write(chain, stream.data() + at, n), n) << "piece " << piece;
    }
    ASSERT_EQ(BIO_flush(chain), 1);
    const std::string got = mem_string(out);
    if (first.empty()) first = got;
    EXPECT_EQ(got, first) << "piece " << piece;
    BIO_free_all(chain);
  }
  const auto* p = reinterpret_cast<const unsigned char*>(first.data());
  CMS_ContentInfo* back = d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(first.size()));
  ASSERT_NE(back, nullptr);
  STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(back);
  ASSERT_EQ(sk_CMS_RecipientInfo_num(ris), 1);
  EXPECT_EQ(CMS_RecipientInfo_type(sk_CMS_RecipientInfo_value(ris, 0)), CMS_RECIPINFO_AGREE);
  // A stream cut short before its recipient infos cannot be flushed.
  BIO* cut = BIO_push(token::smime::x25519::new_rewriter(r), BIO_new(BIO_s_mem()));
  BIO_write(cut, stream.data(), 10);
  EXPECT_NE(BIO_flush(cut), 1);
  BIO_free_all(cut);
  CMS_ContentInfo_free(back);
  CMS_ContentInfo_free(cms);
  BIO_free(in);
  BIO_free(raw);
  X509_free(cert);
}

TEST(X25519Inspect, CountsAndChecksX25519RecipientInfos) {
  const std::string dir = TOKENKIT_CORPUS_DIR "/smime_decrypt/";
  auto inspect = [&](const std::string& name) {
    BIO* b = BIO_new_file((dir + name).c_str(), "rb");
    EXPECT_NE(b, nullptr) << name;
    auto info = token::smime::inspect_encrypted(b);
    BIO_free(b);
    return info;
  };
  auto mixed = inspect("e-x25519-mixed.eml");  // RSA, P-256, X25519
  EXPECT_EQ(mixed.recipient_types.size(), 3u);
  EXPECT_EQ(mixed.x25519_recipients, 1u);
  EXPECT_EQ(inspect("e-x25519-ukm.eml").x25519_recipients, 1u);
  EXPECT_EQ(inspect("e-rsa-gcm.eml").x25519_recipients, 0u);
}

}  // namespace x25519_units
