// One token: its store, login state and the objects the application may
// see now. Slot and token are one thing in a software token.
#pragma once

#include <functional>
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
  // Checks the SO PIN (counted), then removes the store: the slot is free.
  void delete_token(const Secret& so_pin);
  void init_pin(const Secret& pin);
  void set_pin(const Secret& old_pin, const Secret& new_pin);

  // The token object `uid`, current (reloaded when another call or process
  // changed the store), its sealed attributes decrypted on first use while
  // the token key is here. CKR_USER_NOT_LOGGED_IN for a private object
  // without user login, CKR_OBJECT_HANDLE_INVALID for one that is gone.
  std::shared_ptr<Object> object(int64_t uid);
  // The uids (ascending) of the objects the application may see now that
  // match `want`. A search by CKA_LABEL or CKA_ID looks only at the few
  // objects its indexes name (private ones by keyed MAC), and a private
  // object is decrypted only when `want` asks for one of its sealed values.
  std::vector<int64_t> find(const AttrMap& want);
  int64_t add(const AttrMap& attrs);
  void update(int64_t uid, const AttrMap& attrs);
  void remove(int64_t uid);

 private:
  // A stored object as this process holds it: clear attributes in `obj`;
  // sealed values as ciphertext until first needed, then `obj` is replaced
  // by one that also holds their clear values (until logout).
  struct Entry {
    std::shared_ptr<Object> obj;
    std::vector<StoredAttr> sealed;
    Bytes ckaid_mac, label_mac;
    bool priv = false;
    bool open = false;
  };

  Store& store();
  // Drops the store and everything read from it (the file is gone).
  void forget();
  // Empties the object cache: the next call reads every object.
  void clear_cache();
  // Brings the cache up to the store's generation, reading only what
  // changed since the cache's (docs/store-format.md).
  void refresh();
  void apply(Changes c);
  // After a write of ours: applies what others wrote before it, then
  // `own` (our change, made to the cache directly); the cache is then at
  // `produced`.
  void after_write(Changes others, int64_t produced, const std::function<void()>& own);
  static Entry stored_entry(StoredObject&& so);
  static Entry written_entry(int64_t uid, const StoredObject& h, const AttrMap& attrs,
                             const std::vector<StoredAttr>& stored);
  void put(int64_t uid, Entry e, bool keep_unchanged);
  void drop(int64_t uid);
  void index(int64_t uid, const Entry& e);
  void unindex(int64_t uid, const Entry& e);
  std::shared_ptr<Object> opened(int64_t uid, Entry& e);
  bool entry_matches(int64_t uid, Entry& e, const AttrMap& want);
  void relock();
  // Writes the index MACs a version 1 store lacks (at user login).
  void index_unindexed();
  Bytes index_mac(CK_ATTRIBUTE_TYPE type, const Secret& value) const;
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
  Secret key_;        // the token key while someone is logged in
  Secret index_key_;  // the key of the index MACs, derived from key_
  int64_t generation_ = -1;
  std::map<int64_t, Entry> entries_;  // every token object, private ones too
  std::set<int64_t> opened_;          // entries holding clear sealed values
  // Indexes of entries_: public objects by CKA_LABEL and CKA_ID, private
  // ones by their MACs, and private ones without MACs (version 1 stores).
  std::multimap<Secret, int64_t> by_label_, by_id_;
  std::multimap<Bytes, int64_t> by_label_mac_, by_id_mac_;
  std::set<int64_t> unindexed_;
};

// PKCS#11 text fields are blank padded, not NUL terminated.
void pad(CK_UTF8CHAR* dst, size_t n, const std::string& s);

}  // namespace tk
