// Parts of the smime layer that need no token: the CRLF output filter and
// the header reader used by verify, the X25519 recipient-info rewriter.
#include <gtest/gtest.h>
#include <openssl/bio.h>

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
