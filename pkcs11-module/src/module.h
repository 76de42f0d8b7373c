// The module's state between C_Initialize and C_Finalize: slots (tokens),
// sessions, object handles and operations in progress. Plain C++; the entry
// shims (entry_*.cpp) call it under the module lock.
#pragma once

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "mechanism.h"
#include "token.h"

namespace tk {

// One operation slot of a session. `result` keeps an output computed for a
// call whose buffer was too small, for the retry (5.2: "CKR_BUFFER_TOO_SMALL
// ... the operation remains active").
struct ActiveOp {
  std::unique_ptr<Operation> op;
  std::optional<Bytes> result;
  std::shared_ptr<Object> key;  // for the audit record
  CK_MECHANISM_TYPE mech = 0;
  bool audited = false;
  // The key has CKA_ALWAYS_AUTHENTICATE and this operation has not had its
  // C_Login(CKU_CONTEXT_SPECIFIC) yet (4.9, 5.6).
  bool needs_auth = false;
};

struct FindOp {
  bool active = false;
  std::vector<CK_OBJECT_HANDLE> found;
  size_t next = 0;
};

struct Session {
  CK_SESSION_HANDLE handle;
  CK_SLOT_ID slot;
  bool rw;
  std::array<ActiveOp, static_cast<size_t>(OpKind::kCount)> ops;
  FindOp find;
  ActiveOp& op(OpKind k) { return ops[static_cast<size_t>(k)]; }
};

// Where an object handle points: a token object by uid, or a session object.
struct HandleTarget {
  CK_SLOT_ID slot;
  int64_t uid;
  std::shared_ptr<Object> session_object;
};

class Module {
 public:
  explicit Module(std::string dir);

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

  // 5.8-5.12 cryptographic operations (module_crypto.cpp)
  void op_init(CK_SESSION_HANDLE h, OpKind kind, const CK_MECHANISM* m, CK_OBJECT_HANDLE key);
  void op_update(CK_SESSION_HANDLE h, OpKind kind, const uint8_t* in, CK_ULONG n);
  void op_part(CK_SESSION_HANDLE h, OpKind kind, const uint8_t* in, CK_ULONG n, uint8_t* out,
               CK_ULONG* out_len);
  // Single-part (with input) or final (input null, n 0) call producing output.
  void op_output(CK_SESSION_HANDLE h, OpKind kind, const uint8_t* in, CK_ULONG n, bool single,
                 uint8_t* out, CK_ULONG* out_len);
  void op_verify(CK_SESSION_HANDLE h, const uint8_t* in, CK_ULONG n, bool single,
                 const uint8_t* sig, CK_ULONG sig_len);

 private:
  void rescan();
  void forget_handles(CK_SLOT_ID id);
  CK_OBJECT_HANDLE handle_for(CK_SLOT_ID slot, int64_t uid);
  CK_OBJECT_HANDLE add_session_object(Session& s, std::shared_ptr<Object> o);
  CK_OBJECT_HANDLE store_object(Session& s, AttrMap attrs);
  bool visible(Session& s, const Object& o);
  void check_writable(Session& s, const AttrMap& attrs);
  void cancel_ops(CK_SLOT_ID slot);
  void context_login(Session& s, Token& t, const Secret& pin);

  std::string dir_;
  std::map<CK_SLOT_ID, std::unique_ptr<Token>> slots_;
  std::map<CK_SESSION_HANDLE, Session> sessions_;
  CK_SESSION_HANDLE next_session_ = 1;
  std::map<CK_OBJECT_HANDLE, HandleTarget> handles_;
  std::map<std::pair<CK_SLOT_ID, int64_t>, CK_OBJECT_HANDLE> token_handles_;
  // The handles of session objects, so that a search need not walk the
  // handles of every token object it ever found.
  std::set<CK_OBJECT_HANDLE> session_handles_;
  CK_OBJECT_HANDLE next_handle_ = 1;
};

}  // namespace tk
