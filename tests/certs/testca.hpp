// A test certificate authority made with the openssl CLI (`openssl ca`, so
// that validity can be set in the past): correspondents' certificates with
// chosen addresses, dates, key usage and extended key usage.
#pragma once

#include <string>
#include <vector>

namespace tokenkit::test {

struct CertSpec {
  CertSpec(std::string n, std::vector<std::string> e) : name(std::move(n)), emails(std::move(e)) {}
  CertSpec& valid(std::string from, std::string until = "20491231000000Z") {
    start = std::move(from);
    end = std::move(until);
    return *this;
  }
  CertSpec& usage(std::string ku) {
    key_usage = std::move(ku);
    return *this;
  }
  CertSpec& ext_usage(std::string eku) {
    ext_key_usage = std::move(eku);
    return *this;
  }
  CertSpec& subject_mail(std::string m) {
    subject_email = std::move(m);
    return *this;
  }
  CertSpec& server(std::string san) {  // a TLS server certificate
    extra_san = std::move(san);
    key_usage = "digitalSignature,keyEncipherment";
    ext_key_usage = "serverAuth";
    return *this;
  }
  CertSpec& ec() {
    key = "ec";
    key_usage = "keyAgreement,digitalSignature";
    return *this;
  }
  std::string name;                 // file stem and CN
  std::vector<std::string> emails;  // subjectAltName rfc822Name entries
  std::string subject_email;        // emailAddress in the subject, if any
  std::string extra_san;            // more subjectAltName entries ("IP:127.0.0.1")
  std::string start = "20240101000000Z";
  std::string end = "20491231000000Z";
  std::string key_usage = "keyEncipherment,digitalSignature";  // empty: no extension
  std::string ext_key_usage = "emailProtection";               // empty: no extension
  std::string key = "rsa";                                     // rsa or ec
};

struct Issued {
  std::string pem, der, key;  // paths
};

class TestCa {
 public:
  // A CA (RSA, "CN=Test Mail CA <tag>") in `dir`.
  TestCa(const std::string& dir, const std::string& tag = "A");
  Issued issue(const CertSpec& spec);
  const std::string& cert_pem() const { return cert_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, cert_, cnf_;
};

// The lower-case hex SHA-256 fingerprint of a PEM certificate, by openssl.
std::string openssl_fingerprint(const std::string& pem);

}  // namespace tokenkit::test
