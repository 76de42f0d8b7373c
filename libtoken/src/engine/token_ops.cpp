// The PKCS#11 side of the engine: every private operation on a token key.
#include <openssl/err.h>

#include <array>

#include "internal.hpp"
#include "token/names.hpp"

namespace token::engine {

namespace {
thread_local std::optional<Error> kept;

std::string mech_context(const std::string& key, const std::string& what) {
  return key + " (" + what + ")";
}
}  // namespace

void keep_error(const Error& e) {
  kept = e;
  ERR_raise_data(ERR_LIB_USER, ERR_R_OPERATION_FAIL, "%s", e.what());
}

TokenOps::TokenOps(std::shared_ptr<Session> session, CK_OBJECT_HANDLE handle,
                   std::string description, bool always_authenticate,
                   std::function<Secret()> context_pin)
    : session_(std::move(session)),
      handle_(handle),
      description_(std::move(description)),
      always_authenticate_(always_authenticate),
      context_pin_(std::move(context_pin)) {
  for (const auto& m : module().mechanisms(session_->slot())) mechanisms_.insert(m.type);
}

void TokenOps::require(CK_MECHANISM_TYPE m, const std::string& purpose) const {
  if (mechanisms_.count(m)) return;
  throw Error(ErrorKind::Token, session_->context() + " does not support " + mechanism_name(m) +
                                    ", needed for " + purpose + " with " + description_);
}

// PKCS#11 2.40 section 4.9: "CKA_ALWAYS_AUTHENTICATE ... the user has to
// supply the PIN for each use (sign or decrypt) with the key", by C_Login
// with CKU_CONTEXT_SPECIFIC right after the C_*Init.
void TokenOps::context_login(const std::string& context) {
  if (!always_authenticate_) return;
  if (!context_pin_) {
    throw Error(ErrorKind::Usage, description_ +
                                      " needs its PIN for every use "
                                      "(CKA_ALWAYS_AUTHENTICATE) and no PIN source was given");
  }
  Secret pin = context_pin_();
  module().call("C_Login", module().functions()->C_Login, context, session_->handle(),
                CK_USER_TYPE(CKU_CONTEXT_SPECIFIC),
                reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(pin.data())),
                static_cast<CK_ULONG>(pin.size()));
}

// One single-part operation (C_SignInit + C_Sign, C_DecryptInit +
// C_Decrypt): the same call pattern, the same context login, the same way
// to end it when that login fails.
Bytes TokenOps::single_part(const Step& init, const Step& run, CK_MECHANISM& mech,
                            const unsigned char* in, std::size_t len, const std::string& what) {
  std::lock_guard lock(mutex_);
  const std::string ctx = mech_context(description_, what);
  const auto h = session_->handle();
  module().call(init.name, init.init, ctx, h, &mech, handle_);
  auto* data = const_cast<unsigned char*>(in);
  try {
    context_login(ctx);
  } catch (...) {
    // PKCS#11 2.40 has no way to cancel an operation, but a single-part call
    // that fails ends it (section 5.12): without the context login it fails,
    // and the session is free for the next operation.
    Bytes scratch(8192);
    CK_ULONG n = scratch.size();
    module().invoke(run.name, run.run, h, data, CK_ULONG(len), scratch.data(), &n);
    wipe(scratch.data(), scratch.size());
    throw;
  }
  CK_ULONG n = 0;
  module().call(run.name, run.run, ctx, h, data, CK_ULONG(len), nullptr, &n);
  Bytes out(n);
  module().call(run.name, run.run, ctx, h, data, CK_ULONG(len), out.data(), &n);
  out.resize(n);
  return out;
}

Bytes TokenOps::sign(CK_MECHANISM& mech, const unsigned char* in, std::size_t len,
                     const std::string& what) {
  auto* f = module().functions();
  return single_part({"C_SignInit", f->C_SignInit, nullptr}, {"C_Sign", nullptr, f->C_Sign}, mech,
                     in, len, what);
}

Bytes TokenOps::decrypt(CK_MECHANISM& mech, const unsigned char* in, std::size_t len,
                        const std::string& what) {
  auto* f = module().functions();
  return single_part({"C_DecryptInit", f->C_DecryptInit, nullptr},
                     {"C_Decrypt", nullptr, f->C_Decrypt}, mech, in, len, what);
}

Bytes TokenOps::derive_ecdh(const Bytes& peer_point, std::size_t secret_len) {
  require(CKM_ECDH1_DERIVE, "ECDH key agreement");
  std::lock_guard lock(mutex_);
  auto* f = module().functions();
  const std::string ctx = mech_context(description_, "ECDH");
  CK_ECDH1_DERIVE_PARAMS params{CKD_NULL, 0, nullptr, CK_ULONG(peer_point.size()),
                                const_cast<unsigned char*>(peer_point.data())};
  CK_MECHANISM mech{CKM_ECDH1_DERIVE, &params, sizeof params};
  // A session object the host may read: the shared secret is not the
  // private key, and CMS needs it on the host for its KDF.
  AttributeTemplate t;
  t.add(CKA_CLASS, CK_ULONG(CKO_SECRET_KEY))
      .add(CKA_KEY_TYPE, CK_ULONG(CKK_GENERIC_SECRET))
      .add(CKA_VALUE_LEN, CK_ULONG(secret_len))
      .add_bool(CKA_TOKEN, false)
      .add_bool(CKA_SENSITIVE, false)
      .add_bool(CKA_EXTRACTABLE, true);
  CK_OBJECT_HANDLE secret = CK_INVALID_HANDLE;
  const auto h = session_->handle();
  module().call("C_DeriveKey", f->C_DeriveKey, ctx, h, &mech, handle_, t.data(), t.size(), &secret);
  // The derived object goes away whatever happens next.
  struct Destroy {  // NOLINT(cppcoreguidelines-special-member-functions): a scope guard, never
                    // copied
    TokenOps* self;
    CK_OBJECT_HANDLE obj;
    ~Destroy() {
      self->module().invoke("C_DestroyObject", self->module().functions()->C_DestroyObject,
                            self->session_->handle(), obj);
    }
  } destroy{this, secret};
  const CK_ATTRIBUTE_TYPE value[] = {CKA_VALUE};
  AttributeValues v = session_->read(secret, value);
  const Bytes* z = v.bytes(CKA_VALUE);
  if (z == nullptr || z->size() != secret_len) {
    throw Error(ErrorKind::Token, "C_DeriveKey on " + ctx + " gave no readable shared secret of " +
                                      std::to_string(secret_len) + " bytes");
  }
  return *z;
}

}  // namespace token::engine

namespace token {

bool has_engine_error() { return engine::kept.has_value(); }

void clear_engine_error() {
  engine::kept.reset();
  ERR_clear_error();
}

void rethrow_engine_error(const std::string& what, ErrorKind kind) {
  if (engine::kept) {
    Error e = std::move(*engine::kept);
    clear_engine_error();
    throw e;  // NOLINT(cert-err09-cpp,cert-err61-cpp): the kept error, moved out before clearing
  }
  std::string detail;
  const char* data = nullptr;
  int flags = 0;
  while (unsigned long code = ERR_get_error_all(nullptr, nullptr, nullptr, &data, &flags)) {
    const char* reason = ERR_reason_error_string(code);
    std::string one = reason ? reason : "OpenSSL error " + std::to_string(ERR_GET_REASON(code));
    if (data && *data && (flags & ERR_TXT_STRING)) one += std::string(" (") + data + ")";
    detail += (detail.empty() ? "" : "; ") + one;
  }
  throw Error(kind, what + (detail.empty() ? "" : ": " + detail));
}

}  // namespace token
