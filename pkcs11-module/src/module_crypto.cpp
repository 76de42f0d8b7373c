// Encryption, decryption, digests, signatures and verification (PKCS#11
// v2.40 sections 5.8-5.12), over the operations of the mechanism registry.
// They run under their session's lock, not the module's: C_*Init takes the
// module lock only for the key's checks and its ready EVP_PKEY (shared,
// reference counted: a logout or C_DestroyObject in another thread cannot
// free it under an operation that holds it), and the key-use record goes
// to the token's AuditLog, so that C_Sign in two sessions runs in parallel.
#include <cstring>

#include "entry_util.h"
#include "error.h"
#include "module.h"
#include "pkey.h"

namespace tk {
namespace {

struct KindRule {
  CK_FLAGS mech_flag;
  CK_OBJECT_CLASS key_class;
  CK_ATTRIBUTE_TYPE usage;
  const char* audit;  // non-null: a use of a private key, recorded
};

KindRule rule_for(OpKind k) {
  switch (k) {
    case OpKind::kEncrypt:
      return {CKF_ENCRYPT, CKO_PUBLIC_KEY, CKA_ENCRYPT, nullptr};
    case OpKind::kDecrypt:
      return {CKF_DECRYPT, CKO_PRIVATE_KEY, CKA_DECRYPT, "decrypt"};
    case OpKind::kSign:
      return {CKF_SIGN, CKO_PRIVATE_KEY, CKA_SIGN, "sign"};
    case OpKind::kVerify:
      return {CKF_VERIFY, CKO_PUBLIC_KEY, CKA_VERIFY, nullptr};
    default:
      return {CKF_DIGEST, 0, 0, nullptr};
  }
}

bool mechanism_allowed(const Object& key, CK_MECHANISM_TYPE m) {
  const Secret& list = key.get(CKA_ALLOWED_MECHANISMS);
  if (list.empty()) return true;
  for (size_t i = 0; i + sizeof(CK_MECHANISM_TYPE) <= list.size(); i += sizeof m) {
    CK_MECHANISM_TYPE t = 0;
    std::memcpy(&t, list.data() + i, sizeof t);
    if (t == m) return true;
  }
  return false;
}

// Runs `f` on an operation, ending the operation on any error but
// CKR_BUFFER_TOO_SMALL (5.2).
template <class F>
void guard_op(ActiveOp& a, F&& f) {
  try {
    f();
  } catch (const Error& e) {
    if (e.rv != CKR_BUFFER_TOO_SMALL) a = ActiveOp{};
    throw;
  } catch (...) {
    a = ActiveOp{};
    throw;
  }
}

}  // namespace

PreparedOp Module::prepare_op(Session& s, OpKind kind, const CK_MECHANISM& m,
                              CK_OBJECT_HANDLE key_handle) {
  const Mechanism& mech = mechanism(m.mechanism);
  KindRule r = rule_for(kind);
  require((mech.flags & r.mech_flag) && mech.start, CKR_MECHANISM_INVALID);
  PreparedOp p;
  p.mech = &mech;
  if (kind == OpKind::kDigest) return p;
  std::shared_ptr<Object> key;
  try {
    key = object(s, key_handle);
  } catch (const Error& e) {
    if (e.rv == CKR_OBJECT_HANDLE_INVALID) fail(CKR_KEY_HANDLE_INVALID);
    throw;
  }
  CK_OBJECT_CLASS want = mech.secret_key() ? CKO_SECRET_KEY : r.key_class;
  require(key->cls() == want && key->ulong(CKA_KEY_TYPE) == mech.key_type,
          CKR_KEY_TYPE_INCONSISTENT);
  require(key->flag(r.usage), CKR_KEY_FUNCTION_NOT_PERMITTED);
  require(mechanism_allowed(*key, m.mechanism), CKR_MECHANISM_INVALID);
  if (want == CKO_SECRET_KEY) {
    require(key->has(CKA_VALUE), CKR_USER_NOT_LOGGED_IN);
    p.key.value = key->get(CKA_VALUE);
  } else {
    p.key.pkey = pkey_of(*key);
  }
  p.slot = s.shared.get();
  p.epoch = p.slot->epoch.load();
  p.audit = r.audit;
  p.key_id = key->bytes(CKA_ID);
  p.needs_auth = key->cls() == CKO_PRIVATE_KEY && key->flag(CKA_ALWAYS_AUTHENTICATE);
  return p;
}

void Module::audit(CK_SLOT_ID slot, const Object& key, CK_MECHANISM_TYPE mech, const char* op) {
  // Only the key's CKA_ID: a private key's label is stored encrypted, and the
  // audit table is clear. The id is also its public key's and certificate's,
  // which is how `tokenkit audit` names the key.
  shared(slot)->audit.record(key.bytes(CKA_ID), mech, op);
}

void op_init(Session& s, OpKind kind, const CK_MECHANISM* m, CK_OBJECT_HANDLE key_handle) {
  ActiveOp& a = s.op(kind);
  require(!a.op, CKR_OPERATION_ACTIVE);
  require(m != nullptr, CKR_ARGUMENTS_BAD);
  PreparedOp p;
  {
    MutexLock lock(module_lock());
    Module& mod = current();
    require(mod.is_open(s), CKR_SESSION_HANDLE_INVALID);
    p = mod.prepare_op(s, kind, *m, key_handle);
  }
  ActiveOp next;
  next.op = p.mech->start(*m, kind, p.key);
  next.slot = p.slot;
  next.epoch = p.epoch;
  next.audit = p.audit;
  next.key_id = std::move(p.key_id);
  next.mech = m->mechanism;
  next.needs_auth = p.needs_auth;
  a = std::move(next);
}

void op_update(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n) {
  ActiveOp& a = s.op(kind);
  require(a.op != nullptr, CKR_OPERATION_NOT_INITIALIZED);
  guard_op(a, [&] {
    require(in != nullptr || n == 0, CKR_ARGUMENTS_BAD);
    require(!a.result, CKR_OPERATION_ACTIVE);
    require(!a.needs_auth, CKR_USER_NOT_LOGGED_IN);
    a.op->update(in, n);
  });
}

// 5.8/5.9 C_EncryptUpdate/C_DecryptUpdate: the output size is known before
// the input is taken, so a too-small buffer leaves the operation as it was.
void op_part(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n, uint8_t* out,
             CK_ULONG* out_len) {
  ActiveOp& a = s.op(kind);
  require(a.op != nullptr, CKR_OPERATION_NOT_INITIALIZED);
  guard_op(a, [&] {
    require(out_len != nullptr && (in != nullptr || n == 0), CKR_ARGUMENTS_BAD);
    require(!a.result, CKR_OPERATION_ACTIVE);
    require(!a.needs_auth, CKR_USER_NOT_LOGGED_IN);
    size_t size = a.op->part_size(n);
    if (out == nullptr) {  // a size query: the input is not taken
      *out_len = size;
      return;
    }
    if (*out_len < size) {
      *out_len = size;
      fail(CKR_BUFFER_TOO_SMALL);
    }
    Bytes part = a.op->update_out(in, n);
    if (!part.empty()) std::memcpy(out, part.data(), part.size());
    *out_len = part.size();
  });
}

void op_output(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n, bool single, uint8_t* out,
               CK_ULONG* out_len) {
  ActiveOp& a = s.op(kind);
  require(a.op != nullptr, CKR_OPERATION_NOT_INITIALIZED);
  guard_op(a, [&] {
    require(out_len != nullptr && (in != nullptr || n == 0), CKR_ARGUMENTS_BAD);
    if (!a.result) {
      // 5.2: a NULL output buffer asks for the size; the operation stays.
      if (out == nullptr) {
        *out_len = a.op->output_size(n);
        return;
      }
      // 4.9: a key with CKA_ALWAYS_AUTHENTICATE is used only after the
      // context-specific login of this operation (a size query is no use).
      require(!a.needs_auth, CKR_USER_NOT_LOGGED_IN);
      if (single) a.op->update(in, n);
      Bytes result = a.op->finish();
      // No result leaves the module unless its key use is recorded.
      if (a.audit) a.slot->audit.record(a.key_id, a.mech, a.audit);
      a.result = std::move(result);
    }
    size_t size = a.result->size();
    if (out == nullptr) {
      *out_len = size;
      return;
    }
    if (*out_len < size) {
      *out_len = size;
      fail(CKR_BUFFER_TOO_SMALL);
    }
    if (size) std::memcpy(out, a.result->data(), size);
    *out_len = size;
    a = ActiveOp{};
  });
}

void op_verify(Session& s, const uint8_t* in, CK_ULONG n, bool single, const uint8_t* sig,
               CK_ULONG sig_len) {
  ActiveOp& a = s.op(OpKind::kVerify);
  require(a.op != nullptr, CKR_OPERATION_NOT_INITIALIZED);
  guard_op(a, [&] {
    require((in != nullptr || n == 0) && (sig != nullptr || sig_len == 0), CKR_ARGUMENTS_BAD);
    if (single) a.op->update(in, n);
    a.op->verify(sig, sig_len);
  });
  a = ActiveOp{};
}

}  // namespace tk
