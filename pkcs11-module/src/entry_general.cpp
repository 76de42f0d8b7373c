// General-purpose functions (PKCS#11 v2.40 section 5.4) and the PKCS#11 3.0
// interface functions NSS asks for first (3.0 section 5.4).
#include <pthread.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "entry_util.h"
#include "tokenkit/pkcs11-vendor.h"

namespace tk {
namespace {

// A pointer, not an object: see after_fork_child.
Mutex* g_lock = new Mutex;
Module* g_module TK_GUARDED_BY(*g_lock) = nullptr;
// The parent's lock and state as a forked child found them: kept reachable,
// never used or torn down (leak checkers would call them lost otherwise).
Mutex* g_parent_lock = nullptr;
Module* g_parent_module = nullptr;

// fork(): the parent holds the module lock and every audit writer across
// it, so that the child is not made while a thread of ours is inside SQLite
// (whose own locks the child would find held for ever).
void before_fork() TK_NO_THREAD_SAFETY_ANALYSIS {
  g_lock->lock();
  if (g_module != nullptr) g_module->lock_audit_for_fork();
}

void after_fork_parent() TK_NO_THREAD_SAFETY_ANALYSIS {
  if (g_module != nullptr) g_module->unlock_audit_after_fork();
  g_lock->unlock();
}

// In a forked child the parent's state must be neither used nor torn down
// (its SQLite connections and audit writer threads belong to the parent, its
// locks are held): set it aside, so the child's C_Initialize starts afresh.
void after_fork_child() TK_NO_THREAD_SAFETY_ANALYSIS {
  g_parent_lock = g_lock;
  g_parent_module = g_module;
  g_lock = new Mutex;
  g_module = nullptr;
}

// dlclose() and exit(): no call can be in progress, and an application
// that unloads the module without C_Finalize leaves nothing else of ours
// behind. Mail clients never call C_Finalize: the key uses still queued are
// written here, and the audit writer threads stopped before their code goes.
__attribute__((destructor)) void unload() TK_NO_THREAD_SAFETY_ANALYSIS {
  if (g_module == nullptr) {
    delete g_lock;
    g_lock = nullptr;
    return;
  }
  MutexLock lock(*g_lock);
  if (g_module != nullptr) g_module->stop_audit();
}

std::string token_dir() {
  if (const char* d = std::getenv("TOKENKIT_PKCS11_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x)
    return std::string(x) + "/tokenkit/tokens";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.local/share/tokenkit/tokens";
}

void check_init_args(const CK_C_INITIALIZE_ARGS* a) {
  if (a == nullptr) return;
  require(a->pReserved == nullptr, CKR_ARGUMENTS_BAD);
  int given = (a->CreateMutex != nullptr) + (a->DestroyMutex != nullptr) +
              (a->LockMutex != nullptr) + (a->UnlockMutex != nullptr);
  require(given == 0 || given == 4, CKR_ARGUMENTS_BAD);
  // 5.4: we lock with the OS's primitives only.
  require(given == 0 || (a->flags & CKF_OS_LOCKING_OK), CKR_CANT_LOCK);
}

// The audit writer is a thread of ours; NSS says it may not have one.
bool may_create_threads(const CK_C_INITIALIZE_ARGS* a) {
  return a == nullptr || (a->flags & CKF_LIBRARY_CANT_CREATE_OS_THREADS) == 0;
}

}  // namespace

Mutex& module_lock() TK_TSA(lock_returned(*g_lock)) { return *g_lock; }

Module& current() TK_REQUIRES(module_lock()) {
  require(g_module != nullptr, CKR_CRYPTOKI_NOT_INITIALIZED);
  return *g_module;
}

extern CK_FUNCTION_LIST function_list;

}  // namespace tk

using tk::call;
using tk::Module;

extern "C" {

CK_RV C_Initialize(CK_VOID_PTR pInitArgs) {
  static std::once_flag atfork;
  try {
    std::call_once(atfork, [] {
      pthread_atfork(tk::before_fork, tk::after_fork_parent, tk::after_fork_child);
    });
    tk::MutexLock lock(tk::module_lock());
    if (tk::g_module != nullptr) return CKR_CRYPTOKI_ALREADY_INITIALIZED;
    const auto* args = static_cast<CK_C_INITIALIZE_ARGS*>(pInitArgs);
    tk::check_init_args(args);
    tk::g_module = new Module(tk::token_dir(), tk::may_create_threads(args));
    return CKR_OK;
  } catch (const tk::Error& e) {
    return e.rv;
  } catch (const std::bad_alloc&) {
    return CKR_HOST_MEMORY;
  } catch (...) {
    return CKR_GENERAL_ERROR;
  }
}

CK_RV C_Finalize(CK_VOID_PTR pReserved) {
  if (pReserved != nullptr) return CKR_ARGUMENTS_BAD;
  tk::MutexLock lock(tk::module_lock());
  if (tk::g_module == nullptr) return CKR_CRYPTOKI_NOT_INITIALIZED;
  delete tk::g_module;  // writes queued key uses, wipes keys, closes the stores
  tk::g_module = nullptr;
  return CKR_OK;
}

CK_RV C_GetInfo(CK_INFO_PTR pInfo) {
  return call([&](Module&) {
    tk::need(pInfo);
    std::memset(pInfo, 0, sizeof *pInfo);
    pInfo->cryptokiVersion = {2, 40};
    tk::pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "tokenkit");
    tk::pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription, "tokenkit software token");
    pInfo->libraryVersion = {0, 1};
  });
}

CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
  if (ppFunctionList == nullptr) return CKR_ARGUMENTS_BAD;
  *ppFunctionList = &tk::function_list;
  return CKR_OK;
}

}  // extern "C"

