#include "token/pkcs12.hpp"

#include <openssl/err.h>
#include <openssl/provider.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "token/error.hpp"

namespace token {

namespace {

// RC2 and 3DES (older browsers' and Windows' exports) live in OpenSSL 3's
// legacy provider. Loading any provider explicitly stops the default one
// from loading by itself, so load both, once, and only when a file needs it.
void load_legacy_provider() {
  // The providers stay loaded for the process; keeping their handles keeps
  // them reachable (LeakSanitizer reported them as leaked at every exit).
  static OSSL_PROVIDER* const legacy = OSSL_PROVIDER_load(nullptr, "legacy");
  static OSSL_PROVIDER* const fallback =
      legacy != nullptr ? OSSL_PROVIDER_load(nullptr, "default") : nullptr;
  const bool loaded = legacy != nullptr && fallback != nullptr;
  if (!loaded) {
    throw Error(ErrorKind::Input, "this PKCS#12 file uses legacy encryption (RC2/3DES) and "
                                  "OpenSSL's legacy provider cannot be loaded");
  }
}

bool unsupported_algorithm(unsigned long err) {
  int reason = ERR_GET_REASON(err);
  return reason == ERR_R_UNSUPPORTED || reason == EVP_R_UNSUPPORTED_ALGORITHM ||
         reason == EVP_R_UNSUPPORTED_CIPHER || reason == ERR_R_FETCH_FAILED;
}

struct Reader {
  const std::string& name;
  const char* pass = nullptr;
  int passlen = 0;
  P12Contents out;
  bool decrypt_failed = false;
  int decrypted = 0;  // encrypted parts this password opened

  std::string friendly(const PKCS12_SAFEBAG* bag) {
    char* f = PKCS12_get_friendlyname(const_cast<PKCS12_SAFEBAG*>(bag));
    std::string s = f ? f : "";
    OPENSSL_free(f);
    return s;
  }

  void add_key(const PKCS8_PRIV_KEY_INFO* p8, const PKCS12_SAFEBAG* bag) {
    ossl::Pkey k(EVP_PKCS82PKEY(p8));
    if (!k) throw Error(ErrorKind::Input, "a private key in " + name + " cannot be read: " + ossl::last_error());
    out.keys.push_back({std::move(k), friendly(bag)});
  }

  void bag(const PKCS12_SAFEBAG* b, int depth) {
    switch (PKCS12_SAFEBAG_get_nid(b)) {
      case NID_keyBag:
        add_key(PKCS12_SAFEBAG_get0_p8inf(b), b);
        break;
      case NID_pkcs8ShroudedKeyBag: {
        PKCS8_PRIV_KEY_INFO* p8 = PKCS12_decrypt_skey(b, pass, passlen);
        if (p8 == nullptr) {
          decrypt_failed = true;
          return;
        }
        ++decrypted;
        try {
          add_key(p8, b);
        } catch (...) {
          PKCS8_PRIV_KEY_INFO_free(p8);
          throw;
        }
        PKCS8_PRIV_KEY_INFO_free(p8);
        break;
      }
      case NID_certBag:
        if (PKCS12_SAFEBAG_get_bag_nid(b) == NID_x509Certificate) {
          ossl::X509Ptr x(PKCS12_SAFEBAG_get1_cert(b));
          if (!x) throw Error(ErrorKind::Input, "a certificate in " + name + " is damaged");
          out.certs.push_back({std::move(x), friendly(b)});
        }
        break;
      case NID_safeContentsBag:
        if (depth > 8) throw Error(ErrorKind::Input, name + " nests safe contents too deeply");
        bags(PKCS12_SAFEBAG_get0_safes(b), depth + 1);
        break;
      default:
        break;  // CRL and secret bags carry nothing tokenkit stores
    }
  }

  void bags(const STACK_OF(PKCS12_SAFEBAG)* list, int depth) {
    for (int i = 0; i < sk_PKCS12_SAFEBAG_num(list); ++i) bag(sk_PKCS12_SAFEBAG_value(list, i), depth);
  }

