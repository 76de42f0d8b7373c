// tokenkit smime, run as a user runs it, against a fresh SoftHSM2 token and
// checked by real peers: openssl cms and Python's email package.
#include <gtest/gtest.h>

#include <filesystem>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage =
    "Content-Type: text/plain; charset=us-ascii\n\nHello Bob,\nthe keys stay on the token.\n";

class Smime : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    token_->write_rsa();
    token_->write_ec();
    dir_ = token_->dir();
    write_file(path("pin"), std::string(kUserPin) + "\n");
    write_file(path("msg.eml"), kMessage);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string key_uri(const std::string& id) const {
    return "pkcs11:token=" + token_->label() + ";id=%" + id;
  }
  ProcessResult tool(std::vector<std::string> args, const std::string& input = {}) {
    return token_->run_tool(kTool, std::move(args), input);
  }
  // Signs msg.eml into `out` with the key of `id`; extra options appended.
  void sign(const std::string& id, const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"smime",     "sign", "--key",         key_uri(id), "--pin-file",
                               path("pin"), "--in", path("msg.eml"), "--out",     path(out)};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tool(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  ProcessResult openssl_verify(const std::string& file, const std::string& ca) {
    return run({"openssl", "cms", "-verify", "-in", path(file), "-CAfile", ca, "-out",
                path(file + ".content")});
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Smime, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

// The signed part as openssl hands it back: our message with CRLF line ends.

TEST_P(Smime, WhatWeSignOpensslVerifies) {
  const auto& k = test_keys();
  struct Case {
    std::string id, ca, name;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"01", k.rsa_cert_pem, "rsa.eml", {}},
      {"01", k.rsa_cert_pem, "pss.eml", {"--pss"}},
      {"01", k.rsa_cert_pem, "rsa384.eml", {"--digest", "SHA384"}},
      {"02", k.ec_cert_pem, "ecdsa.eml", {}},
      {"01", k.rsa_cert_pem, "opaque.eml", {"--opaque"}},
  };
  for (const auto& c : cases) {
    sign(c.id, c.name, c.extra);
    auto r = openssl_verify(c.name, c.ca);
    EXPECT_EQ(r.exit_code, 0) << c.name << ": " << r.err;
    EXPECT_EQ(read_file(path(c.name + ".content")), crlf(kMessage)) << c.name;
  }
  const std::string pss = run_ok({"openssl", "cms", "-cmsout", "-print", "-in", path("pss.eml")});
  EXPECT_NE(pss.find("rsassaPss"), std::string::npos);
  EXPECT_NE(pss.find("INTEGER           :20"), std::string::npos) << "salt = 32 = SHA-256 length";
}

TEST_P(Smime, SignedAttributesAreTheOnesRfc8551Asks) {
  sign("01", "s.eml");
  const std::string dump = run_ok({"openssl", "cms", "-cmsout", "-print", "-in", path("s.eml")});
  for (const char* attr : {"contentType", "messageDigest", "signingTime", "S/MIME Capabilities",
                           "id-smime-aa-encrypKeyPref", "id-smime-aa-signingCertificateV2"}) {
    EXPECT_NE(dump.find(attr), std::string::npos) << attr;
  }
  // Capabilities: AES-256-GCM, AES-256-CBC, AES-128-CBC, and nothing weaker.
  const std::string asn1 =
      run_ok({"sh", "-c",
              "openssl smime -pk7out -in '" + path("s.eml") +
                  "' | openssl asn1parse | sed -n '/S\\/MIME Capabilities/,/encrypKeyPref/p'"});
  EXPECT_NE(asn1.find("aes-256-gcm"), std::string::npos) << asn1;
  EXPECT_NE(asn1.find("aes-256-cbc"), std::string::npos) << asn1;
  EXPECT_NE(asn1.find("aes-128-cbc"), std::string::npos) << asn1;
  for (const char* weak : {"des", "rc2"}) EXPECT_EQ(asn1.find(weak), std::string::npos) << asn1;
}

TEST_P(Smime, OutputIsMimeWithCrlfThroughout) {
  sign("01", "s.eml");
  const std::string out = read_file(path("s.eml"));
  for (std::size_t i = out.find('\n'); i != std::string::npos; i = out.find('\n', i + 1)) {
    ASSERT_TRUE(i > 0 && out[i - 1] == '\r') << "bare LF at byte " << i;
  }
  const std::string py =
      "import email,sys\n"
      "m = email.message_from_bytes(open(sys.argv[1],'rb').read())\n"
      "assert m.get_content_type() == 'multipart/signed', m.get_content_type()\n"
      "assert m.get_param('protocol') == 'application/pkcs7-signature'\n"
      "assert m.get_param('micalg') == 'sha-256', m.get_param('micalg')\n"
      "p = m.get_payload()\n"
      "assert len(p) == 2 and p[0].get_content_type() == 'text/plain'\n"
      "assert p[1].get_content_type() == 'application/pkcs7-signature'\n"
      "assert b'the keys stay on the token' in p[0].get_payload(decode=True)\n"
      "print('ok')\n";
  write_file(path("check.py"), py);
  auto r = run({"python3", path("check.py"), path("s.eml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

// RFC 8551 section 3.1.2: a signed entity must be 7-bit. An 8-bit text
// body is signed as quoted-printable, other 8-bit bodies as base64; the
// whole output is then 7-bit, openssl verifies it, and Python's email
// package decodes the body back to the original bytes.
TEST_P(Smime, EightBitBodiesAreSignedSevenBitSafe) {
  const std::string text =
      "Gr\xc3\xbc\xc3\x9f"
      "e, caf\xc3\xa9 =\nFrom here on\n" +
      std::string(100, 'x') + "\xc3\xa4 \n";
  write_file(path("utf8.eml"),
             "Content-Type: text/plain; charset=utf-8\n"
             "Content-Transfer-Encoding: 8bit\n\n" +
                 text);
  write_file(path("bin.eml"), "Content-Type: application/octet-stream\n\n\x01\xff\xfe\x80zz\n");
  // The first 8-bit byte past the first blocks signed: the one-pass signing
  // of a file has written them already, cuts its output back and starts over.
  std::string late;
  for (int i = 0; i < 6000; ++i) late += std::string(64, static_cast<char>('a' + i % 26)) + "\n";
  late += "caf\xc3\xa9\n";
  write_file(path("late.eml"), "Content-Type: text/plain; charset=utf-8\n\n" + late);
  const std::string decode =
      "import email,sys\n"
      "m = email.message_from_bytes(open(sys.argv[1],'rb').read())\n"
      "assert m.get_content_type() == 'multipart/signed', m.get_content_type()\n"
      "part = m.get_payload(0)\n"
      "print(part['Content-Transfer-Encoding'])\n"
      "open(sys.argv[2],'wb').write(part.get_payload(decode=True))\n";
  write_file(path("decode.py"), decode);
  struct Case {
    std::string in, encoding, body;
  };
  for (const Case& c : {Case{"utf8.eml", "quoted-printable", text},
                        Case{"bin.eml", "base64", std::string("\x01\xff\xfe\x80zz\n")},
                        Case{"late.eml", "quoted-printable", late}}) {
    auto r = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
                   path(c.in), "--out", path(c.in + ".signed")});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_NE(r.err.find("signed as " + c.encoding), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
    const std::string out = read_file(path(c.in + ".signed"));
    for (std::size_t i = 0; i < out.size(); ++i) {
      ASSERT_EQ(static_cast<unsigned char>(out[i]) & 0x80, 0) << c.in << ": 8-bit byte at " << i;
    }
    for (std::size_t at = out.find('\n'); at != std::string::npos; at = out.find('\n', at + 1)) {
      ASSERT_TRUE(at > 0 && out[at - 1] == '\r');
    }
    EXPECT_EQ(openssl_verify(c.in + ".signed", test_keys().rsa_cert_pem).exit_code, 0) << c.in;
    const std::string cte =
        run_ok({"python3", path("decode.py"), path(c.in + ".signed"), path(c.in + ".body")});
    EXPECT_EQ(cte, c.encoding + "\n");
    std::string body = read_file(path(c.in + ".body"));
    std::string want = c.body;
    if (c.encoding == "quoted-printable") {  // line ends come back as CRLF
      std::string crlf;
      for (char ch : want) crlf += ch == '\n' ? std::string("\r\n") : std::string(1, ch);
      want = crlf;
    }
    EXPECT_EQ(body, want) << c.in;
  }
  // 7-bit input is signed as it is, silently.
  auto ascii = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
                     path("msg.eml"), "--out", path("ascii.signed")});
  EXPECT_TRUE(ascii.err.empty()) << ascii.err;
}

// RFC 8551 section 3.1.2 inside multipart entities: each 8-bit leaf is
// re-encoded (text as quoted-printable, the rest as base64), recursively
// through multipart and message/rfc822 parts, the MIME structure kept.
// Python's email package reads the same parts with the same decoded bytes
// from the original and from the signed message; openssl and tokenkit
// verify it.
TEST_P(Smime, EightBitPartsOfMultipartEntitiesAreReencoded) {
  const std::string msg =
      "MIME-Version: 1.0\n"
      "Content-Type: multipart/mixed; boundary=\"outer\"\n"
      "Content-Transfer-Encoding: 8bit\n\n"
      "This is a preamble.\n"
      "--outer\n"
      "Content-Type: text/plain; charset=utf-8\n"
      "Content-Transfer-Encoding: 8bit\n\n"
      "Gr\xc3\xbc\xc3\x9f"
      "e, caf\xc3\xa9 \nFrom here on\n" +
      std::string(90, 'x') + "\xc3\xa4 \n" +
      "--outer\n"
      "Content-Type: multipart/alternative; boundary=inner\n\n"
      "--inner\n"
      "Content-Type: text/plain; charset=utf-8\n\n"
      "\xc3\xbcn\xc3\xaf"
      "code\n"
      "--inner\n"
      "Content-Type: text/html; charset=utf-8\n\n"
      "<p>\xc3\xa9</p>\n"
      "--inner--\n"
      "--outer\n"
      "Content-Type: application/octet-stream\n"
      "Content-Disposition: attachment; filename=\"b.bin\"\n\n"
      "\x01\xff\xfe\x80zz\n"
      "--outer\n"
      "Content-Type: message/rfc822\n\n"
      "Subject: inner\n"
      "Content-Type: text/plain; charset=utf-8\n\n"
      "H\xc3\xa4llo\n"
      "--outer\n"
      "Content-Type: text/plain; charset=us-ascii\n\n"
      "plain ascii stays\n"
      "--outer--\n"
      "epilogue\n";
  write_file(path("multi.eml"), msg);
  auto r = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
                 path("multi.eml"), "--out", path("multi.signed")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("signed as quoted-printable and base64"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("warning"), std::string::npos) << r.err;
  const std::string out = read_file(path("multi.signed"));
  for (std::size_t i = 0; i < out.size(); ++i) {
    ASSERT_EQ(static_cast<unsigned char>(out[i]) & 0x80, 0) << "8-bit byte at " << i;
  }
  for (std::size_t at = out.find('\n'); at != std::string::npos; at = out.find('\n', at + 1)) {
    ASSERT_TRUE(at > 0 && out[at - 1] == '\r') << "bare LF at " << at;
  }
  const std::string py =
      "import email,sys\n"
      "def leaves(m):\n"
      "    return [(p.get_content_type(), p.get('Content-Transfer-Encoding'),\n"
      "             p.get_payload(decode=True).replace(b'\\r\\n', b'\\n'))\n"
      "            for p in m.walk() if not p.is_multipart()]\n"
      "orig = email.message_from_bytes(open(sys.argv[1],'rb').read())\n"
      "signed = email.message_from_bytes(open(sys.argv[2],'rb').read())\n"
      "assert signed.get_content_type() == 'multipart/signed'\n"
      "inner = signed.get_payload(0)\n"
      "assert inner['Content-Transfer-Encoding'] == '7bit', inner['Content-Transfer-Encoding']\n"
      "assert inner.preamble == orig.preamble, (inner.preamble, orig.preamble)\n"
      "a, b = leaves(orig), leaves(inner)\n"
      "assert [x[0] for x in a] == [x[0] for x in b], ([x[0] for x in a], [x[0] for x in b])\n"
      "for (t, _, x), (_, cte, y) in zip(a, b):\n"
      "    assert x == y, (t, x, y)\n"
      "    print(t, cte)\n";
  write_file(path("parts.py"), py);
  const std::string parts =
      run_ok({"python3", path("parts.py"), path("multi.eml"), path("multi.signed")});
  EXPECT_EQ(parts,
            "text/plain quoted-printable\n"
            "text/plain quoted-printable\n"
            "text/html quoted-printable\n"
            "application/octet-stream base64\n"
            "text/plain quoted-printable\n"
            "text/plain None\n");
  EXPECT_EQ(openssl_verify("multi.signed", test_keys().rsa_cert_pem).exit_code, 0);
  auto v = tool({"smime", "verify", "--ca-file", test_keys().rsa_cert_pem, "--in",
                 path("multi.signed"), "--out", path("multi.content")});
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(read_file(path("multi.content")), read_file(path("multi.signed.content")));
  // 8-bit bytes where no transfer encoding can go (a header field) stay,
  // and are warned about.
  write_file(path("hdr.eml"),
             "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n"
             "Content-Description: \xc3\xbc\n\nascii\n--b--\n");
  auto h = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
                 path("hdr.eml"), "--out", path("hdr.signed")});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  EXPECT_NE(h.err.find("warning: the signed part has 8-bit bytes"), std::string::npos) << h.err;
  EXPECT_EQ(openssl_verify("hdr.signed", test_keys().rsa_cert_pem).exit_code, 0);
}

