// Token keys as OpenSSL keys: what the token signs, decrypts and derives,
// checked by plain OpenSSL with the certificate's public key; and ordinary
// file keys in the same process left alone.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "token/engine.hpp"
#include "token/smime.hpp"
#include "token_fixture.hpp"

using namespace tokenkit::test;
using token::Bytes;

namespace {

template <class T, void (*F)(T*)>
struct Free {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Free<EVP_PKEY, EVP_PKEY_free>>;
using CtxPtr = std::unique_ptr<EVP_PKEY_CTX, Free<EVP_PKEY_CTX, EVP_PKEY_CTX_free>>;
using MdCtxPtr = std::unique_ptr<EVP_MD_CTX, Free<EVP_MD_CTX, EVP_MD_CTX_free>>;

const std::string kMessage = "a message signed on the token";

PkeyPtr read_der_key(const std::string& path) {
  std::string der = read_file(path);
  auto* p = reinterpret_cast<const unsigned char*>(der.data());
  return PkeyPtr(d2i_AutoPrivateKey(nullptr, &p, static_cast<long>(der.size())));
}

class EngineTest : public TokenTest {
 protected:
  // A logged-in session on the fresh token, and the key with this id.
  token::TokenKey open(const std::string& id_hex) {
    module_ = std::make_unique<token::Module>(module());
    session_ = std::make_unique<token::Session>(*module_, slot(*module_).id);
    login(*session_);
    return token::open_private_key(*session_, token::Uri::parse("pkcs11:id=%" + id_hex));
  }

  // Signs with the token key in its library context; `tweak` sets padding.
  Bytes sign(const token::TokenKey& key, const char* md, void (*tweak)(EVP_PKEY_CTX*) = nullptr) {
    MdCtxPtr m(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    if (EVP_DigestSignInit_ex(m.get(), &pctx, md, key.libctx(), nullptr, key.pkey(), nullptr) != 1)
      token::rethrow_engine_error("DigestSignInit");
    if (tweak) tweak(pctx);
    auto* data = reinterpret_cast<const unsigned char*>(kMessage.data());
    std::size_t n = 0;
    if (EVP_DigestSign(m.get(), nullptr, &n, data, kMessage.size()) != 1)
      token::rethrow_engine_error("DigestSign size");
    Bytes sig(n);
    if (EVP_DigestSign(m.get(), sig.data(), &n, data, kMessage.size()) != 1)
      token::rethrow_engine_error("DigestSign");
    sig.resize(n);
    return sig;
  }

  // Verifies with plain OpenSSL (global context) and the certificate's key.
  bool verify(X509* cert, const Bytes& sig, const char* md,
              void (*tweak)(EVP_PKEY_CTX*) = nullptr) {
    MdCtxPtr m(EVP_MD_CTX_new());
    EVP_PKEY_CTX* pctx = nullptr;
    EXPECT_EQ(EVP_DigestVerifyInit_ex(m.get(), &pctx, md, nullptr, nullptr, X509_get0_pubkey(cert),
                                      nullptr),
              1);
    if (tweak) tweak(pctx);
    return EVP_DigestVerify(m.get(), sig.data(), sig.size(),
                            reinterpret_cast<const unsigned char*>(kMessage.data()),
                            kMessage.size()) == 1;
  }

  // Encrypts with plain OpenSSL to the certificate, decrypts on the token.
  Bytes encrypt_to(X509* cert, const Bytes& plain, void (*pad)(EVP_PKEY_CTX*)) {
    CtxPtr c(EVP_PKEY_CTX_new_from_pkey(nullptr, X509_get0_pubkey(cert), nullptr));
    EXPECT_EQ(EVP_PKEY_encrypt_init(c.get()), 1);
    pad(c.get());
    std::size_t n = 0;
    EXPECT_EQ(EVP_PKEY_encrypt(c.get(), nullptr, &n, plain.data(), plain.size()), 1);
    Bytes out(n);
    EXPECT_EQ(EVP_PKEY_encrypt(c.get(), out.data(), &n, plain.data(), plain.size()), 1);
    out.resize(n);
    return out;
  }
  Bytes decrypt(const token::TokenKey& key, const Bytes& ct, void (*pad)(EVP_PKEY_CTX*)) {
    CtxPtr c(EVP_PKEY_CTX_new_from_pkey(key.libctx(), key.pkey(), nullptr));
    if (EVP_PKEY_decrypt_init(c.get()) != 1) token::rethrow_engine_error("decrypt init");
    pad(c.get());
    std::size_t n = 0;
    if (EVP_PKEY_decrypt(c.get(), nullptr, &n, ct.data(), ct.size()) != 1)
      token::rethrow_engine_error("decrypt size");
    Bytes out(n);
    if (EVP_PKEY_decrypt(c.get(), out.data(), &n, ct.data(), ct.size()) != 1)
      token::rethrow_engine_error("decrypt");
    out.resize(n);
    return out;
  }

  std::unique_ptr<token::Module> module_;
  std::unique_ptr<token::Session> session_;
};
TOKENKIT_TOKEN_SUITE(EngineTest);

void pss(EVP_PKEY_CTX* c) {
  EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_rsa_pss_saltlen(c, RSA_PSS_SALTLEN_DIGEST);
}
void pss_salt32(EVP_PKEY_CTX* c) {
  EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING);
  EVP_PKEY_CTX_set_rsa_pss_saltlen(c, 32);
}
void v15(EVP_PKEY_CTX* c) { EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PADDING); }
void oaep_sha1(EVP_PKEY_CTX* c) { EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING); }
void oaep_sha256(EVP_PKEY_CTX* c) {
  EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_OAEP_PADDING);
  EVP_PKEY_CTX_set_rsa_oaep_md(c, EVP_sha256());
  EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256());
}

