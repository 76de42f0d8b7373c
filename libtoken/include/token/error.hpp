// The one error type of libtoken: what kind of failure, the CK_RV if a
// PKCS#11 call failed, the operation, and a message that names the object.
#pragma once

#include <stdexcept>
#include <string>

#include "token/pkcs11.hpp"

namespace token {

// Each kind maps to one documented exit code of the tokenkit command
// (docs/exit-codes.md); keep the two in step.
enum class ErrorKind {
  Usage = 2,         // bad options or arguments
  NotFound = 3,      // no module, token or object matches
  Ambiguous = 4,     // several tokens or objects match where one is needed
  PinIncorrect = 5,  // CKR_PIN_INCORRECT
  PinLocked = 6,     // CKR_PIN_LOCKED
  Token = 7,         // any other failing PKCS#11 call
  Module = 8,        // a module that cannot be loaded or is not PKCS#11
  Io = 9,            // a file that cannot be read or written
  Input = 10,        // malformed input: URI, PIN file, certificate, ...
  PasswordIncorrect = 11,  // a file's password (PKCS#12) is wrong
  Verification = 12,       // a check failed: key does not match, test signature fails
  Conflict = 13,           // the token already holds a different object where one would go
  Directory = 14,          // a directory (LDAP) cannot be reached, refuses, or does not answer in time
  Internal = 70,     // a bug in tokenkit
};

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, CK_RV rv = CKR_OK, std::string operation = {});

  // "C_Login on token "alice": CKR_PIN_INCORRECT (0xa0)"; context may be empty.
  static Error from_rv(const std::string& call, CK_RV rv, const std::string& context);

  ErrorKind kind() const noexcept { return kind_; }
  CK_RV rv() const noexcept { return rv_; }
  const std::string& operation() const noexcept { return operation_; }
  int exit_code() const noexcept { return static_cast<int>(kind_); }

 private:
  ErrorKind kind_;
  CK_RV rv_;
  std::string operation_;
};

// The kind a failing CK_RV belongs to.
ErrorKind kind_for_rv(CK_RV rv);

}  // namespace token
