// tokenkit's base64 codec (libtoken/src/smime/base64.hpp) against OpenSSL's
// EVP_EncodeBlock and EVP_DecodeBlock, and the AES-GCM behaviour that
// one-pass decryption relies on (the tag set after the ciphertext).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "base64_reference.hpp"
#include "smime/base64.hpp"

namespace {

namespace b64 = token::smime::base64;
using token::smime::testing::reference_decode;

std::string random_bytes(std::mt19937& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

std::string openssl_encode(const std::string& data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  const int k = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(data.data()),
                                static_cast<int>(data.size()));
  out.resize(static_cast<std::size_t>(k));
  return out;
}

// Our decoder over `text` fed in pieces of random sizes (at most `max_piece`):
// the bytes, or nullopt when it says Bad.
std::optional<std::string> decode(std::string_view text, std::mt19937& rng, std::size_t max_piece) {
  b64::Decoder d;
  std::string out;
  for (std::size_t at = 0; at < text.size();) {
    const std::size_t k = std::min<std::size_t>(text.size() - at, 1 + rng() % max_piece);
    std::vector<unsigned char> buf(b64::Decoder::max_decoded(k));
    const std::size_t w = d.feed(text.data() + at, k, buf.data());
    EXPECT_LE(w, buf.size());
    out.append(reinterpret_cast<const char*>(buf.data()), w);
    at += k;
  }
  if (d.finish() == b64::Decoder::Status::Bad) return std::nullopt;
  return out;
}

TEST(Base64Codec, EncodesAsEvpEncodeBlockForEveryLength) {
  std::mt19937 rng(2045);
  for (std::size_t len = 0; len <= 300; ++len) {
    for (int round = 0; round < 4; ++round) {
      const std::string data = random_bytes(rng, len);
      std::string mine(b64::encoded_size(len), '?');
      const std::size_t k =
          b64::encode(reinterpret_cast<const unsigned char*>(data.data()), len, mine.data());
      ASSERT_EQ(k, mine.size()) << len;
      ASSERT_EQ(mine, openssl_encode(data)) << "length " << len;
    }
  }
}

TEST(Base64Codec, EncodesLinesAsEvpEncodeBlockPerLine) {
  std::mt19937 rng(76);
  for (std::size_t line_bytes : {3, 48, 57}) {
    for (std::size_t lines = 0; lines <= 40; ++lines) {
      const std::string data = random_bytes(rng, lines * line_bytes);
      for (std::string_view eol : {"\r\n", "\n"}) {
        std::string want;
        for (std::size_t i = 0; i < lines; ++i) {
          want += openssl_encode(data.substr(i * line_bytes, line_bytes));
          want += eol;
        }
        std::string mine(want.size() + 8, '?');
        const std::size_t k =
            b64::encode_lines(reinterpret_cast<const unsigned char*>(data.data()), lines,
                              line_bytes, eol.data(), eol.size(), mine.data());
        ASSERT_EQ(mine.substr(0, k), want) << line_bytes << " x " << lines;
        EXPECT_EQ(mine.substr(k), std::string(8, '?')) << "nothing written past the end";
      }
    }
  }
}

// What OpenSSL's encoder writes, with line breaks put back at random places
// (LF or CRLF, some with trailing blanks, some lines empty), decodes to the
// data, fed in pieces of any size, and the reference (the decoder tokenkit
// had, over EVP_DecodeBlock) agrees.
TEST(Base64Codec, DecodesEvpEncodeBlockOutputWithRandomLineBreaks) {
  std::mt19937 rng(4648);
  for (std::size_t len = 0; len <= 300; ++len) {
    for (int round = 0; round < 6; ++round) {
      const std::string data = random_bytes(rng, len);
      const std::string plain = openssl_encode(data);
      std::string text;
      for (char c : plain) {
        text += c;
        const unsigned r = rng() % 40;
        if (r == 0) text += "\r\n";
        if (r == 1) text += "\n";
        if (r == 2) text += " \t\r\n";
        if (r == 3) text += "\r\n\r\n";
      }
      if (rng() % 2) text += "\r\n";
      const std::size_t max_piece = 1 + rng() % 90;
      const auto mine = decode(text, rng, max_piece);
      ASSERT_TRUE(mine.has_value()) << "length " << len << ": " << text;
      ASSERT_EQ(*mine, data) << "length " << len << ": " << text;
      const auto ref = reference_decode(text);
      ASSERT_TRUE(ref.has_value()) << text;
      ASSERT_EQ(*ref, data) << text;
    }
  }
}

TEST(Base64Codec, RejectsAndAcceptsWhatTheOldDecoderDid) {
  struct Case {
    std::string text;
    std::optional<std::string> want;  // nullopt: an error
  };
  const std::vector<Case> cases = {
      {"", ""},
      {"QUJD", "ABC"},
      {"QUJD\r\n", "ABC"},
      {"QU\r\nJD\r\n", "ABC"},  // a quantum across lines
      {"QUJD \t\r\n", "ABC"},   // trailing blanks
      {"QUJD   ", "ABC"},       // trailing blanks at the end of the input
      {"\r\n\r\nQUJD", "ABC"},  // empty lines first
      {"QUI=", "AB"},
      {"QQ==", "A"},
      {"QQ=", "A"},          // the padding is completed
      {"QQ", std::nullopt},  // a short quantum without '='
      {"QUJDQQ", std::nullopt},
      {"Q===", "@"},     // one character before '=': one byte
      {"QUJD=", "ABC"},  // '=' after a whole quantum ends the data
      {"=", ""},
      {"QQ==*not read*", "A"},  // what follows '=' is not read
      {"QQ==\r\nQUJD", "A"},
      {"QU*D", std::nullopt},  // outside the alphabet
      {"QUJD-", std::nullopt},
      {"QUJ\f\n", std::nullopt},
      {"QUJD\x80", std::nullopt},
      {std::string("QU\0D", 4), std::nullopt},
      {" QUJD", std::nullopt},  // a blank before a character on its line
      {"QU JD", std::nullopt},
      {"QU\rJD", std::nullopt},  // a lone CR is not a line end
      {"QU \r=", std::nullopt},
      {"QUJD\r\r\n", "ABC"},
      {"QUJD\r\rQUJD", std::nullopt},
  };
  std::mt19937 rng(1);
  for (const auto& c : cases) {
    EXPECT_EQ(reference_decode(c.text), c.want) << "reference: " << c.text;
    for (std::size_t piece : {1, 2, 3, 5, 100}) {
      EXPECT_EQ(decode(c.text, rng, piece), c.want) << c.text << " in pieces up to " << piece;
    }
  }
}

// Random texts over the characters that matter (alphabet, '=', line ends,
// blanks, faults), in random pieces: the same verdict and bytes as the
// reference, whatever the pieces.
TEST(Base64Codec, AgreesWithTheReferenceOnRandomTexts) {
  std::mt19937 rng(8551);
  const std::string chars = "QUJDabz09+/=\r\n \t*-";
  for (int round = 0; round < 20000; ++round) {
    std::string text;
    const std::size_t len = rng() % 40;
    // Mostly alphabet, so that many texts are valid.
    for (std::size_t i = 0; i < len; ++i) {
      text += rng() % 4 != 0 ? chars[rng() % 10] : chars[rng() % chars.size()];
    }
    const auto ref = reference_decode(text);
    ASSERT_EQ(decode(text, rng, 1 + rng() % 8), ref) << "text: " << text;
  }
}

// One-pass decryption (envelope.cpp) sets the AES-GCM tag on the cipher
// context after the ciphertext, where the message carries it, and only then
// finalises; OpenSSL's CMS had set a stand-in tag when it set the context
// up. OpenSSL 3.0's GCM provider keeps the tag given last before the final
// call (providers/implementations/ciphers/ciphercommon_gcm.c: a set tag is
// copied into the context and only the final step compares it).
TEST(GcmTag, CanBeSetAfterTheCiphertextAndTheLastOneCounts) {
  unsigned char key[32], iv[12];
  ASSERT_EQ(RAND_bytes(key, sizeof key), 1);
  ASSERT_EQ(RAND_bytes(iv, sizeof iv), 1);
  std::string plain(100000, 'x');
  for (std::size_t i = 0; i < plain.size(); ++i) plain[i] = static_cast<char>(i * 7);
  std::vector<unsigned char> ct(plain.size());
  unsigned char tag[16];
  {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    int n = 0, f = 0;
    ASSERT_EQ(EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key, iv), 1);
    ASSERT_EQ(EVP_EncryptUpdate(c, ct.data(), &n, reinterpret_cast<unsigned char*>(plain.data()),
                                static_cast<int>(plain.size())),
              1);
    ASSERT_EQ(EVP_EncryptFinal_ex(c, ct.data() + n, &f), 1);
    ASSERT_EQ(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, tag), 1);
    EVP_CIPHER_CTX_free(c);
  }
  // early: the tag given at set-up (zeros, or the real one); late: the tag
  // given after the last update (none, the real one, or a changed one).
  const auto decrypt = [&](const unsigned char* early, const unsigned char* late,
                           int late_len) -> bool {
    EVP_CIPHER_CTX* c = EVP_CIPHER_CTX_new();
    std::vector<unsigned char> out(ct.size() + 16);
    int n = 0, total = 0;
    bool ok =
        EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), nullptr, key, iv) == 1 &&
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, 16, const_cast<unsigned char*>(early)) == 1;
    for (std::size_t at = 0; ok && at < ct.size(); at += 16384) {
      const int k = static_cast<int>(std::min<std::size_t>(16384, ct.size() - at));
      ok = EVP_DecryptUpdate(c, out.data() + total, &n, ct.data() + at, k) == 1;
      total += n;
    }
    if (ok && late != nullptr) {
      ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, late_len,
                               const_cast<unsigned char*>(late)) == 1;
    }
    ok = ok && EVP_DecryptFinal_ex(c, out.data() + total, &n) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok && std::string(reinterpret_cast<char*>(out.data()),
                             static_cast<std::size_t>(total)) == plain;
  };
  const unsigned char zeros[16] = {};
  unsigned char changed[16];
  std::copy_n(tag, 16, changed);
  changed[0] ^= 1;
  EXPECT_TRUE(decrypt(tag, nullptr, 0)) << "the tag at set-up (OpenSSL's CMS)";
  EXPECT_FALSE(decrypt(zeros, nullptr, 0)) << "a stand-in tag left in place fails";
  EXPECT_TRUE(decrypt(zeros, tag, 16)) << "the real tag set after the ciphertext";
  EXPECT_FALSE(decrypt(zeros, changed, 16)) << "a changed tag set late fails";
  EXPECT_FALSE(decrypt(tag, changed, 16)) << "the tag set last counts, not the first";
  EXPECT_TRUE(decrypt(zeros, tag, 12)) << "a 12-byte tag (RFC 5084's default ICV length)";
  EXPECT_FALSE(decrypt(zeros, changed, 12));
}

}  // namespace
