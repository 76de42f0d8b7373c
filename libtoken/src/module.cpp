#include "token/module.hpp"

#include <dlfcn.h>
#include <p11-kit/p11-kit.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "token/names.hpp"

namespace token {

namespace detail {

struct ModuleImpl {
  std::string path;
  std::string name;
  void* handle = nullptr;
  CK_FUNCTION_LIST* fn = nullptr;

  // Owns the C_Initialize and the dlopen handle: a copy would finalise and
  // close the module twice.
  ModuleImpl() = default;
  ModuleImpl(const ModuleImpl&) = delete;
  ModuleImpl& operator=(const ModuleImpl&) = delete;
  ModuleImpl(ModuleImpl&&) = delete;
  ModuleImpl& operator=(ModuleImpl&&) = delete;

  ~ModuleImpl() {
    if (fn != nullptr && fn->C_Finalize != nullptr) fn->C_Finalize(nullptr);
    // TOKENKIT_KEEP_MODULES keeps the code mapped so that sanitizer reports
    // about a module's memory can still be symbolised at exit.
    if (handle != nullptr && std::getenv("TOKENKIT_KEEP_MODULES") == nullptr) dlclose(handle);
  }
};

}  // namespace detail

namespace {

// One ModuleImpl per module file per process: PKCS#11 allows one
// C_Initialize per process, so a second load shares the first.
//
// The registry owns each loaded module; the Modules handed out share a
// handle (`users`) whose deleter runs Registry::release. C_Finalize and
// dlclose happen there, under the registry lock, and only when no handle is
// left: a load racing the last release either gets the module before it is
// finalised (a new handle to the same one) or opens it after the finalise
// is done, never while it runs (which gave CKR_CRYPTOKI_ALREADY_INITIALIZED).
class Registry {
 public:
  template <class Open>
  std::shared_ptr<detail::ModuleImpl> load(const std::string& key, Open open) {
    std::lock_guard lock(mutex_);
    Entry& e = entries_[key];
    if (auto users = e.users.lock()) return users;
    if (!e.impl) {
      try {
        e.impl = open();
      } catch (...) {
        entries_.erase(key);
        throw;
      }
    }
    // Not an owner: the deleter only tells the registry the users are gone.
    std::shared_ptr<detail::ModuleImpl> users(e.impl.get(),
                                              [this, key](detail::ModuleImpl*) { release(key); });
    e.users = users;
    return users;
  }

 private:
  void release(const std::string& key) {
    std::unique_ptr<detail::ModuleImpl> finalise;
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    // Gone already, or handed out again since these users went: keep it.
    if (it == entries_.end() || !it->second.users.expired()) return;
    finalise = std::move(it->second.impl);
    entries_.erase(it);
    finalise.reset();  // C_Finalize and dlclose, still under the lock
  }

  struct Entry {
    std::unique_ptr<detail::ModuleImpl> impl;
    std::weak_ptr<detail::ModuleImpl> users;
  };
  std::mutex mutex_;
  std::map<std::string, Entry> entries_;  // guarded by mutex_
};

// Never destroyed: a Module in a static object may be released after any
// other static is gone.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

std::string find_registered(const std::string& name) {
  auto mods = registered_modules();
  std::string known;
  for (const auto& m : mods) {
    if (m.name == name) return m.path;
    known += (known.empty() ? "" : ", ") + m.name;
  }
  throw Error(ErrorKind::NotFound, "no PKCS#11 module registered with p11-kit as \"" + name +
                                       "\" (registered: " + (known.empty() ? "none" : known) +
                                       "); give a path to the module instead");
}

std::unique_ptr<detail::ModuleImpl> open_module(const std::string& path, const std::string& name) {
  auto impl = std::make_unique<detail::ModuleImpl>();
  impl->path = path;
  impl->name = name;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    throw Error(ErrorKind::Module, "PKCS#11 module " + path + " does not exist");
  }
  impl->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (impl->handle == nullptr) {
    const char* why = dlerror();
    throw Error(ErrorKind::Module,
                "cannot load PKCS#11 module " + path + ": " + (why ? why : "unknown dlopen error"));
  }
  using GetFunctionList = CK_RV (*)(CK_FUNCTION_LIST_PTR_PTR);
  auto get = reinterpret_cast<GetFunctionList>(dlsym(impl->handle, "C_GetFunctionList"));
  if (get == nullptr) {
    throw Error(ErrorKind::Module,
                path + " is not a PKCS#11 module: it exports no C_GetFunctionList");
  }
  CK_RV rv = get(&impl->fn);
  if (rv != CKR_OK || impl->fn == nullptr) {
    impl->fn = nullptr;
    throw Error::from_rv("C_GetFunctionList", rv, "module " + path);
  }
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  if (impl->fn->C_Initialize == nullptr) {
    impl->fn = nullptr;
    throw Error(ErrorKind::Module, path + " is not a PKCS#11 module: no C_Initialize");
  }
  rv = impl->fn->C_Initialize(&args);
  if (rv != CKR_OK) {
    impl->fn = nullptr;  // not initialised by us: do not finalise
    throw Error::from_rv("C_Initialize", rv, "module " + path);
  }
  return impl;
}

}  // namespace

bool debug_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("TOKENKIT_DEBUG");
    return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
  }();
  return on;
}

std::vector<RegisteredModule> registered_modules() {
  std::vector<RegisteredModule> out;
  CK_FUNCTION_LIST** mods = p11_kit_modules_load(nullptr, P11_KIT_MODULE_UNMANAGED);
  if (mods == nullptr) return out;
  for (CK_FUNCTION_LIST** m = mods; *m != nullptr; ++m) {
    char* name = p11_kit_module_get_name(*m);
    char* file = p11_kit_module_get_filename(*m);
    out.push_back({name ? name : "", file ? file : ""});
    free(name);
    free(file);
  }
  p11_kit_modules_release(mods);
  return out;
}

