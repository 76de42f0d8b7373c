// Interop with gpgsm (GnuPG's S/MIME), both ways, in a throw-away GNUPGHOME:
// the test keys and certificates made by openssl are on a fresh token for
// tokenkit and imported into gpgsm (as a PKCS#12 with the 3DES protection
// gpgsm 2.2 reads). gpgsm reads and writes raw CMS, so a few lines of Python
// (standard library) wrap and unwrap the MIME as a mail client around gpgsm
// would.
#include <gtest/gtest.h>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage =
    "From: Alice <alice@example.org>\nContent-Type: text/plain; charset=us-ascii\n\n"
    "Signed on a token, read by gpgsm.\n";

// split.py MULTIPART CONTENT SIG: the signed part's exact bytes (RFC 1847)
// and the decoded signature of a multipart/signed message.
// body.py MESSAGE DER: the decoded base64 body of a one-part message.
// wrap-signed.py CONTENT SIG OUT: a multipart/signed message around them.
// wrap-enveloped.py DER OUT: application/pkcs7-mime around raw CMS.
const char* kScripts[][2] = {
    {"split.py", R"PY(
import base64, re, sys
m = open(sys.argv[1], 'rb').read()
b = re.search(rb'boundary="?([^";\r\n]+)"?', m).group(1)
d = b'--' + b
first = m.index(d + b'\r\n') + len(d) + 2
second = m.index(b'\r\n' + d, first)
open(sys.argv[2], 'wb').write(m[first:second])
part = m[second + 2 + len(d) + 2:]
body = part[part.index(b'\r\n\r\n') + 4:part.index(d)]
open(sys.argv[3], 'wb').write(base64.b64decode(b''.join(body.split())))
)PY"},
    {"body.py", R"PY(
import base64, sys
m = open(sys.argv[1], 'rb').read()
body = m[m.index(b'\r\n\r\n') + 4:]
open(sys.argv[2], 'wb').write(base64.b64decode(b''.join(body.split())))
)PY"},
    {"wrap-signed.py", R"PY(
import base64, sys
content = open(sys.argv[1], 'rb').read()
sig = base64.encodebytes(open(sys.argv[2], 'rb').read()).replace(b'\n', b'\r\n')
b = b'gpgsm-test-boundary'
out = (b'From: Alice <alice@example.org>\r\nMIME-Version: 1.0\r\n'
       b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
       b'micalg=sha-256; boundary="' + b + b'"\r\n\r\n--' + b + b'\r\n' + content +
       b'\r\n--' + b + b'\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n'
       b'Content-Transfer-Encoding: base64\r\n\r\n' + sig + b'\r\n--' + b + b'--\r\n')
open(sys.argv[3], 'wb').write(out)
)PY"},
    {"wrap-enveloped.py", R"PY(
import base64, sys
der = open(sys.argv[1], 'rb').read()
out = (b'MIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; smime-type=enveloped-data; '
       b'name=smime.p7m\r\nContent-Transfer-Encoding: base64\r\n\r\n' +
       base64.encodebytes(der).replace(b'\n', b'\r\n'))
open(sys.argv[2], 'wb').write(out)
)PY"},
};

