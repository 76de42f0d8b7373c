// What every exported function shares: the module lock, the current Module,
// and `call` / `call_session`, which turn every exception into a CK_RV so
// nothing throws across the C boundary.
#pragma once

#include <memory>
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

// Runs `f`, giving its CK_RV (CKR_OK if it returns none) or the error it
// throws.
template <class F>
CK_RV guarded(F&& f) {
  try {
    if constexpr (std::is_same_v<decltype(f()), CK_RV>) {
      return f();
    } else {
      f();
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

// `f(Module&)` under the module lock.
template <class F>
CK_RV call(F&& f) {
  return guarded([&] {
    MutexLock lock(module_lock());
    return f(current());
  });
}

// Calls `f(s)`, which requires s.mu, with it held: the analysis cannot
// match a lambda's TK_REQUIRES(s.mu) to the lock taken by its caller.
template <class F>
void run_locked(Session& s, F& f) TK_REQUIRES(s.mu) TK_NO_THREAD_SAFETY_ANALYSIS {
  f(s);
}

// `f(Session&)` under the session's lock only (the cryptographic calls):
// the module lock is held just long enough to find the session.
template <class F>
CK_RV call_session(CK_SESSION_HANDLE h, F&& f) {
  return guarded([&] {
    std::shared_ptr<Session> s;
    {
      MutexLock lock(module_lock());
      s = current().session_ref(h);
    }
    MutexLock busy(s->mu);
    s->drop_stale();
    try {
      run_locked(*s, f);
    } catch (...) {
      s->drop_stale();
      throw;
    }
    s->drop_stale();  // a logout while this call ran ends its operation now
  });
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