Module Module::load(const std::string& path_or_name) {
  if (path_or_name.empty()) throw Error(ErrorKind::Usage, "no PKCS#11 module given");
  std::string path = path_or_name;
  std::string name;
  if (path_or_name.find('/') == std::string::npos) {
    name = path_or_name;
    path = find_registered(path_or_name);
  } else {
    name = std::filesystem::path(path).filename().string();
  }
  std::error_code ec;
  auto canon = std::filesystem::weakly_canonical(path, ec);
  const std::string key = ec ? path : canon.string();

  return Module(registry().load(key, [&] { return open_module(path, name); }));
}

const std::string& Module::path() const { return impl_->path; }
const std::string& Module::name() const { return impl_->name; }
CK_FUNCTION_LIST* Module::functions() const { return impl_->fn; }

void Module::missing_function(const char* fname) const {
  throw Error(ErrorKind::Module,
              std::string("PKCS#11 module ") + impl_->path + " does not provide " + fname);
}

void Module::log_call(const char* fname, CK_RV rv) const {
  if (debug_enabled()) std::fprintf(stderr, "tokenkit: %s -> %s\n", fname, rv_name(rv).c_str());
}

CK_INFO Module::info() const {
  CK_INFO info{};
  call("C_GetInfo", impl_->fn->C_GetInfo, "module " + path(), &info);
  return info;
}

std::string pkcs11_text(const unsigned char* field, std::size_t width) {
  std::string s(reinterpret_cast<const char*>(field), width);
  auto end = s.find_last_not_of(" \0", std::string::npos, 2);
  s.erase(end == std::string::npos ? 0 : end + 1);
  return s;
}

std::vector<std::string> user_pin_state(CK_FLAGS f) {
  std::vector<std::string> s;
  if (f & CKF_USER_PIN_LOCKED) s.emplace_back("locked");
  if (f & CKF_USER_PIN_FINAL_TRY) s.emplace_back("final try");
  if (f & CKF_USER_PIN_COUNT_LOW) s.emplace_back("count low");
  if (f & CKF_USER_PIN_TO_BE_CHANGED) s.emplace_back("to be changed");
  if (!(f & CKF_USER_PIN_INITIALIZED)) s.emplace_back("not initialized");
  return s;
}

std::vector<std::string> so_pin_state(CK_FLAGS f) {
  std::vector<std::string> s;
  if (f & CKF_SO_PIN_LOCKED) s.emplace_back("locked");
  if (f & CKF_SO_PIN_FINAL_TRY) s.emplace_back("final try");
  if (f & CKF_SO_PIN_COUNT_LOW) s.emplace_back("count low");
  if (f & CKF_SO_PIN_TO_BE_CHANGED) s.emplace_back("to be changed");
  return s;
}

SlotInfo Module::slot(CK_SLOT_ID id) const {
  SlotInfo s;
  s.id = id;
  const std::string ctx = "slot " + std::to_string(id) + " of module " + name();
  call("C_GetSlotInfo", impl_->fn->C_GetSlotInfo, ctx, id, &s.slot);
  if (s.slot.flags & CKF_TOKEN_PRESENT) {
    CK_RV rv = invoke("C_GetTokenInfo", impl_->fn->C_GetTokenInfo, id, &s.token);
    // A token can be pulled between the two calls; that is "no token", not an error.
    if (rv == CKR_OK) {
      s.has_token = true;
    } else if (rv != CKR_TOKEN_NOT_PRESENT && rv != CKR_TOKEN_NOT_RECOGNIZED) {
      throw Error::from_rv("C_GetTokenInfo", rv, ctx);
    }
  }
  return s;
}

std::vector<SlotInfo> Module::slots(bool with_token_only) const {
  const std::string ctx = "module " + name();
  CK_ULONG n = 0;
  call("C_GetSlotList", impl_->fn->C_GetSlotList, ctx, CK_BBOOL(with_token_only), nullptr, &n);
  std::vector<CK_SLOT_ID> ids(n);
  // The count can change between the size query and the fill (hot-plug).
  CK_RV rv;
  while ((rv = invoke("C_GetSlotList", impl_->fn->C_GetSlotList, CK_BBOOL(with_token_only),
                      ids.data(), &n)) == CKR_BUFFER_TOO_SMALL) {
    ids.resize(n);
  }
  if (rv != CKR_OK) throw Error::from_rv("C_GetSlotList", rv, ctx);
  ids.resize(n);
  std::vector<SlotInfo> out;
  for (CK_SLOT_ID id : ids) out.push_back(slot(id));
  return out;
}

std::vector<MechanismInfo> Module::mechanisms(CK_SLOT_ID id) const {
  const std::string ctx = "slot " + std::to_string(id) + " of module " + name();
  CK_ULONG n = 0;
  call("C_GetMechanismList", impl_->fn->C_GetMechanismList, ctx, id, nullptr, &n);
  std::vector<CK_MECHANISM_TYPE> types(n);
  call("C_GetMechanismList", impl_->fn->C_GetMechanismList, ctx, id, types.data(), &n);
  types.resize(n);
  std::vector<MechanismInfo> out;
  for (auto t : types) {
    MechanismInfo m;
    m.type = t;
    call("C_GetMechanismInfo", impl_->fn->C_GetMechanismInfo, ctx + " (" + mechanism_name(t) + ")",
         id, t, &m.info);
    out.push_back(m);
  }
  return out;
}

}  // namespace token
