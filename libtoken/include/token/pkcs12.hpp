// Reading a PKCS#12 file: every key and certificate in it, with friendly
// names, whatever order the bags come in. Key material stays in OpenSSL
// objects (freed with BN_clear_free) and is never written anywhere.
#pragma once

#include <string>
#include <vector>

#include "token/ossl.hpp"
#include "token/secret.hpp"

namespace token {

struct P12Key {
  ossl::Pkey key;
  std::string friendly_name;
};

struct P12Cert {
  ossl::X509Ptr cert;
  std::string friendly_name;
};

struct P12Contents {
  std::vector<P12Key> keys;
  std::vector<P12Cert> certs;
  bool legacy = false;  // needed OpenSSL's legacy provider (RC2, 3DES)
};

// Reads and decrypts `path`. Errors name the file and tell apart: a file
// that is not PKCS#12 or is damaged (Input), a wrong password
// (PasswordIncorrect), an unreadable file (Io).
P12Contents read_pkcs12(const std::string& path, const Secret& password);

// The same, from bytes in memory; `name` is what errors call it.
P12Contents parse_pkcs12(const std::string& der, const Secret& password, const std::string& name);

}  // namespace token