class Gpgsm : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    token_->write_rsa();
    dir_ = token_->dir();
    write_file(path("pin"), std::string(kUserPin) + "\n");
    write_file(path("msg.eml"), kMessage);
    for (const auto& s : kScripts) write_file(path(s[0]), s[1]);
    home_ = path("gnupg");
    run_ok({"mkdir", "-m", "700", home_});
    write_file(home_ + "/gpg-agent.conf", "allow-loopback-pinentry\n");
    write_file(home_ + "/gpgsm.conf", "disable-crl-checks\ndisable-policy-checks\n");
    const auto& k = test_keys();
    run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
    // gpgsm 2.2.40 now and then fails to parse the key bag of a PKCS#12
    // that openssl made ("data error at shrouded_key_bag.decrypted-text");
    // a new export (new salt and IV) imports: up to three tries.
    ProcessResult imported;
    for (int attempt = 0; attempt < 3; ++attempt) {
      run_ok({"openssl", "pkcs12", "-export", "-inkey", path("rsa.key"), "-in", k.rsa_cert_pem,
              "-passout", "pass:gpgsm", "-keypbe", "PBE-SHA1-3DES", "-certpbe", "PBE-SHA1-3DES",
              "-macalg", "sha1", "-out", path("rsa.p12")});
      imported = gpgsm_run({"--import", path("rsa.p12")});
      if (imported.exit_code == 0) break;
    }
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    const std::string colons = gpgsm({"--with-colons", "--list-secret-keys"});
    const auto at = colons.find("\nfpr:");
    ASSERT_NE(at, std::string::npos) << colons;
    fpr_ = colons.substr(at + 1).substr(0, colons.substr(at + 1).find('\n'));
    fpr_ = fpr_.substr(0, fpr_.size() - 1);
    fpr_ = fpr_.substr(fpr_.rfind(':') + 1);
    // The self-signed test certificate is its own root: trusted for S/MIME.
    write_file(home_ + "/trustlist.txt", fpr_ + " S relax\n");
  }
  void TearDown() override {
    if (!home_.empty()) run({"gpgconf", "--kill", "gpg-agent"}, {{"GNUPGHOME", home_}});
  }
  std::string path(const std::string& n) const { return dir_ + "/" + n; }
  std::string key_uri() const { return "pkcs11:token=" + token_->label() + ";id=%01"; }

  ProcessResult gpgsm_run(std::vector<std::string> args) {
    std::vector<std::string> argv{"sh", "-c",
                                  "echo gpgsm | exec gpgsm --batch --pinentry-mode loopback "
                                  "--passphrase-fd 0 \"$@\"",
                                  "gpgsm"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(argv, {{"GNUPGHOME", home_}});
  }
  std::string gpgsm(std::vector<std::string> args) {
    ProcessResult r = gpgsm_run(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out + r.err;
  }
  ProcessResult tool(std::vector<std::string> args) {
    return token_->run_tool(kTool, std::move(args));
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_, home_, fpr_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Gpgsm, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(Gpgsm, VerifiesWhatTokenkitSigns) {
  for (const std::vector<std::string>& extra :
       {std::vector<std::string>{}, std::vector<std::string>{"--pss"}}) {
    std::vector<std::string> a{"smime",     "sign", "--key",         key_uri(), "--pin-file",
                               path("pin"), "--in", path("msg.eml"), "--out",   path("s.eml")};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tool(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    run_ok({"python3", path("split.py"), path("s.eml"), path("content"), path("sig.der")});
    EXPECT_EQ(read_file(path("content")), crlf(kMessage));
    const std::string v = gpgsm({"--verify", path("sig.der"), path("content")});
    EXPECT_NE(v.find("Good signature"), std::string::npos) << (extra.empty() ? "v1.5" : "PSS") << v;
    // A changed byte in the content: gpgsm says so.
    std::string bad = read_file(path("content"));
    bad[bad.size() - 4] ^= 1;
    write_file(path("content.bad"), bad);
    auto rb = gpgsm_run({"--verify", path("sig.der"), path("content.bad")});
    EXPECT_EQ((rb.out + rb.err).find("Good signature"), std::string::npos) << rb.err;
  }
}

TEST_P(Gpgsm, TokenkitDecryptsWhatGpgsmEncryptsToTheTokenCertificate) {
  gpgsm({"-r", fpr_, "-o", path("enc.der"), "--encrypt", path("msg.eml")});
  run_ok({"python3", path("wrap-enveloped.py"), path("enc.der"), path("enc.eml")});
  auto r = tool({"smime", "decrypt", "--key", key_uri(), "--pin-file", path("pin"), "--in",
                 path("enc.eml"), "--out", path("dec.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(path("dec.eml")), kMessage);
}

TEST_P(Gpgsm, TokenkitVerifiesWhatGpgsmSigns) {
  write_file(path("content"), crlf(kMessage));
  // gpgsm leaves out root certificates by default (--include-certs -2), and
  // the self-signed test certificate is one: the signer's certificate must
  // be in the message for a recipient who has not seen it.
  gpgsm({"--include-certs", "-1", "-u", fpr_, "-o", path("sig.der"), "--detach-sign",
         path("content")});
  run_ok({"python3", path("wrap-signed.py"), path("content"), path("sig.der"), path("s.eml")});
  auto r = tool({"smime", "verify", "--no-system-cas", "--ca-file", test_keys().rsa_cert_pem,
                 "--in", path("s.eml"), "--out", path("out.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(path("out.eml")), crlf(kMessage));
}

TEST_P(Gpgsm, DecryptsWhatTokenkitEncryptsWithCbc) {
  // gpgsm 2.2 has no AuthEnvelopedData (AES-GCM): --cbc, as for its users.
  auto r = tool({"smime", "encrypt", "--recipient", test_keys().rsa_cert_pem, "--cbc", "--in",
                 path("msg.eml"), "--out", path("enc.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  run_ok({"python3", path("body.py"), path("enc.eml"), path("enc.der")});
  gpgsm({"-o", path("dec.eml"), "--decrypt", path("enc.der")});
  EXPECT_EQ(read_file(path("dec.eml")), crlf(kMessage));
}

}  // namespace
