// A loaded PKCS#11 module: dlopen'ed by path, or by the name p11-kit
// registers it under, initialised with OS locking, finalised when the last
// Module (or Session) using it goes away.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "token/error.hpp"
#include "token/pkcs11.hpp"

namespace token {

namespace detail {
struct ModuleImpl;
}

// A module p11-kit knows of (its system or user configuration).
struct RegisteredModule {
  std::string name;
  std::string path;
};

// The modules registered with p11-kit, by name. Does not initialise them.
std::vector<RegisteredModule> registered_modules();

struct SlotInfo {
  CK_SLOT_ID id = 0;
  CK_SLOT_INFO slot{};
  bool has_token = false;
  CK_TOKEN_INFO token{};
};

struct MechanismInfo {
  CK_MECHANISM_TYPE type = 0;
  CK_MECHANISM_INFO info{};
};

// Space-padded fixed-width PKCS#11 text fields as trimmed strings.
std::string pkcs11_text(const unsigned char* field, std::size_t width);
template <std::size_t N>
std::string pkcs11_text(const unsigned char (&field)[N]) {
  return pkcs11_text(field, N);
}

// "count low", "final try", "locked", "to be changed" for the user PIN flags
// of a token; empty when none applies.
std::vector<std::string> user_pin_state(CK_FLAGS token_flags);
std::vector<std::string> so_pin_state(CK_FLAGS token_flags);

class Module {
 public:
  // path_or_name: a path (it contains '/'), or a p11-kit module name.
  static Module load(const std::string& path_or_name);

  const std::string& path() const;
  // p11-kit's name, or the file name for a module loaded by path.
  const std::string& name() const;
  CK_FUNCTION_LIST* functions() const;
  CK_INFO info() const;

  // Slots, with their token's information where a token is present.
  std::vector<SlotInfo> slots(bool with_token_only = false) const;
  SlotInfo slot(CK_SLOT_ID id) const;
  std::vector<MechanismInfo> mechanisms(CK_SLOT_ID slot) const;

  // Calls a function of the module through the one checked path: a missing
  // function is an error naming it, the call is logged (name and result
  // only; arguments can hold PINs), and a failing CK_RV becomes an Error
  // naming the call, the CKR_ symbol and the context.
  template <class Fn, class... Args>
  void call(const char* name, Fn fn, const std::string& context, Args... args) const {
    CK_RV rv = invoke(name, fn, args...);
    if (rv != CKR_OK) throw Error::from_rv(name, rv, context);
  }
  // As call(), but hands back the CK_RV for the caller to judge.
  template <class Fn, class... Args>
  CK_RV invoke(const char* name, Fn fn, Args... args) const {
    if (fn == nullptr) missing_function(name);
    CK_RV rv = fn(args...);
    log_call(name, rv);
    return rv;
  }

  std::shared_ptr<detail::ModuleImpl> impl() const { return impl_; }

 private:
  explicit Module(std::shared_ptr<detail::ModuleImpl> impl) : impl_(std::move(impl)) {}
  [[noreturn]] void missing_function(const char* name) const;
  void log_call(const char* name, CK_RV rv) const;
  std::shared_ptr<detail::ModuleImpl> impl_;
};

// Debug logging of PKCS#11 calls to stderr, when TOKENKIT_DEBUG is set.
bool debug_enabled();

}  // namespace token
