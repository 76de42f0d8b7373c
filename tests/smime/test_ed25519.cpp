// Ed25519 S/MIME signing (RFC 8419) with the key on the token: a key pair
// generated on a fresh token by pkcs11-tool, a certificate for it issued by
// an openssl CA, tokenkit smime sign/verify, and an independent check of
// the signature with openssl pkeyutl over the signed attributes that a
// small DER walker (Python, standard library only) cuts out of the message.
#include <gtest/gtest.h>

#include <filesystem>

#include "process.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;

namespace {

const std::string kTool = TOKENKIT_BINARY;
const std::string kMessage =
    "From: Carol <carol@example.org>\nContent-Type: text/plain; charset=us-ascii\n\n"
    "Signed with Ed25519 on the token.\n";

// Cuts a signed S/MIME message (given as DER SignedData) into the pieces an
// Ed25519 verifier needs: the signed attributes as the signature covers them
// (SET OF tag 0x31, RFC 5652 section 5.4), the signature, the digest and
// signature algorithm OIDs, and the messageDigest value.
const char* kSplitter = R"PY(
import sys
d = open(sys.argv[1], 'rb').read()
def tlv(b, i):
    t = b[i]; l = b[i+1]; h = 2
    if l & 0x80:
        n = l & 0x7f; l = int.from_bytes(b[i+2:i+2+n], 'big'); h = 2 + n
    return t, i + h, i + h + l
def kids(b, s, e):
    out = []
    while s < e:
        t, cs, ce = tlv(b, s); out.append((t, s, cs, ce)); s = ce
    return out
def oid(b):
    v = [b[0] // 40, b[0] % 40]; n = 0
    for x in b[1:]:
        n = (n << 7) | (x & 0x7f)
        if not x & 0x80: v.append(n); n = 0
    return '.'.join(map(str, v))
_, cs, ce = tlv(d, 0)                       # ContentInfo
_, _, cs0, ce0 = kids(d, cs, ce)[1]         # [0] EXPLICIT
_, sds, sde = tlv(d, cs0)                   # SignedData
si_set = kids(d, sds, sde)[-1]              # signerInfos
_, sis, sie = tlv(d, si_set[2])             # first SignerInfo
f = kids(d, sis, sie)
dig = f[2]                                  # version, sid, digestAlgorithm
attrs = [x for x in f if x[0] == 0xa0][0]
after = f[f.index(attrs) + 1:]
sigalg, sig = after[0], after[1]
open(sys.argv[2], 'wb').write(b'\x31' + d[attrs[1] + 1:attrs[3]])
open(sys.argv[3], 'wb').write(d[sig[2]:sig[3]])
print('digest', oid(d[kids(d, dig[2], dig[3])[0][2]:kids(d, dig[2], dig[3])[0][3]]))
print('signature', oid(d[kids(d, sigalg[2], sigalg[3])[0][2]:kids(d, sigalg[2], sigalg[3])[0][3]]))
print('sigalg-fields', len(kids(d, sigalg[2], sigalg[3])))
for a in kids(d, attrs[2], attrs[3]):
    t, v = kids(d, a[2], a[3])
    if oid(d[t[2]:t[3]]) == '1.2.840.113549.1.9.4':
        print('messageDigest', d[kids(d, v[2], v[3])[0][2]:kids(d, v[2], v[3])[0][3]].hex())
)PY";

class Ed25519 : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    token_ = std::make_unique<FreshToken>(GetParam());
    dir_ = token_->dir();
    write_file(path("pin"), std::string(kUserPin) + "\n");
    write_file(path("msg.eml"), kMessage);
    write_file(path("split.py"), kSplitter);
    // The key pair is made on the token by a peer tool; openssl is the CA.
    token_->pkcs11_tool({"--login", "--pin", kUserPin, "--keypairgen", "--key-type",
                         "EC:edwards25519", "--id", "03", "--label", "carol"});
    token_->pkcs11_tool(
        {"--read-object", "--type", "pubkey", "--id", "03", "-o", path("carol.pub")});
    run_ok({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", path("ca.key"), "-out", path("ca.pem"), "-subj", "/CN=Test CA",
            "-days", "30", "-addext", "basicConstraints=critical,CA:true"});
    write_file(path("ext"),
               "subjectAltName=email:carol@example.org\nkeyUsage=critical,digitalSignature\n"
               "extendedKeyUsage=emailProtection\n");
    run_ok({"openssl", "x509", "-new", "-force_pubkey", path("carol.pub"), "-subj",
            "/CN=Carol Example/emailAddress=carol@example.org", "-CA", path("ca.pem"), "-CAkey",
            path("ca.key"), "-days", "30", "-extfile", path("ext"), "-outform", "DER", "-out",
            path("carol.crt.der")});
    token_->pkcs11_tool({"--login", "--pin", kUserPin, "--write-object", path("carol.crt.der"),
                         "--type", "cert", "--id", "03", "--label", "carol"});
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string key_uri() const { return "pkcs11:token=" + token_->label() + ";id=%03"; }
  ProcessResult tool(std::vector<std::string> args) {
    return token_->run_tool(kTool, std::move(args));
  }
  void sign(const std::string& out, std::vector<std::string> extra = {}) {
    std::vector<std::string> a{"smime",     "sign", "--key",         key_uri(), "--pin-file",
                               path("pin"), "--in", path("msg.eml"), "--out",   path(out)};
    a.insert(a.end(), extra.begin(), extra.end());
    auto r = tool(a);
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
};

INSTANTIATE_TEST_SUITE_P(Tokens, Ed25519, ::testing::ValuesIn(token_providers()),
                         [](const auto& i) { return i.param; });

std::string field(const std::string& report, const std::string& name) {
  const auto at = report.find(name + " ");
  if (at == std::string::npos) return {};
  const auto end = report.find('\n', at);
  return report.substr(at + name.size() + 1, end - at - name.size() - 1);
}

TEST_P(Ed25519, OpaqueSignatureIsRfc8419AndVerifiesIndependently) {
  sign("opaque.eml", {"--opaque"});
  // DER (the message itself is BER with indefinite lengths, as streamed).
  run_ok({"openssl", "cms", "-cmsout", "-in", path("opaque.eml"), "-outform", "DER", "-out",
          path("p7.der")});
  const std::string report =
      run_ok({"python3", path("split.py"), path("p7.der"), path("attrs.der"), path("sig.bin")});
  EXPECT_EQ(field(report, "digest"), "2.16.840.1.101.3.4.2.3") << "id-sha512 (RFC 8419 3.1)";
  EXPECT_EQ(field(report, "signature"), "1.3.101.112") << "id-Ed25519";
  EXPECT_EQ(field(report, "sigalg-fields"), "1") << "parameters absent (RFC 8410)";
  // The signature over the signed attributes, checked by openssl with the
  // certificate's key: pure Ed25519, no pre-hash.
  run_ok({"openssl", "x509", "-inform", "DER", "-in", path("carol.crt.der"), "-pubkey", "-noout",
          "-out", path("cert.pub")});
  run_ok({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey", path("cert.pub"), "-rawin", "-in",
          path("attrs.der"), "-sigfile", path("sig.bin")});
  // messageDigest is SHA-512 of the content as signed (CRLF line ends).
  write_file(path("content"), crlf(kMessage));
  const std::string sha = run_ok({"openssl", "dgst", "-sha512", "-r", path("content")});
  EXPECT_EQ(field(report, "messageDigest"), sha.substr(0, 128));
  // A changed byte in the signed attributes no longer verifies.
  std::string attrs = read_file(path("attrs.der"));
  attrs[attrs.size() - 3] ^= 1;
  write_file(path("attrs.bad"), attrs);
  auto bad = run({"openssl", "pkeyutl", "-verify", "-pubin", "-inkey", path("cert.pub"), "-rawin",
                  "-in", path("attrs.bad"), "-sigfile", path("sig.bin")});
  EXPECT_NE(bad.exit_code, 0);
}

TEST_P(Ed25519, MultipartSignedVerifiesWithTokenkit) {
  sign("s.eml");
  const std::string out = read_file(path("s.eml"));
  EXPECT_NE(out.find("micalg=\"sha-512\""), std::string::npos) << out.substr(0, 400);
  auto r = tool({"smime", "verify", "--no-system-cas", "--ca-file", path("ca.pem"), "--in",
                 path("s.eml"), "--out", path("content")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("carol@example.org"), std::string::npos) << r.err;
  EXPECT_NE(read_file(path("content")).find("Signed with Ed25519"), std::string::npos);
}

TEST_P(Ed25519, TamperedContentOrSignatureFailsTokenkitVerify) {
  sign("s.eml");
  std::string msg = read_file(path("s.eml"));
  std::string changed = msg;
  changed.replace(changed.find("Signed with"), 6, "Forged");
  write_file(path("content-bad.eml"), changed);
  auto r = tool({"smime", "verify", "--no-system-cas", "--ca-file", path("ca.pem"), "--in",
                 path("content-bad.eml"), "--out", path("c1")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("signature"), std::string::npos) << r.err;

  // The signature itself changed (one bit of the token's signature), the
  // content intact: only the Ed25519 check over the attributes can see it.
  sign("opaque.eml", {"--opaque"});
  // DER (the message itself is BER with indefinite lengths, as streamed).
  run_ok({"openssl", "cms", "-cmsout", "-in", path("opaque.eml"), "-outform", "DER", "-out",
          path("p7.der")});
  run_ok({"python3", path("split.py"), path("p7.der"), path("attrs.der"), path("sig.bin")});
  std::string der = read_file(path("p7.der"));
  const std::string sig = read_file(path("sig.bin"));
  const auto at = der.find(sig);
  ASSERT_NE(at, std::string::npos);
  der[at + 10] ^= 0x20;
  write_file(path("sigbad.der"), der);
  run_ok({"openssl", "cms", "-cmsout", "-inform", "DER", "-in", path("sigbad.der"), "-out",
          path("sigbad.eml")});
  r = tool({"smime", "verify", "--no-system-cas", "--ca-file", path("ca.pem"), "--in",
            path("sigbad.eml"), "--out", path("c2")});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("does not verify with the signer's certificate"), std::string::npos)
      << r.err;
}

// What the installed OpenSSL (3.0) does with such a message: recorded, so
// the docs can say it, and so we learn when Debian's OpenSSL starts to accept
// them.
TEST_P(Ed25519, InstalledOpensslCmsCannotVerifyIt) {
  sign("s.eml");
  auto r = run({"openssl", "cms", "-verify", "-in", path("s.eml"), "-CAfile", path("ca.pem"),
                "-out", path("c")});
  const std::string version = run_ok({"openssl", "version"});
  if (version.rfind("OpenSSL 3.0.", 0) == 0) {
    EXPECT_NE(r.exit_code, 0) << "OpenSSL 3.0 verified an Ed25519 CMS signature: update the docs";
  } else {
    EXPECT_EQ(r.exit_code, 0) << version << r.err;
  }
}

TEST_P(Ed25519, PssIsRefusedForAnEd25519Key) {
  auto r = tool({"smime", "sign", "--key", key_uri(), "--pin-file", path("pin"), "--pss", "--in",
                 path("msg.eml"), "--out", path("x.eml")});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("Ed25519"), std::string::npos) << r.err;
}

// X448 recipients are not supported (X25519 ones are, test_x25519.cpp): a
// clear error naming the certificate, exit 10, and no output file.
TEST_P(Ed25519, X448RecipientIsAClearErrorAndWritesNothing) {
  run_ok({"openssl", "genpkey", "-algorithm", "X448", "-out", path("x.key")});
  run_ok({"openssl", "pkey", "-in", path("x.key"), "-pubout", "-out", path("x.pub")});
  run_ok({"openssl", "x509", "-new", "-force_pubkey", path("x.pub"), "-subj",
          "/CN=Dave/emailAddress=dave@example.org", "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
          "-days", "30", "-out", path("x.crt")});
  auto r = tool({"smime", "encrypt", "--recipient", path("x.crt"), "--in", path("msg.eml"), "--out",
                 path("x.eml")});
  EXPECT_EQ(r.exit_code, 10) << r.err;
  EXPECT_NE(r.err.find("CN=Dave"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("X448"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(path("x.eml")));
}

}  // namespace
