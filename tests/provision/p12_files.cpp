#include "p12_files.hpp"

#include <openssl/pem.h>
#include <openssl/pkcs12.h>

#include <cstdio>
#include <stdexcept>

#include "process.hpp"
#include "tokens.hpp"

namespace tokenkit::test {

namespace {

EVP_PKEY* load_key(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  EVP_PKEY* k = f ? PEM_read_PrivateKey(f, nullptr, nullptr, nullptr) : nullptr;
  if (f) std::fclose(f);
  if (!k) throw std::runtime_error("cannot read " + path);
  return k;
}

X509* load_cert(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "r");
  X509* x = f ? PEM_read_X509(f, nullptr, nullptr, nullptr) : nullptr;
  if (f) std::fclose(f);
  if (!x) throw std::runtime_error("cannot read " + path);
  return x;
}

// Bags in the given order, keys shrouded with AES-256 (PBES2), MAC'ed.
void write_p12(const std::string& out, const std::string& pass,
               const std::vector<std::pair<EVP_PKEY*, X509*>>& items) {
  STACK_OF(PKCS12_SAFEBAG)* bags = nullptr;
  for (const auto& [key, cert] : items) {
    if (cert) PKCS12_add_cert(&bags, cert);
    if (key) PKCS12_add_key(&bags, key, 0, 2048, NID_aes_256_cbc, pass.c_str());
  }
  STACK_OF(PKCS7)* safes = nullptr;
  PKCS12_add_safe(&safes, bags, -1, 0, nullptr);
  PKCS12* p12 = PKCS12_add_safes(safes, 0);
  PKCS12_set_mac(p12, pass.c_str(), -1, nullptr, 0, 2048, nullptr);
  FILE* f = std::fopen(out.c_str(), "wb");
  i2d_PKCS12_fp(f, p12);
  std::fclose(f);
  PKCS12_free(p12);
  sk_PKCS7_pop_free(safes, PKCS7_free);
  sk_PKCS12_SAFEBAG_pop_free(bags, PKCS12_SAFEBAG_free);
}

struct Holder {
  P12Files f;
  Holder() {
    f.dir = make_temp_dir("p12");
    auto p = [this](const std::string& n) { return f.dir + "/" + n; };
    auto ossl = [](std::vector<std::string> a) {
      a.insert(a.begin(), "openssl");
      run_ok(a);
    };
    ossl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("ca.key"), "-out",
          p("ca.crt"), "-days", "365", "-subj", "/O=tokenkit tests/CN=Test Root CA", "-addext",
          "basicConstraints=critical,CA:true", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
    write_file(p("rsa.ext"), "keyUsage=digitalSignature,keyEncipherment\n"
                             "extendedKeyUsage=emailProtection\nsubjectAltName=email:alice@example.org\n");
    write_file(p("ec.ext"), "keyUsage=digitalSignature,keyAgreement\n"
                            "extendedKeyUsage=emailProtection\nsubjectAltName=email:carol@example.org\n");
    ossl({"req", "-newkey", "rsa:2048", "-nodes", "-keyout", p("rsa.key"), "-out", p("rsa.csr"),
          "-subj", "/CN=Alice Example/emailAddress=alice@example.org"});
    ossl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
          p("ec.key"), "-out", p("ec.csr"), "-subj", "/CN=Carol Example"});
    for (std::string n : {"rsa", "ec"}) {
      ossl({"x509", "-req", "-in", p(n + ".csr"), "-CA", p("ca.crt"), "-CAkey", p("ca.key"),
            "-CAcreateserial", "-out", p(n + ".crt"), "-days", "365", "-extfile", p(n + ".ext")});
    }
    const std::string pass = "pass:" + f.password;
    ossl({"pkcs12", "-export", "-inkey", p("rsa.key"), "-in", p("rsa.crt"), "-certfile",
          p("ca.crt"), "-name", "Alice Mail", "-passout", pass, "-out", p("rsa.p12")});
    ossl({"pkcs12", "-export", "-inkey", p("ec.key"), "-in", p("ec.crt"), "-certfile",
          p("ca.crt"), "-passout", pass, "-out", p("ec.p12")});
    ossl({"pkcs12", "-export", "-legacy", "-inkey", p("rsa.key"), "-in", p("rsa.crt"), "-certfile",
          p("ca.crt"), "-passout", pass, "-out", p("legacy.p12")});
    ossl({"pkcs12", "-export", "-inkey", p("rsa.key"), "-in", p("rsa.crt"), "-passout",
          "pass:" + f.unicode_password, "-out", p("unicode.p12")});
    EVP_PKEY* rk = load_key(p("rsa.key"));
    EVP_PKEY* ek = load_key(p("ec.key"));
    X509* rc = load_cert(p("rsa.crt"));
    X509* ec = load_cert(p("ec.crt"));
    write_p12(p("two.p12"), f.password, {{nullptr, ec}, {rk, nullptr}, {ek, rc}});
    write_p12(p("mismatch.p12"), f.password, {{rk, ec}});
    EVP_PKEY_free(rk);
    EVP_PKEY_free(ek);
    X509_free(rc);
    X509_free(ec);
    std::string good = read_file(p("rsa.p12"));
    std::string bad = good;
    bad[bad.size() / 2] ^= 0x40;
    write_file(p("corrupt.p12"), bad);
    write_file(p("truncated.p12"), good.substr(0, good.size() / 2));
    f.ca_cert = p("ca.crt");
    f.rsa_chain = p("rsa.p12");
    f.rsa_cert = p("rsa.crt");
    f.ec_chain = p("ec.p12");
    f.ec_cert = p("ec.crt");
    f.rsa_legacy = p("legacy.p12");
    f.rsa_unicode = p("unicode.p12");
    f.two_keys = p("two.p12");
    f.mismatched = p("mismatch.p12");
    f.corrupted = p("corrupt.p12");
    f.truncated = p("truncated.p12");
    f.not_p12 = p("ca.crt");
  }
  ~Holder() { remove_tree(f.dir); }
};

}  // namespace

const P12Files& p12_files() {
  static Holder h;
  return h.f;
}

}  // namespace tokenkit::test
