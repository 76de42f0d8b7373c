// The module's state between C_Initialize and C_Finalize: slots (tokens),
// sessions, object handles and operations in progress. Plain C++; the entry
// shims (entry_*.cpp) call it under the module lock, but for the
// cryptographic calls (module_crypto.cpp), which run under their session's
// lock and take the module lock only to look up a key.
#pragma once

#include <array>
#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "audit.h"
#include "mechanism.h"
#include "mutex.h"
#include "token.h"

namespace tk {

// What an operation in progress needs of its slot without the module lock:
// the key-access record, and the login epoch, which each logout of the
// token advances. An operation started in an earlier epoch is over (5.6:
// logging out ends the operations of the token's sessions).
struct SlotShared {
  SlotShared(std::string path, bool threads) : audit(std::move(path), threads) {}
  std::atomic<uint64_t> epoch{0};
  AuditLog audit;
};

// One operation slot of a session. `result` keeps an output computed for a
// call whose buffer was too small, for the retry (5.2: "CKR_BUFFER_TOO_SMALL
// ... the operation remains active").
struct ActiveOp {
  std::unique_ptr<Operation> op;
  std::optional<Bytes> result;
  // The session's (Session::shared, alive as long as the session); null for
  // digests. A plain pointer: no reference count shared by every signer.
  SlotShared* slot = nullptr;
  uint64_t epoch = 0;
  // A use of a private or secret key is recorded as `audit` (non-null) of
  // the key with CKA_ID `key_id`, taken at C_*Init.
  const char* audit = nullptr;
  Bytes key_id;
  CK_MECHANISM_TYPE mech = 0;
  // The key has CKA_ALWAYS_AUTHENTICATE and this operation has not had its
  // C_Login(CKU_CONTEXT_SPECIFIC) yet (4.9, 5.6).
  bool needs_auth = false;
  // Ended by a logout since it began.
  bool stale() const { return op && slot && slot->epoch.load() != epoch; }
};

struct FindOp {
  bool active = false;
  std::vector<CK_OBJECT_HANDLE> found;
  size_t next = 0;
};

struct Session {
  Session(CK_SESSION_HANDLE h, CK_SLOT_ID s, bool w, std::shared_ptr<SlotShared> sh)
      : handle(h), slot(s), rw(w), shared(std::move(sh)) {}
  const CK_SESSION_HANDLE handle;
  const CK_SLOT_ID slot;
  const bool rw;
  // The slot's audit record and login epoch, for operations to reach
  // without the module lock.
  const std::shared_ptr<SlotShared> shared;
  // Held for the whole of a cryptographic call on the session, so that
  // calls in different sessions run in parallel, and an application that
  // uses one session from two threads at once (which 6.7.7 forbids) has
  // its calls run one after the other. Taken before the module lock.
  Mutex mu;
  std::array<ActiveOp, static_cast<size_t>(OpKind::kCount)> ops TK_GUARDED_BY(mu);
  FindOp find;  // under the module lock
  ActiveOp& op(OpKind k) TK_REQUIRES(mu) { return ops[static_cast<size_t>(k)]; }
  // Ends the operations a logout has ended.
  void drop_stale() TK_REQUIRES(mu) {
    for (auto& a : ops)
      if (a.stale()) a = ActiveOp{};
  }
};

// What C_*Init learns about its key under the module lock, for the
// operation to start outside it.
struct PreparedOp {
  const Mechanism* mech = nullptr;
  KeyRef key;
  SlotShared* slot = nullptr;
  uint64_t epoch = 0;
  const char* audit = nullptr;
  Bytes key_id;
  bool needs_auth = false;
};

// Where an object handle points: a token object by uid, or a session object.
struct HandleTarget {
  CK_SLOT_ID slot;
  int64_t uid;
  std::shared_ptr<Object> session_object;
};

class Module {
 public:
  // `threads`: whether the module may start threads of its own (the
  // audit writer); not when the application said
  // CKF_LIBRARY_CANT_CREATE_OS_THREADS.
  explicit Module(std::string dir, bool threads = true);

  // 5.5 slot and token management
  std::vector<CK_SLOT_ID> slot_list();
  void slot_info(CK_SLOT_ID id, CK_SLOT_INFO* info);
  void token_info(CK_SLOT_ID id, CK_TOKEN_INFO* info);
  void init_token(CK_SLOT_ID id, const Secret& so_pin, const Bytes& label);
  // The vendor interface's C_DeleteToken (include/tokenkit/pkcs11-vendor.h).
  void delete_token(CK_SLOT_ID id, const Secret& so_pin);
  void init_pin(CK_SESSION_HANDLE h, const Secret& pin);
  void set_pin(CK_SESSION_HANDLE h, const Secret& old_pin, const Secret& new_pin);
  Token& token(CK_SLOT_ID id);

