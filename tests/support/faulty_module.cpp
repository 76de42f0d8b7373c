// A PKCS#11 module that wraps a real one and fails on command, to test that
// tokenkit leaves a token as it found it when a token fails midway.
//   TOKENKIT_FAULTY_TARGET=/path/to/real.so   the module to wrap
//   TOKENKIT_FAULTY_CREATE_FAIL=N             the N-th C_CreateObject gives CKR_DEVICE_MEMORY
//   TOKENKIT_FAULTY_CORRUPT_SIGN=1            every signature comes back with a flipped byte
//   TOKENKIT_FAULTY_PAUSE_DIR=DIR             before the first C_CreateObject of a certificate,
//                                             create DIR/paused and wait for DIR/resume; then
//                                             call the real module (a test pulls the card out
//                                             meanwhile, so the failure is the real stack's)
//   TOKENKIT_FAULTY_KILL_AFTER_KEYGEN=LABEL   when the real C_GenerateKeyPair has made a private
//                                             key labelled LABEL, the process dies (SIGKILL)
//                                             before the call returns: a crash at a moment the
//                                             token is consistent and the caller knows nothing
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "token/pkcs11.hpp"

namespace {

CK_FUNCTION_LIST real{};
CK_FUNCTION_LIST wrapped{};
std::atomic<long> creates{0};

long env_long(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::atol(v) : 0;
}

std::atomic<bool> paused{false};

bool is_certificate(CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  for (CK_ULONG i = 0; i < n; ++i) {
    if (t[i].type == CKA_CLASS && t[i].pValue != nullptr &&
        t[i].ulValueLen == sizeof(CK_OBJECT_CLASS)) {
      return *static_cast<CK_OBJECT_CLASS*>(t[i].pValue) == CKO_CERTIFICATE;
    }
  }
  return false;
}

// Waits (at most ten minutes, so a broken test cannot hang a run for ever)
// for the test to say go on.
void pause_before_certificate(CK_ATTRIBUTE_PTR t, CK_ULONG n) {
  const char* dir = std::getenv("TOKENKIT_FAULTY_PAUSE_DIR");
  if (dir == nullptr || !is_certificate(t, n) || paused.exchange(true)) return;
  const std::string d(dir);
  int fd = ::open((d + "/paused").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd >= 0) ::close(fd);
  for (int i = 0; i < 30000 && ::access((d + "/resume").c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

CK_RV create_object(CK_SESSION_HANDLE s, CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR h) {
  pause_before_certificate(t, n);
  long fail_at = env_long("TOKENKIT_FAULTY_CREATE_FAIL");
  if (fail_at > 0 && ++creates == fail_at) return CKR_DEVICE_MEMORY;
  return real.C_CreateObject(s, t, n, h);
}

bool has_label(CK_ATTRIBUTE_PTR t, CK_ULONG n, const std::string& label) {
  for (CK_ULONG i = 0; i < n; ++i) {
    if (t[i].type == CKA_LABEL && t[i].pValue != nullptr) {
      return std::string(static_cast<const char*>(t[i].pValue), t[i].ulValueLen) == label;
    }
  }
  return false;
}

CK_RV generate_key_pair(CK_SESSION_HANDLE s, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pub,
                        CK_ULONG npub, CK_ATTRIBUTE_PTR priv, CK_ULONG npriv,
                        CK_OBJECT_HANDLE_PTR hpub, CK_OBJECT_HANDLE_PTR hpriv) {
  CK_RV rv = real.C_GenerateKeyPair(s, m, pub, npub, priv, npriv, hpub, hpriv);
  const char* label = std::getenv("TOKENKIT_FAULTY_KILL_AFTER_KEYGEN");
  if (rv == CKR_OK && label != nullptr && has_label(priv, npriv, label)) ::raise(SIGKILL);
  return rv;
}

CK_RV sign(CK_SESSION_HANDLE s, CK_BYTE_PTR data, CK_ULONG len, CK_BYTE_PTR sig,
           CK_ULONG_PTR sig_len) {
  CK_RV rv = real.C_Sign(s, data, len, sig, sig_len);
  if (rv == CKR_OK && sig != nullptr && *sig_len > 0 && env_long("TOKENKIT_FAULTY_CORRUPT_SIGN")) {
    sig[*sig_len / 2] ^= 0x01;
  }
  return rv;
}

}  // namespace

extern "C" __attribute__((visibility("default"))) CK_RV C_GetFunctionList(
    CK_FUNCTION_LIST_PTR_PTR out) {
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
    wrapped.C_GenerateKeyPair = generate_key_pair;
  }
  *out = &wrapped;
  return CKR_OK;
}
