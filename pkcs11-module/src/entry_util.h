// What every exported function shares: the module lock, the current Module,
// and `call`, which turns every exception into a CK_RV so nothing throws
// across the C boundary.
#pragma once

#include <new>
#include <type_traits>

#include "error.h"
#include "module.h"
#include "mutex.h"

namespace tk {

// The lock guarding all module state. After fork() the child gets a fresh
// one (entry_general.cpp), as a lock held by a parent thread never opens.
Mutex& module_lock();
// The module between C_Initialize and C_Finalize, or
// CKR_CRYPTOKI_NOT_INITIALIZED. Only under the module lock.
Module& current() TK_REQUIRES(module_lock());

template <class F>
CK_RV call(F&& f) {
  try {
    MutexLock lock(module_lock());
    Module& m = current();
    if constexpr (std::is_same_v<decltype(f(m)), CK_RV>) {
      return f(m);
    } else {
      f(m);
      return CKR_OK;
    }
  } catch (const Error& e) {
    return e.rv;
  } catch (const std::bad_alloc&) {
    return CKR_HOST_MEMORY;
  } catch (...) {
    return CKR_GENERAL_ERROR;
  }
}

inline void need(const void* p) { require(p != nullptr, CKR_ARGUMENTS_BAD); }

// A NULL PIN asks for a protected authentication path, which this token
// does not have (no CKF_PROTECTED_AUTHENTICATION_PATH): refused without
// counting as a wrong PIN.
inline Secret pin_of(const CK_UTF8CHAR* pin, CK_ULONG len) {
  require(pin != nullptr, CKR_ARGUMENTS_BAD);
  return Secret(pin, pin + len);
}

}  // namespace tk