TEST_P(EngineTest, RsaKeyComesWithItsCertificateAndMatchesIt) {
  token_->write_rsa();
  auto key = open("01");
  ASSERT_NE(key.certificate(), nullptr);
  EXPECT_EQ(key.label(), "alice");
  EXPECT_EQ(EVP_PKEY_get_bits(key.pkey()), 2048);
  EXPECT_TRUE(EVP_PKEY_is_a(key.pkey(), "RSA"));
  EXPECT_EQ(X509_check_private_key(key.certificate(), key.pkey()), 1);
}

TEST_P(EngineTest, RsaPkcs1SignatureVerifiesWithTheCertificate) {
  token_->write_rsa();
  auto key = open("01");
  for (const char* md : {"SHA256", "SHA384", "SHA1"}) {
    Bytes sig = sign(key, md);
    EXPECT_EQ(sig.size(), 256u);
    EXPECT_TRUE(verify(key.certificate(), sig, md)) << md;
  }
}

TEST_P(EngineTest, RsaPssWithSaltOfHashLengthVerifies) {
  token_->write_rsa();
  auto key = open("01");
  Bytes sig = sign(key, "SHA256", pss);
  EXPECT_TRUE(verify(key.certificate(), sig, "SHA256", pss_salt32));
  EXPECT_FALSE(verify(key.certificate(), sig, "SHA256")) << "must not be PKCS#1 v1.5";
}

