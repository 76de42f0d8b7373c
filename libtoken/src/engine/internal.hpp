// Inside the tokenkit provider: the token side of a key, the key data the
// provider's keymgmt hands to OpenSSL, and the guard that keeps C++
// exceptions from crossing OpenSSL's C calls.
#pragma once

#include <openssl/core.h>
#include <openssl/core_dispatch.h>
#include <openssl/evp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "token/engine.hpp"
#include "token/session.hpp"

namespace token::engine {

// A private key on the token and the session it is used through. One mutex
// per key: PKCS#11 sessions must not run two operations at once.
class TokenOps {
 public:
  TokenOps(std::shared_ptr<Session> session, CK_OBJECT_HANDLE handle, std::string description,
           bool always_authenticate, std::function<Secret()> context_pin);

  // Throws Error(Token) when the token does not list `m`; `purpose` says why
  // it was wanted ("RSA-PSS signing").
  void require(CK_MECHANISM_TYPE m, const std::string& purpose) const;
  Bytes sign(CK_MECHANISM& mech, const unsigned char* in, std::size_t len, const std::string& what);
  Bytes decrypt(CK_MECHANISM& mech, const unsigned char* in, std::size_t len,
                const std::string& what);
  // ECDH (CKM_ECDH1_DERIVE, CKD_NULL) with the peer's encoded point; the
  // shared secret comes back through a session object that is destroyed.
  Bytes derive_ecdh(const Bytes& peer_point, std::size_t secret_len);

  const std::string& description() const { return description_; }

 private:
  void context_login(const std::string& context);
  // A PKCS#11 entry point of an operation: its name for errors and the
  // function (init: C_SignInit/C_DecryptInit shape; run: C_Sign/C_Decrypt).
  struct Step {
    const char* name;
    CK_C_SignInit init;
    CK_C_Sign run;
  };
  Bytes single_part(const Step& init, const Step& run, CK_MECHANISM& mech, const unsigned char* in,
                    std::size_t len, const std::string& what);
  const Module& module() const { return session_->module(); }
  std::shared_ptr<Session> session_;
  CK_OBJECT_HANDLE handle_;
  std::string description_;
  bool always_authenticate_;
  std::function<Secret()> context_pin_;
  std::set<CK_MECHANISM_TYPE> mechanisms_;
  std::mutex mutex_;
};

// What the keymgmt's keydata points to. `pub` is an ordinary default-provider
// key with the public half; `ops` is null for a public key OpenSSL imported
// (a peer's key for ECDH, a certificate's key being compared with ours).
struct KeyData {  // NOLINT(cppcoreguidelines-special-member-functions): made, duplicated and
                  // freed only by the provider callbacks, which take their own references
  int type = 0;   // EVP_PKEY_RSA, EVP_PKEY_EC, EVP_PKEY_ED25519 or EVP_PKEY_X25519
  EVP_PKEY* pub = nullptr;
  std::shared_ptr<TokenOps> ops;
  ~KeyData() { EVP_PKEY_free(pub); }
};

// Passed through EVP_PKEY_fromdata to our keymgmt's import, as an octet
// string holding a pointer: how open_private_key() builds the EVP_PKEY.
constexpr const char* kSeedParam = "tokenkit-key-seed";
struct KeySeed {
  EVP_PKEY* pub;
  std::shared_ptr<TokenOps> ops;
};

// Provider functions return 1/0 to OpenSSL; an exception becomes 0 with the
// error kept for rethrow_engine_error() and raised on OpenSSL's queue.
void keep_error(const Error& e);
template <class F>
int guarded(F&& f) noexcept {
  try {
    return f();
  } catch (const Error& e) {
    keep_error(e);
  } catch (const std::exception& e) {
    keep_error(Error(ErrorKind::Internal, e.what()));
  }
  return 0;
}

// A digest fetched from the engine's library context by any of its names.
EVP_MD* fetch_md(const char* name);
// The PKCS#11 hash mechanism and MGF1 generator for an OpenSSL digest.
CK_MECHANISM_TYPE hash_mechanism(const EVP_MD* md);
CK_RSA_PKCS_MGF_TYPE mgf_for(const EVP_MD* md);
// "SHA256": the name EVP_get_digestbyname() knows, for OpenSSL's ctrl glue.
const char* md_short_name(const EVP_MD* md);

std::size_t key_size_bytes(const KeyData& k);  // RSA modulus / EC field size
// "RSA", "EC", "ED25519", "X25519": the default provider's name for a key type.
const char* key_type_name(int type);

extern const OSSL_DISPATCH kKeymgmtRsa[];
extern const OSSL_DISPATCH kKeymgmtEc[];
extern const OSSL_DISPATCH kKeymgmtEd25519[];
extern const OSSL_DISPATCH kKeymgmtX25519[];
extern const OSSL_DISPATCH kSignatureEd25519[];
extern const OSSL_DISPATCH kSignatureRsa[];
extern const OSSL_DISPATCH kSignatureEcdsa[];
extern const OSSL_DISPATCH kCipherRsa[];
extern const OSSL_DISPATCH kExchangeEcdh[];

template <class F>
constexpr void (*fn(F* f))() {
  return reinterpret_cast<void (*)()>(f);
}

}  // namespace token::engine
