// The on-disk store of one token: a SQLite database laid out as
// docs/store-format.md says. Only this file knows SQL.
#pragma once

#include <sqlite3.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "bytes.h"
#include "p11.h"

namespace tk {

struct TokenRow {
  Bytes label;  // 32 bytes, blank padded
  std::string serial;
  Bytes so_wrap;
  std::optional<Bytes> user_wrap;
  int so_fails = 0;
  int user_fails = 0;
};

struct StoredAttr {
  CK_ATTRIBUTE_TYPE type;
  bool sealed;
  Bytes value;
};

struct StoredObject {
  int64_t uid = 0;
  CK_OBJECT_CLASS cls = 0;
  bool priv = false;
  Bytes ckaid, label;  // index columns; empty for private objects
  // For private objects: keyed MACs of CKA_ID and CKA_LABEL (Token::index_mac),
  // so that a search by either finds its few candidates without decrypting
  // every private object; empty when a version 1 store has not had them yet.
  Bytes ckaid_mac, label_mac;
  std::vector<StoredAttr> attrs;
};

class Store {
 public:
  // Opens an existing token database; a file that is not one (or another
  // format version) gives CKR_TOKEN_NOT_RECOGNIZED.
  static std::unique_ptr<Store> open(const std::string& path);
  // Creates a new database (fails if the file exists) holding `row` and the
  // public object `first` (its attributes not sealed), in one transaction.
  static std::unique_ptr<Store> create(const std::string& path, const TokenRow& row,
                                       const StoredObject& first);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  TokenRow token();
  int64_t generation();
  std::vector<StoredObject> objects();

  // Each write is one durable transaction that bumps the generation.
  // `seal(uid)` gives the attributes once the object's uid is known.
  int64_t insert_object(const StoredObject& head,
                        const std::function<std::vector<StoredAttr>(int64_t)>& seal);
  void replace_attributes(int64_t uid, const StoredObject& head,
                          const std::vector<StoredAttr>& attrs);
  void delete_object(int64_t uid);
  // Writes the index MACs of private objects from a version 1 store (no
  // other change: the generation stays, the objects are the same).
  void set_index_macs(const std::vector<StoredObject>& heads);
  // Counts a PIN attempt before the PIN is tested (so that neither a crash
  // nor parallel guesses in several processes escape the count): one
  // atomic increment, refused once `limit` failures are recorded.
  bool begin_attempt(bool so, int limit);
  void reset_fails(bool so);
  void set_wrap(bool so, const Bytes& wrap);
  void reinitialise(const Bytes& label, const Bytes& so_wrap, const StoredObject& first);
  // Deletes the token: empties it and marks it not ours (format 0) in one
  // transaction, so a process that still has it open finds nothing in it,
  // then removes the database and its WAL files.
  void destroy();
  void audit(const Bytes& ckaid, const Bytes& label, CK_MECHANISM_TYPE mech, const char* op);

 private:
  Store(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  void exec(const char* sql);
  void pragmas();
  int format();
  // Moves a version 1 store to this version (docs/store-format.md).
  void upgrade();
  void bump();
  int64_t insert_row(const StoredObject& head);
  sqlite3_stmt* prepare(const char* sql);
  sqlite3* db_;
  // The audit table is written through its own connection with
  // synchronous=NORMAL: in WAL mode a commit then costs no fsync (the row
  // survives a crash of the application, and reaches the disk with the next
  // checkpoint or durable commit), which keeps it out of C_Sign's cost.
  sqlite3* audit_db_ = nullptr;
  sqlite3_stmt* audit_stmt_ = nullptr;
  std::string path_;
  sqlite3_stmt* generation_stmt_ = nullptr;
};

}  // namespace tk