  // 5.6 sessions and login
  CK_SESSION_HANDLE open_session(CK_SLOT_ID id, CK_FLAGS flags);
  void close_session(CK_SESSION_HANDLE h);
  void close_all(CK_SLOT_ID id);
  void session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO* info);
  void login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const Secret& pin);
  void logout(CK_SESSION_HANDLE h);
  Session& session(CK_SESSION_HANDLE h);
  std::shared_ptr<Session> session_ref(CK_SESSION_HANDLE h);
  // True while `s` is open (a cryptographic call looks again when it takes
  // the module lock: another thread may have closed it meanwhile).
  bool is_open(const Session& s) const;
  std::shared_ptr<SlotShared> shared(CK_SLOT_ID id);
  // Stops the audit writers for good (the module is being unloaded).
  void stop_audit();
  // fork(): hold every audit writer across it (see AuditLog::lock_for_fork).
  void lock_audit_for_fork();
  void unlock_audit_after_fork();

  // 5.7 objects (module_objects.cpp)
  CK_OBJECT_HANDLE create_object(CK_SESSION_HANDLE h, AttrMap attrs);
  void destroy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o);
  CK_OBJECT_HANDLE copy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, const AttrMap& changes);
  CK_RV get_attributes(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE* t, CK_ULONG n);
  void set_attributes(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, const AttrMap& changes);
  void find_init(CK_SESSION_HANDLE h, const AttrMap& want);
  CK_ULONG find(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE* out, CK_ULONG max);
  void find_final(CK_SESSION_HANDLE h);
  std::shared_ptr<Object> object(Session& s, CK_OBJECT_HANDLE o);
  CK_OBJECT_HANDLE generate_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, AttrMap attrs);
  // Returns the wrapped key, or its size when `out` is null (5.2).
  void wrap_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, CK_OBJECT_HANDLE wrapping,
                CK_OBJECT_HANDLE key, uint8_t* out, CK_ULONG* out_len);
  CK_OBJECT_HANDLE unwrap_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, CK_OBJECT_HANDLE key,
                              const uint8_t* wrapped, CK_ULONG n, AttrMap attrs);
  CK_OBJECT_HANDLE derive_key(CK_SESSION_HANDLE h, const CK_MECHANISM& m, CK_OBJECT_HANDLE base,
                              AttrMap attrs);
  void generate_pair(CK_SESSION_HANDLE h, const CK_MECHANISM& m, AttrMap pub, AttrMap priv,
                     CK_OBJECT_HANDLE* hpub, CK_OBJECT_HANDLE* hpriv);

  // 5.8-5.12: the key and mechanism checks of C_*Init (module_crypto.cpp).
  PreparedOp prepare_op(Session& s, OpKind kind, const CK_MECHANISM& m, CK_OBJECT_HANDLE key);
  // Records a use of `key` (unwrap, derive) in the token's audit table.
  void audit(CK_SLOT_ID slot, const Object& key, CK_MECHANISM_TYPE mech, const char* op);

 private:
  void rescan();
  void forget_handles(CK_SLOT_ID id);
  CK_OBJECT_HANDLE handle_for(CK_SLOT_ID slot, int64_t uid);
  CK_OBJECT_HANDLE add_session_object(Session& s, std::shared_ptr<Object> o);
  CK_OBJECT_HANDLE store_object(Session& s, AttrMap attrs);
  bool visible(Session& s, const Object& o);
  void check_writable(Session& s, const AttrMap& attrs);
  // Ends the operations and searches of the token's sessions (a logout).
  void cancel_ops(CK_SLOT_ID slot);
  void flush_quietly(CK_SLOT_ID slot);
  void context_login(Session& s, Token& t, const Secret& pin);

  std::string dir_;
  bool threads_;
  std::map<CK_SLOT_ID, std::unique_ptr<Token>> slots_;
  std::map<CK_SLOT_ID, std::shared_ptr<SlotShared>> shared_;
  std::map<CK_SESSION_HANDLE, std::shared_ptr<Session>> sessions_;
  CK_SESSION_HANDLE next_session_ = 1;
  std::map<CK_OBJECT_HANDLE, HandleTarget> handles_;
  std::map<std::pair<CK_SLOT_ID, int64_t>, CK_OBJECT_HANDLE> token_handles_;
  // The handles of session objects, so that a search need not walk the
  // handles of every token object it ever found.
  std::set<CK_OBJECT_HANDLE> session_handles_;
  CK_OBJECT_HANDLE next_handle_ = 1;
};

// 5.8-5.12 cryptographic operations (module_crypto.cpp). Each runs under
// its session's lock (held by the caller); C_*Init takes the module lock
// to look its key up, the others do not take it at all.
void op_init(Session& s, OpKind kind, const CK_MECHANISM* m, CK_OBJECT_HANDLE key)
    TK_REQUIRES(s.mu);
void op_update(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n) TK_REQUIRES(s.mu);
void op_part(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n, uint8_t* out,
             CK_ULONG* out_len) TK_REQUIRES(s.mu);
// Single-part (with input) or final (input null, n 0) call producing output.
void op_output(Session& s, OpKind kind, const uint8_t* in, CK_ULONG n, bool single, uint8_t* out,
               CK_ULONG* out_len) TK_REQUIRES(s.mu);
void op_verify(Session& s, const uint8_t* in, CK_ULONG n, bool single, const uint8_t* sig,
               CK_ULONG sig_len) TK_REQUIRES(s.mu);

}  // namespace tk
