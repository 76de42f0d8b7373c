// Keys on a token as OpenSSL keys: an EVP_PKEY whose private operations
// (sign, decrypt, derive) run on the token. See docs/engine.md for why this
// is a provider of our own in a private OSSL_LIB_CTX, and not an engine.
#pragma once

#include <openssl/types.h>

#include <functional>
#include <memory>
#include <string>

#include "token/error.hpp"
#include "token/secret.hpp"
#include "token/session.hpp"
#include "token/uri.hpp"

namespace token {

struct KeyOptions {
  // Asked once per private operation for a key with CKA_ALWAYS_AUTHENTICATE
  // (PKCS#11 2.40 section 4.9: such a key needs a CKU_CONTEXT_SPECIFIC login
  // after every C_*Init). Unset: such keys fail with CKR_USER_NOT_LOGGED_IN.
  std::function<Secret()> context_pin;
};

// A private key on a token, usable wherever OpenSSL takes an EVP_PKEY, as
// long as the OpenSSL call runs in libctx() (the _ex functions). Holds its own
// session on the token: the caller's login (which belongs to the token and
// the application, not to a session) serves every operation.
class TokenKey {
 public:
  TokenKey(const TokenKey&) = delete;
  TokenKey& operator=(const TokenKey&) = delete;
  TokenKey(TokenKey&&) noexcept;
  TokenKey& operator=(TokenKey&&) noexcept;
  ~TokenKey();

  EVP_PKEY* pkey() const;
  // The certificate on the token with the key's CKA_ID; null when none.
  X509* certificate() const;
  OSSL_LIB_CTX* libctx() const;
  const std::string& label() const;
  const Bytes& id() const;
  // "key "alice" on token "mail" (slot 3)": what errors name.
  const std::string& description() const;

  struct State;
  explicit TokenKey(std::unique_ptr<State> state);

 private:
  std::unique_ptr<State> state_;
};

// The one private key that matches the URI's object part (id, object label)
// on the session's token. Needs a logged-in session to see private keys.
// Throws Error(NotFound) / Error(Ambiguous) naming the URI and the token.
TokenKey open_private_key(const Session& session, const Uri& key_uri, KeyOptions options = {});

// The library context token keys live in: the default provider and
// tokenkit's, and nothing from the process-wide context or openssl.cnf.
OSSL_LIB_CTX* engine_libctx();

// After an OpenSSL call with a token key failed: throws the token::Error the
// provider kept (the failing C_* call, CKR_ symbol and key), else an Error of
// `kind` saying `what` failed, with OpenSSL's error queue. Clears both.
[[noreturn]] void rethrow_engine_error(const std::string& what, ErrorKind kind = ErrorKind::Token);
// Whether the provider kept a token::Error on this thread since the last clear.
bool has_engine_error();
// Forgets errors from earlier operations on this thread.
void clear_engine_error();

}  // namespace token
