#include "token/session.hpp"

#include <utility>

namespace token {

namespace {
bool is_refusal(CK_RV rv) {
  return rv == CKR_ATTRIBUTE_SENSITIVE || rv == CKR_ATTRIBUTE_TYPE_INVALID;
}
}  // namespace

Session::Session(Module module, CK_SLOT_ID slot, bool read_write)
    : module_(std::move(module)), slot_(slot) {
  SlotInfo s = module_.slot(slot);
  context_ = s.has_token ? "token \"" + pkcs11_text(s.token.label) + "\" (slot " +
                               std::to_string(slot) + ")"
                         : "slot " + std::to_string(slot);
  CK_FLAGS flags = CKF_SERIAL_SESSION | (read_write ? CKF_RW_SESSION : 0);
  module_.call("C_OpenSession", module_.functions()->C_OpenSession, context_, slot, flags,
               nullptr, nullptr, &handle_);
}

Session::~Session() {
  if (handle_ != CK_INVALID_HANDLE) {
    module_.invoke("C_CloseSession", module_.functions()->C_CloseSession, handle_);
  }
}

Session::Session(Session&& other) noexcept
    // Copied, not moved: a moved-from Session keeps a usable module().
    : module_(other.module_),  // NOLINT(performance-move-constructor-init,cert-oop11-cpp)
      slot_(other.slot_),
      handle_(std::exchange(other.handle_, CK_INVALID_HANDLE)),
      context_(std::move(other.context_)) {}

void Session::login(const Secret& pin, CK_USER_TYPE user) {
  CK_RV rv = module_.invoke(
      "C_Login", module_.functions()->C_Login, handle_, user,
      reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
      static_cast<CK_ULONG>(pin.size()));
  if (rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN) return;
  throw Error::from_rv("C_Login", rv, context_);
}

void Session::logout() {
  CK_RV rv = module_.invoke("C_Logout", module_.functions()->C_Logout, handle_);
  if (rv != CKR_OK && rv != CKR_USER_NOT_LOGGED_IN) throw Error::from_rv("C_Logout", rv, context_);
}

CK_SESSION_INFO Session::info() const {
  CK_SESSION_INFO i{};
  module_.call("C_GetSessionInfo", module_.functions()->C_GetSessionInfo, context_, handle_, &i);
  return i;
}

std::vector<CK_OBJECT_HANDLE> Session::find(AttributeTemplate& match) const {
  auto* f = module_.functions();
  module_.call("C_FindObjectsInit", f->C_FindObjectsInit, context_, handle_, match.data(),
               match.size());
  std::vector<CK_OBJECT_HANDLE> out;
  CK_RV rv = CKR_OK;
  for (;;) {
    CK_OBJECT_HANDLE batch[64];
    CK_ULONG n = 0;
    rv = module_.invoke("C_FindObjects", f->C_FindObjects, handle_, batch, CK_ULONG(64), &n);
    if (rv != CKR_OK || n == 0) break;
    out.insert(out.end(), batch, batch + n);
  }
  CK_RV final_rv = module_.invoke("C_FindObjectsFinal", f->C_FindObjectsFinal, handle_);
  if (rv != CKR_OK) throw Error::from_rv("C_FindObjects", rv, context_);
  if (final_rv != CKR_OK) throw Error::from_rv("C_FindObjectsFinal", final_rv, context_);
  return out;
}

bool Session::read_batch(CK_OBJECT_HANDLE object, std::span<const CK_ATTRIBUTE_TYPE> types,
                         AttributeValues& out) const {
  auto* f = module_.functions();
  std::vector<CK_ATTRIBUTE> attrs;
  for (auto t : types) attrs.push_back({t, nullptr, 0});
  CK_RV rv = module_.invoke("C_GetAttributeValue", f->C_GetAttributeValue, handle_, object,
                            attrs.data(), static_cast<CK_ULONG>(attrs.size()));
  if (rv != CKR_OK && !is_refusal(rv)) throw Error::from_rv("C_GetAttributeValue", rv, context_);
  std::vector<Bytes> buffers(attrs.size());
  for (std::size_t i = 0; i < attrs.size(); ++i) {
    if (attrs[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) {
      attrs[i].ulValueLen = 0;
      continue;
    }
    buffers[i].resize(attrs[i].ulValueLen);
    attrs[i].pValue = buffers[i].empty() ? nullptr : buffers[i].data();
  }
  rv = module_.invoke("C_GetAttributeValue", f->C_GetAttributeValue, handle_, object,
                      attrs.data(), static_cast<CK_ULONG>(attrs.size()));
  if (rv != CKR_OK) {
    if (is_refusal(rv)) return false;  // some tokens stop at the first refusal
    throw Error::from_rv("C_GetAttributeValue", rv, context_);
  }
  for (std::size_t i = 0; i < attrs.size(); ++i) {
    if (attrs[i].ulValueLen == CK_UNAVAILABLE_INFORMATION) continue;
    if (attrs[i].pValue == nullptr && attrs[i].ulValueLen != 0) continue;
    buffers[i].resize(attrs[i].ulValueLen);
    out.set(attrs[i].type, std::move(buffers[i]));
  }
  return true;
}

AttributeValues Session::read(CK_OBJECT_HANDLE object,
                              std::span<const CK_ATTRIBUTE_TYPE> types) const {
  AttributeValues out;
  if (read_batch(object, types, out)) return out;
  out = AttributeValues();
  for (auto t : types) read_batch(object, std::span(&t, 1), out);
  return out;
}

LoginGuard::LoginGuard(Session& session, const Secret& pin, CK_USER_TYPE user)
    : session_(session) {
  session_.login(pin, user);
}

LoginGuard::~LoginGuard() {
  try {
    session_.logout();
  } catch (...) {
    // Nothing to do: a failed logout leaves the token as the next login finds it.
  }
}

}  // namespace token
