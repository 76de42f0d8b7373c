// tokenkit import-p12 against fresh tokens: what it writes, that it verifies,
// and that every failure leaves the token exactly as it was.
#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "p12_files.hpp"
#include "process.hpp"
#include "token/module.hpp"
#include "token/objects.hpp"
#include "token/select.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
using Json = nlohmann::json;

namespace {

class Import : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    write_file(token_->dir() + "/pin", kUserPin);
    write_file(token_->dir() + "/pw", p12_files().password + "\n");
  }

  ProcessResult import(const std::string& file, std::vector<std::string> extra = {},
                       Env env_extra = {}) {
    std::vector<std::string> argv{TOKENKIT_BINARY, "import-p12", file, "--token",
                                  "pkcs11:token=" + token_->label(), "--pin-file",
                                  token_->dir() + "/pin", "--password-file", token_->dir() + "/pw"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    Env env = token_->env();
    env["TOKENKIT_MODULE"] = token_->module();
    for (const auto& [k, v] : env_extra) env[k] = v;
    auto r = run(argv, env);
    if (r.exit_code == 5) note_unexpected_wrong_pin();
    return r;
  }

  // Every object on the token, seen through a logged-in session.
  std::vector<token::ObjectInfo> objects() {
    auto m = token::Module::load(token_->module());
    token::TokenSelector sel;
    sel.label = token_->label();
    auto slot = token::select_token(m, sel);
    token::Session s(m, slot.id);
    s.login(token::Secret(kUserPin));
    // A token's own profile object (PKCS#11 3.0) is part of every fresh
    // token, not of what an import writes.
    auto all = token::list_objects(s, slot.token, token::Uri());
    std::erase_if(all, [](const auto& o) { return o.cls == CKO_PROFILE; });
    return all;
  }

  // The category of the certificate labelled `label`.
  CK_ULONG category_of(const std::string& label) {
    auto m = token::Module::load(token_->module());
    token::TokenSelector sel;
    sel.label = token_->label();
    token::Session s(m, token::select_token(m, sel).id);
    token::AttributeTemplate t;
    t.add(CKA_CLASS, CK_ULONG(CKO_CERTIFICATE)).add(CKA_LABEL, label);
    auto found = s.find(t);
    if (found.size() != 1) return 98;
    const CK_ATTRIBUTE_TYPE want[] = {CKA_CERTIFICATE_CATEGORY, CKA_SERIAL_NUMBER};
    auto v = s.read(found[0], want);
    EXPECT_TRUE(v.bytes(CKA_SERIAL_NUMBER) && !v.bytes(CKA_SERIAL_NUMBER)->empty())
        << "NSS ignores certificates without CKA_SERIAL_NUMBER";
    return v.ulong_value(CKA_CERTIFICATE_CATEGORY).value_or(99);
  }

  // The expected CKA_ID: SHA-1 of the modulus, computed here from the PEM
  // certificate with OpenSSL (not with the code under test).
  static std::string modulus_sha1(const std::string& cert_pem) {
    FILE* f = std::fopen(cert_pem.c_str(), "r");
    X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr);
    std::fclose(f);
    BIGNUM* n = nullptr;
    EVP_PKEY_get_bn_param(X509_get0_pubkey(x), OSSL_PKEY_PARAM_RSA_N, &n);
    std::vector<unsigned char> mod(static_cast<std::size_t>(BN_num_bytes(n)));
    BN_bn2bin(n, mod.data());
    unsigned char md[20];
    unsigned int len = 0;
    EVP_Digest(mod.data(), mod.size(), md, &len, EVP_sha1(), nullptr);
    BN_free(n);
    X509_free(x);
    return token::to_hex(token::Bytes(md, md + 20));
  }

  void expect_untouched(const ProcessResult& r, int code, const std::string& says) {
    EXPECT_EQ(r.exit_code, code) << r.err << r.out;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_TRUE(objects().empty()) << "the token must be as before";
  }

  std::unique_ptr<FreshToken> token_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Import, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Import, RsaKeyCertificateAndChainArePairedSafeAndVerified) {
  auto r = import(p12_files().rsa_chain, {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = Json::parse(r.out);
  EXPECT_EQ(report["written"], 4);
  EXPECT_EQ(report["verified"], Json::array({"Alice Mail: signature", "Alice Mail: decryption"}));
  const std::string id = modulus_sha1(p12_files().rsa_cert);
  int seen = 0;
  for (const auto& o : objects()) {
    if (o.cls == CKO_CERTIFICATE && o.label == "Test Root CA") {
      EXPECT_EQ(category_of(o.label), 2u) << "CA certificates are authorities";
      ++seen;
      continue;
    }
    EXPECT_EQ(token::to_hex(o.id), id) << token::class_label(o.cls);
    EXPECT_EQ(o.label, "Alice Mail");
    if (o.cls == CKO_PRIVATE_KEY) {
      EXPECT_EQ(o.sensitive, true);
      EXPECT_EQ(o.extractable, false);
      EXPECT_EQ(o.is_private, true);
      EXPECT_EQ(o.can_sign, true);
      EXPECT_EQ(o.can_decrypt, true);
      EXPECT_EQ(o.can_unwrap, true);
    }
    if (o.cls == CKO_CERTIFICATE) {
      EXPECT_EQ(o.is_private, false) << "NSS lists public certificates without a PIN";
      EXPECT_EQ(category_of(o.label), 1u);
    }
    ++seen;
  }
  EXPECT_EQ(seen, 4);
}

TEST_P(Import, EcKeyMayDeriveAndIsVerifiedByKeyAgreement) {
  auto r = import(p12_files().ec_chain, {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto report = Json::parse(r.out);
  EXPECT_EQ(report["identities"][0]["label"], "Carol Example") << "no friendly name: the CN";
  EXPECT_EQ(report["verified"],
            Json::array({"Carol Example: signature", "Carol Example: key agreement"}));
  EXPECT_TRUE(report["untested"].empty());
  for (const auto& o : objects()) {
    if (o.cls == CKO_PRIVATE_KEY) {
      EXPECT_EQ(o.can_derive, true) << "ECDH decryption of mail needs CKA_DERIVE";
      EXPECT_EQ(o.can_decrypt, false);
    }
  }
}

TEST_P(Import, LegacyEncryptionAndUnicodePasswords) {
  auto r = import(p12_files().rsa_legacy);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  write_file(token_->dir() + "/pw", p12_files().unicode_password);
  FreshToken other(GetParam(), "second");
  auto r2 = run({TOKENKIT_BINARY, "import-p12", p12_files().rsa_unicode, "--token-label", "second",
                 "--pin-file", token_->dir() + "/pin", "--password-file", token_->dir() + "/pw"},
                [&] {
                  Env e = other.env();
                  e["TOKENKIT_MODULE"] = other.module();
                  return e;
                }());
  EXPECT_EQ(r2.exit_code, 0) << r2.err;
}

TEST_P(Import, TwoKeysAreMatchedToTheirCertificatesByPublicKey) {
  auto r = import(p12_files().two_keys, {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["identities"].size(), 2u);
  std::map<std::string, std::set<CK_OBJECT_CLASS>> by_id;
  for (const auto& o : objects()) by_id[token::to_hex(o.id)].insert(o.cls);
  ASSERT_EQ(by_id.size(), 2u);
  for (const auto& [id, classes] : by_id) {
    EXPECT_EQ(classes, (std::set<CK_OBJECT_CLASS>{CKO_PRIVATE_KEY, CKO_PUBLIC_KEY, CKO_CERTIFICATE}))
        << id;
  }
}

TEST_P(Import, RunningAgainWritesNothingTwice) {
  ASSERT_EQ(import(p12_files().rsa_chain).exit_code, 0);
  auto before = objects().size();
  auto r = import(p12_files().rsa_chain, {"--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(Json::parse(r.out)["written"], 0);
  EXPECT_EQ(objects().size(), before);
}

TEST_P(Import, DryRunWritesNothing) {
  auto r = import(p12_files().rsa_chain, {"--dry-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("RSA 2048 private key (sensitive, not extractable)"), std::string::npos) << r.out;
  EXPECT_TRUE(objects().empty());
}

TEST_P(Import, ExtractableOnlyWhenAskedFor) {
  ASSERT_EQ(import(p12_files().rsa_chain, {"--extractable", "--no-chain"}).exit_code, 0);
  int keys = 0;
  for (const auto& o : objects()) {
    EXPECT_NE(o.label, "Test Root CA") << "--no-chain";
    if (o.cls == CKO_PRIVATE_KEY) {
      ++keys;
      EXPECT_EQ(o.extractable, true);
      EXPECT_EQ(o.sensitive, true);
    }
  }
  EXPECT_EQ(keys, 1);
}

TEST_P(Import, ADifferentKeyUnderTheSameIdIsAConflict) {
  token_->write_rsa();  // test_keys()' RSA key with id 01
  const auto before = objects().size();
  auto r = import(p12_files().rsa_chain, {"--id", "01"});
  EXPECT_EQ(r.exit_code, 13) << r.err;
  EXPECT_NE(r.err.find("already holds a different private key with id 01"), std::string::npos) << r.err;
  EXPECT_EQ(objects().size(), before);
}

TEST_P(Import, BadFilesAndPasswordsLeaveTheTokenAsItWas) {
  const auto& f = p12_files();
  expect_untouched(import(f.corrupted), 10, f.corrupted);
  expect_untouched(import(f.truncated), 10, f.truncated);
  expect_untouched(import(f.not_p12), 10, "is not a PKCS#12 file");
  expect_untouched(import(f.mismatched), 12, "matches none of its certificates");
  expect_untouched(import(token_->dir() + "/missing.p12"), 9, "missing.p12");
  write_file(token_->dir() + "/pw", "wrong-password");
  auto r = import(f.rsa_chain);
  expect_untouched(r, 11, "wrong password for " + f.rsa_chain);
  EXPECT_EQ(r.err.find("wrong-password"), std::string::npos) << "no password in messages";
}

TEST_P(Import, WrongPinWritesNothing) {
  write_file(token_->dir() + "/pin", "999999");
  auto argv = std::vector<std::string>{TOKENKIT_BINARY, "import-p12", p12_files().rsa_chain,
                                       "--token-label", token_->label(), "--pin-file",
                                       token_->dir() + "/pin", "--password-file",
                                       token_->dir() + "/pw"};
  Env env = token_->env();
  env["TOKENKIT_MODULE"] = token_->module();
  auto r = run(argv, env);
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_EQ(r.err.find("999999"), std::string::npos);
  EXPECT_TRUE(objects().empty());
}

TEST_P(Import, FailureMidwayIsRolledBack) {
  Env faulty{{"TOKENKIT_MODULE", FAULTY_MODULE}, {"TOKENKIT_FAULTY_TARGET", token_->module()}};
  for (const char* n : {"1", "2", "3", "4"}) {
    faulty["TOKENKIT_FAULTY_CREATE_FAIL"] = n;
    auto r = import(p12_files().rsa_chain, {}, faulty);
    EXPECT_EQ(r.exit_code, 7) << n << ": " << r.err;
    EXPECT_NE(r.err.find("CKR_DEVICE_MEMORY"), std::string::npos) << r.err;
    EXPECT_TRUE(objects().empty()) << "object " << n << " failed; nothing may stay";
  }
}

TEST_P(Import, AFailedVerificationIsRolledBack) {
  Env faulty{{"TOKENKIT_MODULE", FAULTY_MODULE},
             {"TOKENKIT_FAULTY_TARGET", token_->module()},
             {"TOKENKIT_FAULTY_CORRUPT_SIGN", "1"}};
  auto r = import(p12_files().rsa_chain, {}, faulty);
  EXPECT_EQ(r.exit_code, 12) << r.err;
  EXPECT_NE(r.err.find("test signature"), std::string::npos) << r.err;
  EXPECT_TRUE(objects().empty());
}

TEST_P(Import, RemoveSourceOnlyAfterSuccess) {
  const std::string copy = token_->dir() + "/copy.p12";
  std::filesystem::copy_file(p12_files().rsa_chain, copy);
  write_file(token_->dir() + "/pw", "wrong");
  EXPECT_EQ(import(copy, {"--remove-source"}).exit_code, 11);
  EXPECT_TRUE(std::filesystem::exists(copy)) << "never removed before a verified import";
  write_file(token_->dir() + "/pw", p12_files().password);
  auto r = import(copy, {"--remove-source"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(std::filesystem::exists(copy));
  EXPECT_NE(r.err.find("copy-on-write"), std::string::npos) << "an honest warning";
}

TEST_P(Import, PasswordFromEnvironmentAndNoSecretsInOutput) {
  std::vector<std::string> argv{TOKENKIT_BINARY, "import-p12", p12_files().rsa_chain, "--token-label",
                                token_->label(), "--login"};
  Env env = token_->env();
  env["TOKENKIT_MODULE"] = token_->module();
  env["TOKENKIT_PIN"] = kUserPin;
  env["TOKENKIT_P12_PASSWORD"] = p12_files().password;
  env["TOKENKIT_DEBUG"] = "1";
  auto r = run(argv, env);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const std::string& secret : {std::string(kUserPin), p12_files().password}) {
    EXPECT_EQ(r.out.find(secret), std::string::npos);
    EXPECT_EQ(r.err.find(secret), std::string::npos);
  }
  EXPECT_NE(r.err.find("C_Login -> CKR_OK"), std::string::npos) << "debug log is on";
}

}  // namespace