TEST_P(EngineTest, RsaDecryptsPkcs1AndOaepSha1FromPlainOpenssl) {
  token_->write_rsa();
  auto key = open("01");
  const Bytes secret{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
  EXPECT_EQ(decrypt(key, encrypt_to(key.certificate(), secret, v15), v15), secret);
  EXPECT_EQ(decrypt(key, encrypt_to(key.certificate(), secret, oaep_sha1), oaep_sha1), secret);
}

TEST_P(EngineTest, OaepSha256RefusedByTheTokenIsAClearErrorNotAWrongResult) {
  token_->write_rsa();
  auto key = open("01");
  const Bytes secret{42, 42, 42};
  Bytes ct = encrypt_to(key.certificate(), secret, oaep_sha256);
  try {
    Bytes got = decrypt(key, ct, oaep_sha256);
    // A token that does OAEP-SHA256 must get it right.
    EXPECT_EQ(got, secret);
  } catch (const token::Error& e) {
    const std::string what = e.what();
    EXPECT_NE(e.kind(), token::ErrorKind::Internal) << what;
    EXPECT_NE(what.find("CKM_RSA_PKCS_OAEP, SHA256"), std::string::npos) << what;
    EXPECT_NE(what.find("key \"alice\""), std::string::npos) << what;
    EXPECT_NE(what.find("CKR_"), std::string::npos) << what;
  }
}

TEST_P(EngineTest, EcdsaSignatureVerifiesWithTheCertificate) {
  token_->write_ec();
  auto key = open("02");
  EXPECT_TRUE(EVP_PKEY_is_a(key.pkey(), "EC"));
  EXPECT_EQ(X509_check_private_key(key.certificate(), key.pkey()), 1);
  for (const char* md : {"SHA256", "SHA384"}) {
    EXPECT_TRUE(verify(key.certificate(), sign(key, md), md)) << md;
  }
}

TEST_P(EngineTest, EcdhOnTheTokenMatchesPlainOpenssl) {
  // write_ec() leaves CKA_DERIVE false (as softhsm2-util does); this key may derive.
  const auto& k = test_keys();
  token_->pkcs11_tool({"--write-object", k.ec_key_der, "--type", "privkey", "--id", "03", "--label",
                       "carol", "--usage-derive", "--login", "--pin", kUserPin});
  token_->pkcs11_tool({"--write-object", k.ec_cert_der, "--type", "cert", "--id", "03", "--label",
                       "carol", "--login", "--pin", kUserPin});
  auto key = open("03");
  PkeyPtr peer(EVP_EC_gen("P-256"));
  ASSERT_TRUE(peer);

  CtxPtr c(EVP_PKEY_CTX_new_from_pkey(key.libctx(), key.pkey(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(c.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(c.get(), peer.get()), 1);
  std::size_t n = 0;
  ASSERT_EQ(EVP_PKEY_derive(c.get(), nullptr, &n), 1);
  Bytes on_token(n);
  if (EVP_PKEY_derive(c.get(), on_token.data(), &n) != 1) token::rethrow_engine_error("derive");
  on_token.resize(n);

  CtxPtr p(EVP_PKEY_CTX_new_from_pkey(nullptr, peer.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(p.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(p.get(), X509_get0_pubkey(key.certificate())), 1);
  ASSERT_EQ(EVP_PKEY_derive(p.get(), nullptr, &n), 1);
  Bytes plain(n);
  ASSERT_EQ(EVP_PKEY_derive(p.get(), plain.data(), &n), 1);
  EXPECT_EQ(on_token.size(), 32u);
  EXPECT_EQ(on_token, plain);
}

TEST_P(EngineTest, EcdhWithAKeyThatMayNotDeriveNamesTheKey) {
  token_->write_ec();
  auto key = open("02");
  PkeyPtr peer(EVP_EC_gen("P-256"));
  CtxPtr c(EVP_PKEY_CTX_new_from_pkey(key.libctx(), key.pkey(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(c.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(c.get(), peer.get()), 1);
  Bytes out(32);
  std::size_t n = out.size();
  ASSERT_NE(EVP_PKEY_derive(c.get(), out.data(), &n), 1);
  try {
    token::rethrow_engine_error("derive");
  } catch (const token::Error& e) {
    EXPECT_NE(std::string(e.what()).find("C_DeriveKey on key \"bob\""), std::string::npos)
        << e.what();
  }
}

// CKA_ALWAYS_AUTHENTICATE: a CKU_CONTEXT_SPECIFIC login after every
// C_SignInit, with the PIN from the hook, once per operation.
TEST_P(EngineTest, AlwaysAuthenticateKeyAsksForThePinOncePerSignature) {
  const auto& k = test_keys();
  try {
    token_->pkcs11_tool({"--write-object", k.rsa_key_der, "--type", "privkey", "--id", "04",
                         "--label", "dave", "--usage-sign", "--always-auth", "--login", "--pin",
                         kUserPin});
  } catch (const std::exception& e) {
    // The tokenkit module refuses such keys until it has context-specific
    // login (docs/pkcs11-module.md): said as a skip, not passed silently.
    GTEST_SKIP() << "this token refuses CKA_ALWAYS_AUTHENTICATE keys: " << e.what();
  }
  token_->pkcs11_tool({"--write-object", k.rsa_cert_der, "--type", "cert", "--id", "04", "--label",
                       "dave", "--login", "--pin", kUserPin});
  module_ = std::make_unique<token::Module>(module());
  session_ = std::make_unique<token::Session>(*module_, slot(*module_).id);
  login(*session_);
  const CK_ATTRIBUTE_TYPE always[] = {CKA_ALWAYS_AUTHENTICATE};
  token::AttributeTemplate t;
  t.add(CKA_ID, Bytes{0x04}).add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY));
  auto found = session_->find(t);
  ASSERT_EQ(found.size(), 1u);
  if (session_->read(found[0], always).bool_value(CKA_ALWAYS_AUTHENTICATE) != true) {
    GTEST_SKIP() << "this token did not keep CKA_ALWAYS_AUTHENTICATE";
  }
  auto uri = token::Uri::parse("pkcs11:id=%04");
  {
    auto bare = token::open_private_key(*session_, uri);
    try {
      sign(bare, "SHA256");
      FAIL() << "a per-use key without a PIN hook must not sign";
    } catch (const token::Error& e) {
      EXPECT_NE(std::string(e.what()).find("CKA_ALWAYS_AUTHENTICATE"), std::string::npos)
          << e.what();
    }
  }
  // The first per-use PIN is wrong: that signature fails, and the token's
  // operation must end with it so that the next one (right PIN) works.
  int asked = 0;
  token::KeyOptions o;
  o.context_pin = [&asked] { return token::Secret(++asked == 1 ? "000000" : kUserPin); };
  auto key = token::open_private_key(*session_, uri, o);
  try {
    sign(key, "SHA256");
    ADD_FAILURE() << "a wrong per-use PIN must not sign";
  } catch (const token::Error& e) {
    EXPECT_EQ(e.rv(), CKR_PIN_INCORRECT) << e.what();
  }
  EXPECT_TRUE(verify(key.certificate(), sign(key, "SHA256"), "SHA256"));
  EXPECT_TRUE(verify(key.certificate(), sign(key, "SHA384"), "SHA384"));
  EXPECT_EQ(asked, 3);
}

// One login serves many operations, from several threads: the key's mutex
// keeps its session to one operation at a time.
TEST_P(EngineTest, OneLoginServesManySignaturesFromSeveralThreads) {
  token_->write_rsa();
  auto key = open("01");
  std::atomic<int> good{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10; ++i) {
        try {
          if (verify(key.certificate(), sign(key, "SHA256"), "SHA256")) ++good;
        } catch (const std::exception&) {
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(good, 40);
}

TEST_P(EngineTest, MissingKeyIsNotFoundAndNamesTheUri) {
  token_->write_rsa();
  try {
    open("09");
    FAIL() << "there is no key with id 09";
  } catch (const token::Error& e) {
    EXPECT_EQ(e.kind(), token::ErrorKind::NotFound);
    EXPECT_NE(std::string(e.what()).find("id=%09"), std::string::npos) << e.what();
  }
}

// libp11's engine, once loaded, breaks these for every key in the process
// (FIELD-NOTES.md). Token keys here must leave file keys alone.
TEST_P(EngineTest, FileKeysInTheSameProcessStillDoOaepAndEcdh) {
  token_->write_rsa();
  auto key = open("01");
  EXPECT_TRUE(verify(key.certificate(), sign(key, "SHA256"), "SHA256"));
  EXPECT_EQ(OSSL_PROVIDER_available(nullptr, "tokenkit"), 0) << "only in the private context";

  PkeyPtr rsa = read_der_key(test_keys().rsa_key_der);
  ASSERT_TRUE(rsa);
  const Bytes secret{9, 8, 7, 6, 5};
  for (auto* pad : {oaep_sha1, oaep_sha256}) {
    CtxPtr e(EVP_PKEY_CTX_new_from_pkey(nullptr, rsa.get(), nullptr));
    ASSERT_EQ(EVP_PKEY_encrypt_init(e.get()), 1);
    pad(e.get());
    std::size_t n = 0;
    ASSERT_EQ(EVP_PKEY_encrypt(e.get(), nullptr, &n, secret.data(), secret.size()), 1);
    Bytes ct(n);
    ASSERT_EQ(EVP_PKEY_encrypt(e.get(), ct.data(), &n, secret.data(), secret.size()), 1);
    CtxPtr d(EVP_PKEY_CTX_new_from_pkey(nullptr, rsa.get(), nullptr));
    ASSERT_EQ(EVP_PKEY_decrypt_init(d.get()), 1);
    pad(d.get());
    Bytes pt(256);
    std::size_t m = pt.size();
    ASSERT_EQ(EVP_PKEY_decrypt(d.get(), pt.data(), &m, ct.data(), n), 1);
    pt.resize(m);
    EXPECT_EQ(pt, secret);
  }

  PkeyPtr ec = read_der_key(test_keys().ec_key_der);
  PkeyPtr peer(EVP_EC_gen("P-256"));
  CtxPtr x(EVP_PKEY_CTX_new_from_pkey(nullptr, ec.get(), nullptr));
  ASSERT_EQ(EVP_PKEY_derive_init(x.get()), 1);
  ASSERT_EQ(EVP_PKEY_derive_set_peer(x.get(), peer.get()), 1);
  Bytes z(32);
  std::size_t zn = z.size();
  EXPECT_EQ(EVP_PKEY_derive(x.get(), z.data(), &zn), 1);
}

// decrypt() reads a message once. With a private output (discardable_output,
// what the tool's Output is) the content goes there as it is decrypted; with
// any other output, AES-GCM content waits in a scratch file until its tag
// verified (RFC 5083): a changed message releases nothing there.
TEST_P(EngineTest, DecryptReleasesGcmContentToASharedOutputOnlyAfterTheTag) {
  token_->write_rsa();
  auto key = open("01");
  std::string message = "Content-Type: text/plain\r\n\r\n";
  for (int i = 0; message.size() < 300000; ++i) message += "line " + std::to_string(i) + "\r\n";
  const auto encrypt = [&](bool cbc) {
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(message.data(), static_cast<int>(message.size())), BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    token::smime::EncryptOptions eo;
    eo.cbc = cbc;
    token::smime::encrypt({key.certificate()}, in.get(), out.get(), eo);
    char* p = nullptr;
    const long n = BIO_get_mem_data(out.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
  };
  // What decrypt() writes to a memory BIO, and whether it threw Error(Input).
  const auto decrypt = [&](const std::string& msg, bool discardable, bool& failed) {
    std::unique_ptr<BIO, decltype(&BIO_free)> in(
        BIO_new_mem_buf(msg.data(), static_cast<int>(msg.size())), BIO_free);
    std::unique_ptr<BIO, decltype(&BIO_free)> out(BIO_new(BIO_s_mem()), BIO_free);
    token::smime::DecryptOptions o;
    o.discardable_output = discardable;
    failed = false;
    try {
      token::smime::decrypt(key, in.get(), out.get(), o);
    } catch (const token::Error& e) {
      EXPECT_EQ(e.kind(), token::ErrorKind::Input) << e.what();
      EXPECT_NE(std::string(e.what()).find("authentication tag does not verify"), std::string::npos)
          << e.what();
      failed = true;
    }
    char* p = nullptr;
    const long n = BIO_get_mem_data(out.get(), &p);
    return std::string(p, static_cast<std::size_t>(n));
  };
  for (bool cbc : {false, true}) {
    const std::string enc = encrypt(cbc);
    for (bool discardable : {false, true}) {
      bool failed = true;
      EXPECT_EQ(decrypt(enc, discardable, failed), message) << cbc << discardable;
      EXPECT_FALSE(failed);
    }
  }
  // A base64 character in the middle of the ciphertext changed.
  std::string bad = encrypt(false);
  std::size_t at = bad.size() / 2;
  while (bad[at] == '\r' || bad[at] == '\n') ++at;
  bad[at] = bad[at] == 'A' ? 'B' : 'A';
  bool failed = false;
  EXPECT_EQ(decrypt(bad, false, failed), "") << "nothing before the tag verified";
  EXPECT_TRUE(failed);
  // The private output got the content as it came (one pass), and the
  // caller discards it.
  EXPECT_GT(decrypt(bad, true, failed).size(), message.size() / 4);
  EXPECT_TRUE(failed);
}

}  // namespace
