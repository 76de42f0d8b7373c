// One token: its store, login state and the objects the application may
// see now. Slot and token are one thing in a software token.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "object.h"
#include "store.h"

namespace tk {

enum class Role { kPublic, kUser, kSO };

class Token {
 public:
  // Opens <path> if it exists; otherwise the slot is the free one.
  Token(CK_SLOT_ID id, std::string path);

  CK_SLOT_ID id() const { return id_; }
  const std::string& path() const { return path_; }
  bool free() const { return !store_ && !broken_; }
  // Not recognised: the file exists but is not a token of ours.
  bool broken() const { return broken_; }
  // Retries opening a file that another process may have created.
  void reopen();
  void fill_info(CK_TOKEN_INFO* info);

  Role role() const { return role_; }
  void login(Role role, const Secret& pin);
  void logout();
  // Checks the user PIN (counted like a login) without changing who is
  // logged in: the context-specific login of 5.6.
  void verify_user_pin(const Secret& pin);
  void init_token(const Secret& so_pin, const Bytes& label);
  void init_pin(const Secret& pin);
  void set_pin(const Secret& old_pin, const Secret& new_pin);

  // Objects the application may see now (private ones only after user login),
  // reloaded when another call or process changed the store.
  const std::map<int64_t, std::shared_ptr<Object>>& objects();
  // The uids of visible objects whose CKA_LABEL or CKA_ID equals the one
  // `want` asks for (ascending), or nothing when `want` names neither: lets
  // a search look at its few candidates, not at every object.
  std::optional<std::vector<int64_t>> candidates(const AttrMap& want);
  // True when `uid` names a private object, visible or not.
  bool is_private_uid(int64_t uid) const { return private_uids_.count(uid) != 0; }
  int64_t add(const AttrMap& attrs);
  void update(int64_t uid, const AttrMap& attrs);
  void remove(int64_t uid);

 private:
  Store& store();
  void reload();
  std::vector<StoredAttr> seal_all(int64_t uid, const AttrMap& attrs);
  StoredObject head(const AttrMap& attrs);
  Secret unwrap(const Bytes& wrap, const Secret& pin, bool so);
  // Tests a PIN against a wrap, counting the attempt (see Store::begin_attempt);
  // the token key, or CKR_PIN_INCORRECT / CKR_PIN_LOCKED.
  Secret check_pin(bool so, const Bytes& wrap, const Secret& pin);
  StoredObject profile();

  CK_SLOT_ID id_;
  std::string path_;
  std::unique_ptr<Store> store_;
  bool broken_ = false;
  Role role_ = Role::kPublic;
  Secret key_;  // the token key while someone is logged in
  int64_t generation_ = -1;
  std::map<int64_t, std::shared_ptr<Object>> objects_;
  std::set<int64_t> private_uids_;
  // Indexes of objects_ by CKA_LABEL and CKA_ID, rebuilt with it.
  std::multimap<Secret, int64_t> by_label_, by_id_;
};

// PKCS#11 text fields are blank padded, not NUL terminated.
void pad(CK_UTF8CHAR* dst, size_t n, const std::string& s);

}  // namespace tk