namespace {

CK_UTF8CHAR kInterfaceName[] = "PKCS 11";
CK_INTERFACE kInterface = {kInterfaceName, &tk::function_list, 0};

CK_RV delete_token(CK_SLOT_ID slot, CK_UTF8CHAR_PTR so_pin, CK_ULONG so_pin_len) {
  return call([&](Module& m) { m.delete_token(slot, tk::pin_of(so_pin, so_pin_len)); });
}

TOKENKIT_FUNCTION_LIST vendor_list = {{1, 0}, delete_token};
CK_UTF8CHAR kVendorName[] = TOKENKIT_VENDOR_INTERFACE;
CK_INTERFACE kVendorInterface = {kVendorName, &vendor_list, 0};

}  // namespace

extern "C" {

CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount) {
  if (pulCount == nullptr) return CKR_ARGUMENTS_BAD;
  if (pInterfacesList == nullptr) {
    *pulCount = 1;
    return CKR_OK;
  }
  if (*pulCount < 1) {
    *pulCount = 1;
    return CKR_BUFFER_TOO_SMALL;
  }
  pInterfacesList[0] = kInterface;
  *pulCount = 1;
  return CKR_OK;
}

// We offer the standard interface, "PKCS 11" version 2.40, without
// CKF_INTERFACE_FORK_SAFE: after fork() the child must call C_Initialize.
CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                     CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags) {
  if (ppInterface == nullptr) return CKR_ARGUMENTS_BAD;
  if (pInterfaceName != nullptr &&
      std::strcmp(reinterpret_cast<const char*>(pInterfaceName), TOKENKIT_VENDOR_INTERFACE) == 0) {
    if (pVersion != nullptr && (pVersion->major != 1 || pVersion->minor != 0))
      return CKR_ARGUMENTS_BAD;
    if (flags != 0) return CKR_ARGUMENTS_BAD;
    *ppInterface = &kVendorInterface;
    return CKR_OK;
  }
  if (pInterfaceName != nullptr &&
      std::strcmp(reinterpret_cast<const char*>(pInterfaceName), "PKCS 11") != 0)
    return CKR_ARGUMENTS_BAD;
  if (pVersion != nullptr && (pVersion->major != 2 || pVersion->minor != 40))
    return CKR_ARGUMENTS_BAD;
  if ((flags & ~kInterface.flags) != 0) return CKR_ARGUMENTS_BAD;
  *ppInterface = &kInterface;
  return CKR_OK;
}

}  // extern "C"

namespace tk {

CK_FUNCTION_LIST function_list = {
    {2, 40},
    C_Initialize,
    C_Finalize,
    C_GetInfo,
    C_GetFunctionList,
    C_GetSlotList,
    C_GetSlotInfo,
    C_GetTokenInfo,
    C_GetMechanismList,
    C_GetMechanismInfo,
    C_InitToken,
    C_InitPIN,
    C_SetPIN,
    C_OpenSession,
    C_CloseSession,
    C_CloseAllSessions,
    C_GetSessionInfo,
    C_GetOperationState,
    C_SetOperationState,
    C_Login,
    C_Logout,
    C_CreateObject,
    C_CopyObject,
    C_DestroyObject,
    C_GetObjectSize,
    C_GetAttributeValue,
    C_SetAttributeValue,
    C_FindObjectsInit,
    C_FindObjects,
    C_FindObjectsFinal,
    C_EncryptInit,
    C_Encrypt,
    C_EncryptUpdate,
    C_EncryptFinal,
    C_DecryptInit,
    C_Decrypt,
    C_DecryptUpdate,
    C_DecryptFinal,
    C_DigestInit,
    C_Digest,
    C_DigestUpdate,
    C_DigestKey,
    C_DigestFinal,
    C_SignInit,
    C_Sign,
    C_SignUpdate,
    C_SignFinal,
    C_SignRecoverInit,
    C_SignRecover,
    C_VerifyInit,
    C_Verify,
    C_VerifyUpdate,
    C_VerifyFinal,
    C_VerifyRecoverInit,
    C_VerifyRecover,
    C_DigestEncryptUpdate,
    C_DecryptDigestUpdate,
    C_SignEncryptUpdate,
    C_DecryptVerifyUpdate,
    C_GenerateKey,
    C_GenerateKeyPair,
    C_WrapKey,
    C_UnwrapKey,
    C_DeriveKey,
    C_SeedRandom,
    C_GenerateRandom,
    C_GetFunctionStatus,
    C_CancelFunction,
    C_WaitForSlotEvent,
};

}  // namespace tk
