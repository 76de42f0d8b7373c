// PKCS#12 files for the import tests, made by the openssl CLI (and, for the
// shapes the CLI cannot make, by OpenSSL's PKCS12 API), once per process.
#pragma once

#include <string>

namespace tokenkit::test {

struct P12Files {
  std::string dir;
  std::string password = "sekrit";
  std::string unicode_password = "p\xC3\xA4ssw\xC3\xB6rd-\xE2\x9C\x93";  // "pässwörd-✓"
  std::string ca_cert;          // PEM
  std::string rsa_chain;        // RSA leaf + CA, AES (OpenSSL 3 default), friendly name "Alice Mail"
  std::string rsa_cert;         // PEM of its leaf
  std::string ec_chain;         // EC P-256 leaf with keyAgreement + CA
  std::string ec_cert;
  std::string rsa_legacy;       // the RSA one with RC2/3DES (-legacy)
  std::string rsa_unicode;      // the RSA one under the unicode password
  std::string two_keys;         // RSA and EC keys and certs, bags in mixed order
  std::string mismatched;       // RSA key with the EC certificate
  std::string corrupted;        // rsa_chain with a byte flipped in the middle
  std::string truncated;        // the first half of rsa_chain
  std::string not_p12;          // a PEM certificate
};

const P12Files& p12_files();

}  // namespace tokenkit::test