  // One authenticated safe: plain data or password-encrypted data.
  void safe(PKCS7* p7) {
    STACK_OF(PKCS12_SAFEBAG)* list = nullptr;
    int nid = OBJ_obj2nid(p7->type);
    if (nid == NID_pkcs7_data) {
      list = PKCS12_unpack_p7data(p7);
    } else if (nid == NID_pkcs7_encrypted) {
      list = PKCS12_unpack_p7encdata(p7, pass, passlen);
      if (list == nullptr && unsupported_algorithm(ERR_peek_last_error())) {
        ERR_clear_error();
        load_legacy_provider();
        out.legacy = true;
        list = PKCS12_unpack_p7encdata(p7, pass, passlen);
      }
      if (list == nullptr) {
        decrypt_failed = true;
        ERR_clear_error();
        return;
      }
      ++decrypted;
    } else {
      return;  // enveloped (public-key) safes: not supported by any peer either
    }
    if (list == nullptr) throw Error(ErrorKind::Input, name + " is damaged: a safe cannot be read");
    try {
      bags(list, 0);
    } catch (...) {
      sk_PKCS12_SAFEBAG_pop_free(list, PKCS12_SAFEBAG_free);
      throw;
    }
    sk_PKCS12_SAFEBAG_pop_free(list, PKCS12_SAFEBAG_free);
  }
};

// Tries the encrypted parts with this password: a password that opens any
// of them, while the MAC fails, means a damaged file, not a wrong password.
bool password_decrypts(PKCS12* p12, const char* pass, int passlen, const std::string& name) {
  STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12);
  if (safes == nullptr) return false;
  Reader r{name, pass, passlen, {}};
  for (int i = 0; i < sk_PKCS7_num(safes); ++i) {
    try {
      r.safe(sk_PKCS7_value(safes, i));
    } catch (const Error&) {
      // a damaged part: what matters here is whether any part opened
    }
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  ERR_clear_error();
  return r.decrypted > 0;
}

}  // namespace

P12Contents parse_pkcs12(const std::string& der, const Secret& password, const std::string& name) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::P12 p12(d2i_PKCS12(nullptr, &p, static_cast<long>(der.size())));
  if (!p12) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, name + " is not a PKCS#12 file, or it is damaged");
  }
  // An empty password may be encoded as absent or as an empty string.
  const char* pass = password.data();
  int passlen = static_cast<int>(password.size());
  if (password.empty() && PKCS12_mac_present(p12.get()) &&
      PKCS12_verify_mac(p12.get(), nullptr, 0)) {
    pass = nullptr;
  }
  if (PKCS12_mac_present(p12.get()) && !PKCS12_verify_mac(p12.get(), pass, passlen)) {
    ERR_clear_error();
    if (password_decrypts(p12.get(), pass, passlen, name)) {
      throw Error(ErrorKind::Input, name + " is damaged: its integrity check (MAC) fails although "
                                           "the password decrypts it");
    }
    throw Error(ErrorKind::PasswordIncorrect, "wrong password for " + name);
  }
  STACK_OF(PKCS7)* safes = PKCS12_unpack_authsafes(p12.get());
  if (safes == nullptr) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, name + " is damaged: its contents cannot be read");
  }
  Reader r{name, pass, passlen, {}};
  try {
    for (int i = 0; i < sk_PKCS7_num(safes); ++i) r.safe(sk_PKCS7_value(safes, i));
  } catch (...) {
    sk_PKCS7_pop_free(safes, PKCS7_free);
    throw;
  }
  sk_PKCS7_pop_free(safes, PKCS7_free);
  if (r.decrypt_failed) {
    throw Error(PKCS12_mac_present(p12.get()) ? ErrorKind::Input : ErrorKind::PasswordIncorrect,
                PKCS12_mac_present(p12.get())
                    ? name + " is damaged: a part that passed the MAC check does not decrypt"
                    : "wrong password for " + name + " (or the file is damaged: it has no MAC)");
  }
  if (r.out.keys.empty() && r.out.certs.empty()) {
    throw Error(ErrorKind::Input, name + " holds no key and no certificate");
  }
  return std::move(r.out);
}

P12Contents read_pkcs12(const std::string& path, const Secret& password) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::Io, "cannot open " + path);
  std::ostringstream s;
  s << f.rdbuf();
  if (f.bad()) throw Error(ErrorKind::Io, "cannot read " + path);
  if (s.str().size() > (64u << 20)) throw Error(ErrorKind::Input, path + " is larger than 64 MiB: not a PKCS#12 file");
  std::string der = s.str();
  P12Contents c = parse_pkcs12(der, password, path);
  wipe(der.data(), der.size());
  return c;
}

}  // namespace token
