// What the module's fuzz targets share: tokenkit-pkcs11.so loaded once per
// process (dlopen, as applications load it) over a private temporary token
// directory, with the PBKDF2 cost lowered as in the tests.
#pragma once

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>

#include <cstdio>
#include <string>

#include "fuzz_check.hpp"

namespace fuzz_module {

struct Loaded {
  CK_FUNCTION_LIST* p11 = nullptr;
  std::string dir;
};

inline Loaded load() {
  Loaded l;
  char tmpl[] = "/tmp/tokenkit-fuzz-XXXXXX";
  FUZZ_CHECK(mkdtemp(tmpl) != nullptr);
  l.dir = tmpl;
  setenv("TOKENKIT_PKCS11_DIR", l.dir.c_str(), 1);
  setenv("TOKENKIT_KDF_ITERATIONS", "1", 1);
  void* so = dlopen(TOKENKIT_MODULE_PATH, RTLD_NOW | RTLD_LOCAL);
  if (!so) std::fprintf(stderr, "%s\n", dlerror());
  FUZZ_CHECK(so != nullptr);
  auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(so, "C_GetFunctionList"));
  FUZZ_CHECK(get != nullptr && get(&l.p11) == CKR_OK);
  return l;
}

inline CK_UTF8CHAR_PTR utf8(const char* s) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s));
}

}  // namespace fuzz_module
