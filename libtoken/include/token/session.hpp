// A session on a token. Closing it does not log out: login state belongs to
// the application and the token (PKCS#11 2.40 section 5.6: logging out of one
// session logs out all of the application's sessions on that token).
#pragma once

#include <span>
#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/module.hpp"
#include "token/secret.hpp"

namespace token {

class Session {
 public:
  Session(Module module, CK_SLOT_ID slot, bool read_write = false);
  ~Session();
  Session(Session&& other) noexcept;
  Session& operator=(Session&&) = delete;
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  const Module& module() const { return module_; }
  CK_SLOT_ID slot() const { return slot_; }
  CK_SESSION_HANDLE handle() const { return handle_; }
  // "token "alice" (slot 3)": what error messages name.
  const std::string& context() const { return context_; }

  // Logs in; "already logged in" counts as success. Throws Error with
  // kind PinIncorrect / PinLocked on those results.
  void login(const Secret& pin, CK_USER_TYPE user = CKU_USER);
  void logout();
  CK_SESSION_INFO info() const;

  // Every object matching the template: C_FindObjects is called until it
  // returns none, and C_FindObjectsFinal always closes the search.
  std::vector<CK_OBJECT_HANDLE> find(AttributeTemplate& match) const;

  // Reads attributes, tolerating tokens that refuse some of them: on
  // CKR_ATTRIBUTE_SENSITIVE or CKR_ATTRIBUTE_TYPE_INVALID for the batch it
  // retries one attribute at a time and leaves the refused ones absent.
  AttributeValues read(CK_OBJECT_HANDLE object, std::span<const CK_ATTRIBUTE_TYPE> types) const;

 private:
  bool read_batch(CK_OBJECT_HANDLE object, std::span<const CK_ATTRIBUTE_TYPE> types,
                  AttributeValues& out) const;
  Module module_;
  CK_SLOT_ID slot_;
  CK_SESSION_HANDLE handle_ = CK_INVALID_HANDLE;
  std::string context_;
};

// An explicit login the application owns: logs out when it goes away.
class LoginGuard {
 public:
  LoginGuard(Session& session, const Secret& pin, CK_USER_TYPE user = CKU_USER);
  ~LoginGuard();
  LoginGuard(const LoginGuard&) = delete;
  LoginGuard& operator=(const LoginGuard&) = delete;

 private:
  Session& session_;
};

}  // namespace token
