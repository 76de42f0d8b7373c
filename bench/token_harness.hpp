// The bench's PKCS#11 harness: a module loaded with dlopen() and
// initialised with a fresh token of its own (SoftHSM2 or tokenkit-pkcs11.so
// in a temporary directory), attribute templates, a temporary directory,
// and CK_RV checks that throw. Header-only; used by tokenkit_bench.cpp.
#pragma once

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;
using Bytes = std::vector<unsigned char>;

inline const char* kSoPin = "bench-so-pin";
inline const char* kUserPin = "bench-user-pin";

[[noreturn]] inline void fail(const std::string& what, CK_RV rv) {
  char buf[32];
  std::snprintf(buf, sizeof buf, " failed: 0x%lx", static_cast<unsigned long>(rv));
  throw std::runtime_error(what + buf);
}

inline void ck(CK_RV rv, const char* what) {
  if (rv != CKR_OK) fail(what, rv);
}

// A temporary directory, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    std::string t = (std::filesystem::temp_directory_path() / "tokenkit-bench-XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    path = t;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

// Owned attribute values.
struct Template {
  std::vector<CK_ATTRIBUTE> attrs;
  std::vector<Bytes> values;
  Template& add(CK_ATTRIBUTE_TYPE t, const void* p, size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    values.emplace_back(b, b + n);
    attrs.push_back({t, nullptr, static_cast<CK_ULONG>(n)});
    return *this;
  }
  Template& ulong(CK_ATTRIBUTE_TYPE t, CK_ULONG v) { return add(t, &v, sizeof v); }
  Template& flag(CK_ATTRIBUTE_TYPE t, bool v) {
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    return add(t, &b, 1);
  }
  Template& text(CK_ATTRIBUTE_TYPE t, const std::string& s) { return add(t, s.data(), s.size()); }
  CK_ATTRIBUTE* data() {
    for (size_t i = 0; i < attrs.size(); ++i) attrs[i].pValue = values[i].data();
    return attrs.data();
  }
  CK_ULONG size() const { return static_cast<CK_ULONG>(attrs.size()); }
};

// One PKCS#11 module, loaded and initialised with a fresh token of its own.
class Token {
 public:
  Token(std::string name, const std::string& path, const std::string& dir)
      : name_(std::move(name)) {
    if (name_ == "SoftHSM2") {
      std::string conf = dir + "/softhsm2.conf";
      std::filesystem::create_directories(dir + "/tokens");
      std::ofstream(conf) << "directories.tokendir = " << dir
                          << "/tokens\nobjectstore.backend = file\nlog.level = ERROR\n"
                          << "library.reset_on_fork = true\n";  // the writer process
      setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    } else {
      setenv("TOKENKIT_PKCS11_DIR", dir.c_str(), 1);
    }
    so_ = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!so_) throw std::runtime_error("cannot load " + path + ": " + dlerror());
    auto get = reinterpret_cast<CK_C_GetFunctionList>(dlsym(so_, "C_GetFunctionList"));
    if (!get) throw std::runtime_error(path + " has no C_GetFunctionList");
    ck(get(&f), "C_GetFunctionList");
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    ck(f->C_Initialize(&args), "C_Initialize");
    init_token();
  }
  ~Token() {
    f->C_Finalize(nullptr);
    dlclose(so_);
  }
  Token(const Token&) = delete;
  Token& operator=(const Token&) = delete;

  const std::string& name() const { return name_; }
  CK_SLOT_ID slot() const { return slot_; }
  CK_SESSION_HANDLE open() const {
    CK_SESSION_HANDLE s = 0;
    ck(f->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s),
       "C_OpenSession");
    return s;
  }
  CK_FUNCTION_LIST* f = nullptr;

 private:
  void init_token() {
    CK_ULONG n = 0;
    ck(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    std::vector<CK_SLOT_ID> slots(n);
    ck(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    CK_UTF8CHAR label[32];
    std::memset(label, ' ', sizeof label);
    std::memcpy(label, "bench", 5);
    bool done = false;
    for (CK_ULONG i = 0; i < n && !done; ++i) {
      CK_TOKEN_INFO ti;
      ck(f->C_GetTokenInfo(slots[i], &ti), "C_GetTokenInfo");
      if (ti.flags & CKF_TOKEN_INITIALIZED) continue;
      ck(f->C_InitToken(slots[i], reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kSoPin)),
                        std::strlen(kSoPin), label),
         "C_InitToken");
      done = true;
    }
    if (!done) throw std::runtime_error(name_ + ": no free slot");
    // SoftHSM2 renumbers the slot after C_InitToken: find it by label.
    ck(f->C_GetSlotList(CK_TRUE, nullptr, &n), "C_GetSlotList");
    slots.resize(n);
    ck(f->C_GetSlotList(CK_TRUE, slots.data(), &n), "C_GetSlotList");
    for (CK_ULONG i = 0; i < n; ++i) {
      CK_TOKEN_INFO ti;
      ck(f->C_GetTokenInfo(slots[i], &ti), "C_GetTokenInfo");
      if (std::memcmp(ti.label, label, sizeof label) == 0) slot_ = slots[i];
    }
    CK_SESSION_HANDLE s = open();
    ck(f->C_Login(s, CKU_SO, pin(kSoPin), std::strlen(kSoPin)), "C_Login(SO)");
    ck(f->C_InitPIN(s, pin(kUserPin), std::strlen(kUserPin)), "C_InitPIN");
    ck(f->C_Logout(s), "C_Logout");
    ck(f->C_CloseSession(s), "C_CloseSession");
  }

 public:
  static CK_UTF8CHAR_PTR pin(const char* p) {
    return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(p));
  }

 private:
  std::string name_;
  void* so_ = nullptr;
  CK_SLOT_ID slot_ = 0;
};

}  // namespace bench