TEST_P(Smime, SignsFromStdinToStdout) {
  auto r = tool({"smime", "sign", "--key", key_uri("02"), "--pin-file", path("pin")}, kMessage);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  write_file(path("piped.eml"), r.out);
  EXPECT_EQ(openssl_verify("piped.eml", test_keys().ec_cert_pem).exit_code, 0);
}

TEST_P(Smime, WhatOpensslSignsWeVerify) {
  const auto& k = test_keys();
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
  run_ok({"openssl", "cms", "-sign", "-in", path("msg.eml"), "-signer", k.rsa_cert_pem, "-inkey",
          path("rsa.key"), "-out", path("ossl.eml")});
  auto r = tool({"smime", "verify", "--ca-file", k.rsa_cert_pem, "--in", path("ossl.eml"), "--out",
                 path("content")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("good signature by"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("alice@example.org"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(path("content")), crlf(kMessage));
}

TEST_P(Smime, VerifiesOurOwnSignaturesToStdout) {
  sign("02", "s.eml");
  auto r = tool({"smime", "verify", "--ca-file", test_keys().ec_cert_pem, "--in", path("s.eml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, crlf(kMessage));
}

TEST_P(Smime, TamperedContentFailsTheSignatureCheckAndWritesNothing) {
  sign("01", "s.eml");
  std::string s = read_file(path("s.eml"));
  s.replace(s.find("Hello Bob"), 9, "Hello Eve");
  write_file(path("bad.eml"), s);
  auto r = tool({"smime", "verify", "--ca-file", test_keys().rsa_cert_pem, "--in", path("bad.eml"),
                 "--out", path("content")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("verification failed: signature: the content does not match"),
            std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("content")));
  auto piped =
      tool({"smime", "verify", "--ca-file", test_keys().rsa_cert_pem, "--in", path("bad.eml")});
  EXPECT_EQ(piped.exit_code, 1);
  EXPECT_TRUE(piped.out.empty()) << "unverified content must not reach stdout";
}

TEST_P(Smime, UntrustedSignerFailsTheChainCheck) {
  sign("01", "s.eml");
  auto r = tool({"smime", "verify", "--no-system-cas", "--in", path("s.eml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("verification failed: chain: certificate of"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("self-signed"), std::string::npos) << r.err;
}

TEST_P(Smime, CertificateWithoutEmailProtectionFailsThatCheck) {
  run_ok({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("tls.key"),
          "-out", path("tls.crt"), "-days", "2", "-subj", "/CN=www.example.org", "-addext",
          "extendedKeyUsage=serverAuth"});
  run_ok({"openssl", "cms", "-sign", "-in", path("msg.eml"), "-signer", path("tls.crt"), "-inkey",
          path("tls.key"), "-out", path("tls.eml")});
  auto r = tool({"smime", "verify", "--ca-file", path("tls.crt"), "--in", path("tls.eml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("verification failed: email protection"), std::string::npos) << r.err;
}

// Mail clients put From, To and Subject above the S/MIME headers.
TEST_P(Smime, FromMustBeAnAddressOfTheSigner) {
  sign("01", "s.eml");
  const std::string signed_mime = read_file(path("s.eml"));
  const std::string ca = test_keys().rsa_cert_pem;
  write_file(path("good.eml"),
             "From: Alice Example\r\n <Alice@Example.org>\r\nTo: bob@example.org\r\n"
             "Subject: hi\r\n" +
                 signed_mime);
  auto r = tool({"smime", "verify", "--ca-file", ca, "--in", path("good.eml")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, crlf(kMessage));
  write_file(path("forged.eml"), "From: Mallory <mallory@example.net>\r\n" + signed_mime);
  r = tool({"smime", "verify", "--ca-file", ca, "--in", path("forged.eml")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("verification failed: From address: the message is From Mallory "
                       "<mallory@example.net> but is signed by"),
            std::string::npos)
      << r.err;
  EXPECT_TRUE(r.out.empty());
}

// verify reads a message in a regular file where it lies (mapped) and one
// from a pipe through a scratch file: a message of some megabytes changed
// in the middle of its content leaves no output and no temporary file,
// next to --out or (for stdout) in $TMPDIR, either way; unchanged, both
// ways give the same content.
TEST_P(Smime, ChangedLargeSignedMessageLeavesNoOutputAndNoTemporaryFile) {
  std::string big = "Content-Type: text/plain\n\n";
  for (int i = 0; big.size() < (std::size_t{3} << 20); ++i) {
    big += "line " + std::to_string(i) + " of a message that fills megabytes\n";
  }
  write_file(path("big.eml"), big);
  auto signed_msg = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"),
                          "--in", path("big.eml"), "--out", path("big.s")});
  ASSERT_EQ(signed_msg.exit_code, 0) << signed_msg.err;
  const std::string good = read_file(path("big.s"));
  std::string bad = good;
  const std::size_t at = bad.find("line ", bad.size() / 2) + 1;
  ASSERT_EQ(bad[at], 'i');
  bad[at] = 'I';
  write_file(path("bad.s"), bad);
  const std::string out_dir = path("out");
  const std::string tmp_dir = path("tmp");
  std::filesystem::create_directories(out_dir);
  std::filesystem::create_directories(tmp_dir);
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        test_keys().rsa_cert_pem};
  const auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> a = verify;
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  const Env env{{"TMPDIR", tmp_dir}};
  auto r = tool(with({"--in", path("bad.s"), "--out", out_dir + "/never.txt"}));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("verification failed: signature: the content does not match"),
            std::string::npos)
      << r.err;
  auto to_stdout = token_->run_tool(kTool, with({"--in", path("bad.s")}), {}, env);
  EXPECT_EQ(to_stdout.exit_code, 1) << to_stdout.err;
  EXPECT_TRUE(to_stdout.out.empty()) << "unverified content must not reach stdout";
  auto piped = token_->run_tool(kTool, verify, bad, env);
  EXPECT_EQ(piped.exit_code, 1) << piped.err;
  EXPECT_NE(piped.err.find("the content does not match"), std::string::npos) << piped.err;
  EXPECT_TRUE(piped.out.empty()) << "unverified content must not reach stdout";
  EXPECT_TRUE(std::filesystem::is_empty(out_dir)) << "no output, no temporary file next to it";
  EXPECT_TRUE(std::filesystem::is_empty(tmp_dir)) << "no temporary file in $TMPDIR";

  r = tool(with({"--in", path("big.s"), "--out", out_dir + "/big.txt"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(out_dir + "/big.txt"), crlf(big));
  to_stdout = token_->run_tool(kTool, with({"--in", path("big.s")}), {}, env);
  EXPECT_EQ(to_stdout.exit_code, 0) << to_stdout.err;
  EXPECT_EQ(to_stdout.out, crlf(big));
  piped = token_->run_tool(kTool, verify, good, env);
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, crlf(big));
}

// The canonical form verify hashes (RFC 8551 section 3.1.1, as OpenSSL's
// SMIME_crlf_copy makes it) from a mapped file and from a pipe: openssl
// signs a text with lone CRs, CRs before line ends and lines longer than
// OpenSSL's 1024-byte buffer with a CR where it splits them; the message
// then has its CRLFs turned into bare LFs (as a Unix mailbox keeps it),
// which canonicalise back. Both paths verify it and give the same content.
TEST_P(Smime, BareLfMessageWithCarriageReturnsVerifiesFromAFileAndAPipe) {
  const auto& k = test_keys();
  std::string text = "Content-Type: text/plain\n\nlone\rCR\nCRs before\r\r\nthe end\n";
  for (int i = 0; i < 300; ++i) {
    std::string line(1022 + static_cast<std::size_t>(i % 5), static_cast<char>('a' + i % 26));
    const std::size_t cr = 1021 + static_cast<std::size_t>(i % 3);  // about where OpenSSL splits
    if (cr < line.size()) line[cr] = '\r';
    text += line + "\n" + std::string(static_cast<std::size_t>(i) * 37 % 3000, 'z') + "\n";
  }
  write_file(path("cr.eml"), text);
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
  run_ok({"openssl", "cms", "-sign", "-in", path("cr.eml"), "-signer", k.rsa_cert_pem, "-inkey",
          path("rsa.key"), "-out", path("cr.s")});
  std::string lf = read_file(path("cr.s"));
  for (std::size_t i = 0; (i = lf.find("\r\n", i)) != std::string::npos;) lf.erase(i, 1);
  write_file(path("lf.s"), lf);
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        k.rsa_cert_pem};
  std::vector<std::string> from_file = verify;
  from_file.insert(from_file.end(), {"--in", path("lf.s")});
  auto mapped = tool(from_file);
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  auto piped = tool(verify, lf);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(mapped.out, piped.out);
  auto ossl = run({"openssl", "cms", "-verify", "-in", path("lf.s"), "-CAfile", k.rsa_cert_pem,
                   "-out", path("lf.content")});
  ASSERT_EQ(ossl.exit_code, 0) << ossl.err;
  EXPECT_EQ(mapped.out, read_file(path("lf.content")));
}

// An opaque signed message (application/pkcs7-mime signed-data) is read in
// one pass: its content spooled, the rest kept (OpenSSL would parse the
// whole message, content and all, in memory: 128 MB for 30 MB). The content
// is given back as it was signed, byte for byte (binary: NULs, bare LFs and
// CRs), whether the CMS is DER, BER with indefinite lengths and a chunked
// OCTET STRING (openssl -stream), base64 or binary; from a file, stdout or
// a pipe. A changed or cut message writes nothing anywhere.
TEST_P(Smime, OpaqueSignedMessageIsReadInOnePassAndNothingUnverifiedIsWritten) {
  const auto& k = test_keys();
  std::string content;
  for (int i = 0; content.size() < (std::size_t{3} << 20); ++i) {
    content += "line " + std::to_string(i) + (i % 7 == 0 ? std::string("\0\r", 2) : "") + "\n";
    if (i % 11 == 0) content += '\r';
  }
  content.push_back('\0');
  write_file(path("bin.dat"), content);
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
  const std::vector<std::string> sign{"openssl",      "cms",    "-sign",         "-nodetach",
                                      "-binary",      "-in",    path("bin.dat"), "-signer",
                                      k.rsa_cert_pem, "-inkey", path("rsa.key")};
  auto with = [](std::vector<std::string> a, const std::vector<std::string>& extra) {
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  };
  run_ok(with(sign, {"-out", path("der.s")}));
  run_ok(with(sign, {"-stream", "-out", path("ber.s")}));
  run_ok(with(sign, {"-outform", "DER", "-out", path("sig.der")}));
  write_file(path("binary.s"),
             "Content-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
             "Content-Transfer-Encoding: binary\r\n\r\n" +
                 read_file(path("sig.der")));
  const std::string out_dir = path("out");
  const std::string tmp_dir = path("tmp");
  std::filesystem::create_directories(out_dir);
  std::filesystem::create_directories(tmp_dir);
  const Env env{{"TMPDIR", tmp_dir}};
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        k.rsa_cert_pem};
  for (const char* name : {"der.s", "ber.s", "binary.s"}) {
    SCOPED_TRACE(name);
    const std::string good = read_file(path(name));
    auto r = tool(with(verify, {"--in", path(name), "--out", out_dir + "/c"}));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(read_file(out_dir + "/c") == content) << "the content as it was signed";
    auto piped = token_->run_tool(kTool, verify, good, env);
    ASSERT_EQ(piped.exit_code, 0) << piped.err;
    EXPECT_TRUE(piped.out == content);
    std::filesystem::remove(out_dir + "/c");

    // One byte changed in the middle of the content: base64 letters in the
    // text forms, a content byte in the binary one.
    std::string bad = good;
    std::size_t at = bad.size() / 2;
    if (std::string(name) == "binary.s") {
      at = bad.find("line 1000");
      ASSERT_NE(at, std::string::npos);
      bad[at] = 'L';
    } else {
      while (bad[at] == '\r' || bad[at] == '\n') ++at;
      bad[at] = bad[at] == 'A' ? 'B' : 'A';
    }
    write_file(path("bad.s"), bad);
    r = tool(with(verify, {"--in", path("bad.s"), "--out", out_dir + "/never"}));
    EXPECT_EQ(r.exit_code, 1) << r.err;
    EXPECT_NE(r.err.find("the content does not match its signature"), std::string::npos) << r.err;
    auto to_stdout = token_->run_tool(kTool, with(verify, {"--in", path("bad.s")}), {}, env);
    EXPECT_EQ(to_stdout.exit_code, 1) << to_stdout.err;
    EXPECT_TRUE(to_stdout.out.empty()) << "unverified content must not reach stdout";
    piped = token_->run_tool(kTool, verify, bad, env);
    EXPECT_EQ(piped.exit_code, 1) << piped.err;
    EXPECT_TRUE(piped.out.empty()) << "unverified content must not reach stdout";

    // Cut in the middle: an input error, nothing written.
    write_file(path("cut.s"), good.substr(0, good.size() / 2));
    r = tool(with(verify, {"--in", path("cut.s"), "--out", out_dir + "/never"}));
    EXPECT_EQ(r.exit_code, 10) << r.err;
    EXPECT_NE(r.err.find("the signed message is"), std::string::npos) << r.err;
    EXPECT_TRUE(std::filesystem::is_empty(out_dir)) << "no output, no temporary file next to it";
    EXPECT_TRUE(std::filesystem::is_empty(tmp_dir)) << "no temporary file in $TMPDIR";
  }
  // tokenkit's own opaque signature of a text, and an encrypted message
  // given to verify, named as what it is.
  write_file(path("t.eml"), "Content-Type: text/plain\r\n\r\nopaque text\r\n");
  auto s = tool({"smime", "sign", "--opaque", "--key", key_uri("01"), "--pin-file", path("pin"),
                 "--in", path("t.eml"), "--out", path("t.s")});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  auto r = tool(with(verify, {"--in", path("t.s")}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Content-Type: text/plain\r\n\r\nopaque text\r\n");
  auto e = tool({"smime", "encrypt", "--recipient", k.rsa_cert_pem, "--in", path("t.eml"), "--out",
                 path("t.e")});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  r = tool(with(verify, {"--in", path("t.e")}));
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("not a signed S/MIME message (it is id-smime-ct-authEnvelopedData)"),
            std::string::npos)
      << r.err;
}

// id-ct-asciiTextWithCRLF content (openssl cms -asciicrlf): OpenSSL's
// verify also drops the spaces at the end of each line of it, so spaces
// added there still verify, from a mapped file as from a pipe.
TEST_P(Smime, AsciiCrlfContentVerifiesWithTrailingSpacesFromAFileAndAPipe) {
  const auto& k = test_keys();
  write_file(path("a.eml"), "Content-Type: text/plain\r\n\r\nspaces after this\r\nend\r\n");
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
  run_ok({"openssl", "cms", "-sign", "-asciicrlf", "-in", path("a.eml"), "-signer", k.rsa_cert_pem,
          "-inkey", path("rsa.key"), "-out", path("a.s")});
  std::string s = read_file(path("a.s"));
  const std::size_t at = s.find("this\r\n");
  ASSERT_NE(at, std::string::npos) << s;
  s.insert(at + 4, "    ");
  write_file(path("spaces.s"), s);
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        k.rsa_cert_pem};
  std::vector<std::string> from_file = verify;
  from_file.insert(from_file.end(), {"--in", path("spaces.s")});
  auto mapped = tool(from_file);
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  auto piped = tool(verify, s);
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(mapped.out, piped.out);
  EXPECT_EQ(mapped.out, "Content-Type: text/plain\r\n\r\nspaces after this\r\nend\r\n");
}

// A malformed multipart/signed is refused alike from a file (mapped) and
// from a pipe (spooled whole, then mapped; an empty body is read back by
// the streaming reader).
TEST_P(Smime, MalformedMultipartSignedIsRefusedAlikeFromAFileAndAPipe) {
  const std::string head = "Content-Type: multipart/signed; boundary=b\r\n\r\n";
  const std::vector<std::pair<std::string, std::string>> cases{
      {"", "the multipart/signed message has no signed part"},
      {"--b--\r\n", "the multipart/signed message has no signed part"},
      {"--b\r\nx\r\n", "the multipart/signed message has no signature part"},
      {"--b\r\nx\r\n--b\r\nContent-Type: text/plain\r\n\r\nAA\r\n--b--\r\n",
       "the second part of the multipart/signed message is text/plain"},
      {"--b\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAEC\r\n",
       "the multipart/signed message is cut short"},
      {"--b\r\nx\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n\r\nAAEC\r\n--b--\r\n",
       "the signature part is not a CMS structure"}};
  for (const auto& [body, message] : cases) {
    write_file(path("m.eml"), head + body);
    auto mapped = tool({"smime", "verify", "--no-system-cas", "--in", path("m.eml")});
    EXPECT_EQ(mapped.exit_code, 10) << body << mapped.err;
    EXPECT_NE(mapped.err.find(message), std::string::npos) << body << mapped.err;
    auto piped = tool({"smime", "verify", "--no-system-cas"}, head + body);
    EXPECT_EQ(piped.exit_code, 10) << body << piped.err;
    EXPECT_EQ(piped.err, mapped.err) << body;
  }
}

// NUL bytes in the signed part are content like any other byte (the
// line reader before this read lines with fgets and strlen: a NUL cut the
// line, and one at a line start looked like the end of the message).
TEST_P(Smime, ContentWithNulBytesVerifiesFromAFileAndAPipe) {
  const auto& k = test_keys();
  const std::string text("Content-Type: application/octet-stream\r\n\r\nab\0cd\r\n\0zz\r\nend\r\n",
                         59);
  write_file(path("nul.eml"), text);
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
  run_ok({"openssl", "cms", "-sign", "-binary", "-in", path("nul.eml"), "-signer", k.rsa_cert_pem,
          "-inkey", path("rsa.key"), "-out", path("nul.s")});
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        k.rsa_cert_pem};
  std::vector<std::string> from_file = verify;
  from_file.insert(from_file.end(), {"--in", path("nul.s")});
  auto mapped = tool(from_file);
  ASSERT_EQ(mapped.exit_code, 0) << mapped.err;
  EXPECT_EQ(mapped.out, text);
  auto piped = tool(verify, read_file(path("nul.s")));
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, text);
}

TEST_P(Smime, GarbageIsBadInput) {
  write_file(path("junk.eml"), "Subject: hi\n\nnot S/MIME at all\n");
  auto r = tool({"smime", "verify", "--in", path("junk.eml")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("not an S/MIME message"), std::string::npos) << r.err;
  write_file(path("huge.eml"), "X-Junk: " + std::string(300 * 1024, 'a') + "\n\nbody\n");
  r = tool({"smime", "verify", "--in", path("huge.eml")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("header block is larger than"), std::string::npos) << r.err;
  run_ok({"openssl", "cms", "-encrypt", "-in", path("msg.eml"), "-out", path("enc.eml"),
          test_keys().rsa_cert_pem});
  r = tool({"smime", "verify", "--in", path("enc.eml")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("not a signed S/MIME message"), std::string::npos) << r.err;
  sign("01", "s.eml");
  r = tool({"smime", "decrypt", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
            path("s.eml")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("not an encrypted S/MIME message"), std::string::npos) << r.err;
}

TEST_P(Smime, FailedSignLeavesNoOutputFile) {
  auto r = tool({"smime", "sign", "--key", key_uri("09"), "--pin-file", path("pin"), "--in",
                 path("msg.eml"), "--out", path("never.eml")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no private key matches"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.eml")));
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    EXPECT_EQ(e.path().filename().string().rfind(".tokenkit-", 0), std::string::npos)
        << "temporary file left behind: " << e.path();
  }
}

class SmimeEnvelope : public Smime {
 protected:
  void SetUp() override {
    Smime::SetUp();
    const auto& k = test_keys();
    // write_ec() leaves CKA_DERIVE false; ECDH decryption needs it.
    for (const auto& [file, type] : {std::pair{k.ec_key_der, "privkey"}, {k.ec_cert_der, "cert"}}) {
      std::vector<std::string> a{"--write-object", file,    "--type",  type,    "--id",  "03",
                                 "--label",        "carol", "--login", "--pin", kUserPin};
      if (std::string(type) == "privkey") a.push_back("--usage-derive");
      token_->pkcs11_tool(a);
    }
    run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.rsa_key_der, "-out", path("rsa.key")});
    run_ok({"openssl", "pkey", "-inform", "DER", "-in", k.ec_key_der, "-out", path("ec.key")});
  }
  ProcessResult decrypt(const std::string& id, const std::string& file,
                        std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"smime",      "decrypt",   "--key", key_uri(id),
                               "--pin-file", path("pin"), "--in",  path(file)};
    a.insert(a.end(), extra.begin(), extra.end());
    return tool(a);
  }
  void encrypt(const std::string& out, std::vector<std::string> extra) {
    std::vector<std::string> a{"smime", "encrypt", "--in", path("msg.eml"), "--out", path(out)};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tool(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
};
INSTANTIATE_TEST_SUITE_P(Tokens, SmimeEnvelope, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

TEST_P(SmimeEnvelope, WhatWeEncryptOpensslDecrypts) {
  const auto& k = test_keys();
  struct Case {
    std::string name, cert, key, algorithm;
    std::vector<std::string> extra;
  };
  const std::vector<Case> cases = {
      {"gcm.eml", k.rsa_cert_pem, "rsa.key", "aes-256-gcm", {}},
      {"cbc.eml", k.rsa_cert_pem, "rsa.key", "aes-256-cbc", {"--cbc"}},
      {"oaep.eml", k.rsa_cert_pem, "rsa.key", "rsaesOaep", {"--oaep"}},
      {"ecdh.eml", k.ec_cert_pem, "ec.key", "dhSinglePass-stdDH-sha256kdf-scheme", {}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> extra{"--recipient", c.cert};
    extra.insert(extra.end(), c.extra.begin(), c.extra.end());
    encrypt(c.name, extra);
    const std::string dump = run_ok({"openssl", "cms", "-cmsout", "-print", "-in", path(c.name)});
    EXPECT_NE(dump.find(c.algorithm), std::string::npos) << c.name;
    auto r = run({"openssl", "cms", "-decrypt", "-in", path(c.name), "-inkey", path(c.key),
                  "-recip", c.cert});
    EXPECT_EQ(r.exit_code, 0) << c.name << ": " << r.err;
    EXPECT_EQ(r.out, crlf(kMessage)) << c.name;
  }
  const std::string out = read_file(path("gcm.eml"));
  EXPECT_NE(out.find("smime-type=authEnveloped-data"), std::string::npos);
  EXPECT_EQ(out.find("\r\r"), std::string::npos);
}

TEST_P(SmimeEnvelope, WhatOpensslEncryptsToTheTokenWeDecrypt) {
  const auto& k = test_keys();
  struct Case {
    std::string name, id, cert;
    std::vector<std::string> opts;
  };
  const std::vector<Case> cases = {
      {"gcm.eml", "01", k.rsa_cert_pem, {"-aes-256-gcm"}},
      {"cbc.eml", "01", k.rsa_cert_pem, {"-aes256"}},
      {"oaep.eml",
       "01",
       k.rsa_cert_pem,
       {"-aes256", "-recip", k.rsa_cert_pem, "-keyopt", "rsa_padding_mode:oaep"}},
      {"ecdh.eml", "03", k.ec_cert_pem, {"-aes-256-gcm"}},
  };
  for (const auto& c : cases) {
    std::vector<std::string> a{"openssl",       "cms",  "-encrypt",  "-in",
                               path("msg.eml"), "-out", path(c.name)};
    a.insert(a.end(), c.opts.begin(), c.opts.end());
    if (c.opts.size() == 1) a.push_back(c.cert);
    run_ok(a);
    auto r = decrypt(c.id, c.name, {"--out", path(c.name + ".txt")});
    EXPECT_EQ(r.exit_code, 0) << c.name << ": " << r.err;
    EXPECT_EQ(read_file(path(c.name + ".txt")), crlf(kMessage)) << c.name;
  }
}

TEST_P(SmimeEnvelope, RoundTripToSeveralRecipients) {
  const auto& k = test_keys();
  encrypt("both.eml", {"--recipient", k.rsa_cert_pem, "--recipient", k.ec_cert_pem});
  for (std::string id : {"01", "03"}) {
    auto r = decrypt(id, "both.eml");
    EXPECT_EQ(r.exit_code, 0) << id << ": " << r.err;
    EXPECT_EQ(r.out, crlf(kMessage)) << id;
  }
}

TEST_P(SmimeEnvelope, SignThenEncryptInOneCommand) {
  const auto& k = test_keys();
  auto r = tool({"smime", "sign", "--key", key_uri("01"), "--pin-file", path("pin"), "--in",
                 path("msg.eml"), "--encrypt-to", k.ec_cert_pem, "--out", path("se.eml")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // openssl: decrypt with Bob's file key, then verify Alice's signature inside.
  run_ok({"openssl", "cms", "-decrypt", "-in", path("se.eml"), "-inkey", path("ec.key"), "-out",
          path("inner.eml")});
  auto v = openssl_verify("inner.eml", k.rsa_cert_pem);
  EXPECT_EQ(v.exit_code, 0) << v.err;
  EXPECT_EQ(read_file(path("inner.eml.content")), crlf(kMessage));
  // tokenkit: decrypt on the token (ECDH), then verify.
  auto d = decrypt("03", "se.eml", {"--out", path("inner2.eml")});
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto ours = tool({"smime", "verify", "--ca-file", k.rsa_cert_pem, "--in", path("inner2.eml")});
  EXPECT_EQ(ours.exit_code, 0) << ours.err;
  EXPECT_EQ(ours.out, crlf(kMessage));
}

TEST_P(SmimeEnvelope, MessageForSomeoneElseIsNamedAndWritesNothing) {
  encrypt("for-bob.eml", {"--recipient", test_keys().ec_cert_pem});
  auto r = decrypt("01", "for-bob.eml", {"--out", path("never.txt")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("not encrypted to"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("key \"alice\""), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.txt")));
}

TEST_P(SmimeEnvelope, OaepSha256RefusedBySoftHsmIsAClearError) {
  encrypt("oaep.eml", {"--recipient", test_keys().rsa_cert_pem, "--oaep"});
  auto r = decrypt("01", "oaep.eml");
  if (r.exit_code == 0) {
    EXPECT_EQ(r.out, crlf(kMessage)) << "a token that does OAEP-SHA256 must do it right";
    return;
  }
  EXPECT_NE(r.err.find("CKM_RSA_PKCS_OAEP, SHA256"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty());
}

TEST_P(SmimeEnvelope, TamperedGcmTagReleasesNoPlaintext) {
  encrypt("gcm.eml", {"--recipient", test_keys().rsa_cert_pem});
  run_ok({"openssl", "cms", "-cmsout", "-in", path("gcm.eml"), "-outform", "DER", "-out",
          path("gcm.der")});
  std::string der = read_file(path("gcm.der"));
  der.back() = static_cast<char>(der.back() ^ 0x01);  // the last byte of the MAC
  write_file(path("bad.der"), der);
  run_ok({"openssl", "cms", "-cmsout", "-inform", "DER", "-in", path("bad.der"), "-out",
          path("bad.eml")});
  auto r = decrypt("01", "bad.eml", {"--out", path("never.txt")});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("authentication tag does not verify"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.txt")));
  auto piped = decrypt("01", "bad.eml");
  EXPECT_NE(piped.exit_code, 0);
  EXPECT_TRUE(piped.out.empty()) << "no plaintext before the tag is checked";
}

// One pass: the content goes to the temporary output file as it is
// decrypted and the GCM tag, which follows it, is checked at the end. A
// message of some megabytes changed in its ciphertext or its tag leaves no
// output file and no temporary file, next to --out or (for stdout) in
// $TMPDIR.
TEST_P(SmimeEnvelope, ChangedLargeGcmMessageLeavesNoOutputAndNoTemporaryFile) {
  std::string big = "Content-Type: text/plain\n\n";
  for (int i = 0; big.size() < (std::size_t{3} << 20); ++i) {
    big += "line " + std::to_string(i) + " of a message that fills megabytes\n";
  }
  write_file(path("big.eml"), big);
  auto e = tool({"smime", "encrypt", "--recipient", test_keys().rsa_cert_pem, "--in",
                 path("big.eml"), "--out", path("big.enc")});
  ASSERT_EQ(e.exit_code, 0) << e.err;
  run_ok({"openssl", "cms", "-cmsout", "-in", path("big.enc"), "-outform", "DER", "-out",
          path("big.der")});
  const std::string der = read_file(path("big.der"));
  std::string changed_tag = der;
  changed_tag.back() = static_cast<char>(changed_tag.back() ^ 0x01);  // the MAC's last byte
  std::string changed_content = der;
  changed_content[der.size() / 2] = static_cast<char>(changed_content[der.size() / 2] ^ 0x40);
  const std::string out_dir = path("out");
  const std::string tmp_dir = path("tmp");
  std::filesystem::create_directories(out_dir);
  std::filesystem::create_directories(tmp_dir);
  for (const auto& [name, bytes] : {std::pair{"tag", changed_tag}, {"content", changed_content}}) {
    write_file(path(std::string(name) + ".der"), bytes);
    run_ok({"openssl", "cms", "-cmsout", "-inform", "DER", "-in", path(std::string(name) + ".der"),
            "-out", path(std::string(name) + ".eml")});
    auto r = decrypt("01", std::string(name) + ".eml", {"--out", out_dir + "/never.txt"});
    EXPECT_EQ(r.exit_code, 10) << name << ": " << r.err;
    EXPECT_NE(r.err.find("authentication tag does not verify"), std::string::npos) << r.err;
    // To stdout: through a temporary file in $TMPDIR, copied out only on success.
    auto piped = token_->run_tool(kTool,
                                  {"smime", "decrypt", "--key", key_uri("01"), "--pin-file",
                                   path("pin"), "--in", path(std::string(name) + ".eml")},
                                  {}, {{"TMPDIR", tmp_dir}});
    EXPECT_EQ(piped.exit_code, 10) << name << ": " << piped.err;
    EXPECT_TRUE(piped.out.empty()) << name << ": no plaintext before the tag is checked";
  }
  EXPECT_TRUE(std::filesystem::is_empty(out_dir)) << "no output, no temporary file next to it";
  EXPECT_TRUE(std::filesystem::is_empty(tmp_dir)) << "no temporary file in $TMPDIR";
  // The unchanged message decrypts, to a file and to stdout.
  auto ok = decrypt("01", "big.enc", {"--out", out_dir + "/big.txt"});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(read_file(out_dir + "/big.txt"), crlf(big));
  EXPECT_EQ(decrypt("01", "big.enc").out, crlf(big));
}

// RFC 5083's authAttrs are the GCM associated data, needed before the
// content; they come after it, and one-pass decryption cannot use them: a
// message with them is refused by name (OpenSSL 3.0 puts none in what it
// makes, nor does tokenkit). The attribute goes in with Python, between the
// content and the mac.
TEST_P(SmimeEnvelope, GcmMessageWithAuthAttrsIsRefusedByName) {
  encrypt("gcm.eml", {"--recipient", test_keys().rsa_cert_pem});
  run_ok({"openssl", "cms", "-cmsout", "-in", path("gcm.eml"), "-outform", "DER", "-out",
          path("gcm.der")});
  const std::string script = R"(
import sys
d = open(sys.argv[1], 'rb').read()
def hdr(b, i):
    l = b[i + 1]; j = i + 2
    if l & 0x80:
        n = l & 0x7f; l = int.from_bytes(b[j:j + n], 'big'); j += n
    return l, j
def tlv(t, c):
    n = len(c)
    if n < 0x80: return bytes([t, n]) + c
    nb = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([t, 0x80 | len(nb)]) + nb + c
l, i = hdr(d, 0)
l1, i1 = hdr(d, i); oid = d[i:i1 + l1]
l2, i2 = hdr(d, i1 + l1)
l3, i3 = hdr(d, i2)
body = d[i3:i3 + l3]; els = []; j = 0
while j < len(body):
    ll, jj = hdr(body, j); els.append(body[j:jj + ll]); j = jj + ll
attr = tlv(0x30, tlv(0x06, bytes.fromhex('2a864886f70d010905')) + tlv(0x31, tlv(0x17, b'260101000000Z')))
els.insert(len(els) - 1, tlv(0xa1, attr))
open(sys.argv[2], 'wb').write(tlv(0x30, oid + tlv(0xa0, tlv(0x30, b''.join(els)))))
)";
  write_file(path("authattrs.py"), script);
  run_ok({"python3", path("authattrs.py"), path("gcm.der"), path("aa.der")});
  run_ok({"openssl", "cms", "-cmsout", "-inform", "DER", "-in", path("aa.der"), "-out",
          path("aa.eml")});
  const std::string dump = run_ok({"openssl", "cms", "-cmsout", "-print", "-in", path("aa.eml")});
  ASSERT_NE(dump.find("signingTime"), std::string::npos) << dump;
  auto r = decrypt("01", "aa.eml", {"--out", path("never.txt")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("authenticated attributes (authAttrs)"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.txt")));
}

TEST_P(Smime, KeyWithoutCertificateCannotSignSmime) {
  token_->pkcs11_tool({"--write-object", test_keys().rsa_key_der, "--type", "privkey", "--id", "07",
                       "--label", "lonely", "--usage-sign", "--login", "--pin", kUserPin});
  auto r = tool({"smime", "sign", "--key", key_uri("07"), "--pin-file", path("pin"), "--in",
                 path("msg.eml"), "--out", path("never.eml")});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("no certificate with the CKA_ID of key \"lonely\""), std::string::npos)
      << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("never.eml")));
}

TEST(SmimeHelp, EachActionHasHelpWithAnExample) {
  for (std::string a : {"sign", "verify", "encrypt", "decrypt"}) {
    auto r = run({kTool, "smime", a, "--help"});
    EXPECT_EQ(r.exit_code, 0) << a;
    EXPECT_NE(r.out.find("Example:"), std::string::npos) << a;
  }
  EXPECT_EQ(run({kTool, "smime"}).exit_code, 2);
  EXPECT_EQ(run({kTool, "smime", "frobnicate"}).exit_code, 2);
}

}  // namespace
