// A PKCS#11 module that wraps a real one and fails on command, to test that
// tokenkit leaves a token as it found it when a token fails midway.
//   TOKENKIT_FAULTY_TARGET=/path/to/real.so   the module to wrap
//   TOKENKIT_FAULTY_CREATE_FAIL=N             the N-th C_CreateObject gives CKR_DEVICE_MEMORY
//   TOKENKIT_FAULTY_CORRUPT_SIGN=1            every signature comes back with a flipped byte
#include <dlfcn.h>

#include <atomic>
#include <cstdlib>

#include "token/pkcs11.hpp"

namespace {

CK_FUNCTION_LIST real{};
CK_FUNCTION_LIST wrapped{};
std::atomic<long> creates{0};

long env_long(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atol(v) : 0;
}

CK_RV create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR h) {
  long fail_at = env_long("TOKENKIT_FAULTY_CREATE_FAIL");
  if (fail_at > 0 && ++creates == fail_at) return CKR_DEVICE_MEMORY;
  return real.C_CreateObject(s, t, n, h);
}

CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len) {
  CK_RV rv = real.C_Sign(s, data, len, sig, sig_len);
  if (rv == CKR_OK && sig != nullptr && *sig_len > 0 && env_long("TOKENKIT_FAULTY_CORRUPT_SIGN")) {
    sig[*sig_len / 2] ^= 0x01;
  }
  return rv;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out) {
  if (out == nullptr) return CKR_ARGUMENTS_BAD;
  if (wrapped.C_GetFunctionList == nullptr) {
    const char* target = std::getenv("TOKENKIT_FAULTY_TARGET");
    void* h = target ? dlopen(target, RTLD_NOW | RTLD_LOCAL) : nullptr;
    if (h == nullptr) return CKR_GENERAL_ERROR;
    auto get = reinterpret_cast<CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR)>(dlsym(h, "C_GetFunctionList"));
    CK_FUNCTION_LIST* list = nullptr;
    if (get == nullptr || get(&list) != CKR_OK) return CKR_GENERAL_ERROR;
    real = *list;
    wrapped = *list;
    wrapped.C_GetFunctionList = C_GetFunctionList;
    wrapped.C_CreateObject = create_object;
    wrapped.C_Sign = sign;
  }
  *out = &wrapped;
  return CKR_OK;
}
