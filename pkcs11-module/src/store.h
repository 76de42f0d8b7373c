// The on-disk store of one token: a SQLite database laid out as
// docs/store-format.md says. Only this file knows SQL.
#pragma once

#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
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
  // token.generation; read from the file only when another process (or
  // this one) may have changed it since the last read (map_counter).
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
  // then removes the database, its WAL files and its change counter.
  void destroy();

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
  void map_counter();
  void announce();  // after each commit that bumps token.generation

  using Clock = std::chrono::steady_clock;
  // A writer killed between its commit and announce() leaves the counter
  // as it was: the generation is read anyway this long after the last read.
  static constexpr std::chrono::milliseconds kRecheckAfter{1000};
  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* generation_stmt_ = nullptr;
  uint64_t* counter_ = nullptr;  // mapped <path>-gen, or null
  uint64_t counter_seen_ = 0;
  int64_t generation_ = -1;
  Clock::time_point generation_read_{};
};

// Uses of a private or secret key, as the audit table records them: `count`
// identical uses (the same second, key, mechanism, operation and process).
struct AuditRow {
  int64_t time = 0;  // Unix seconds
  Bytes ckaid;       // the key's CKA_ID
  CK_MECHANISM_TYPE mech = 0;
  const char* op = "";  // a string literal: "sign", "decrypt", "unwrap", "derive"
  int64_t pid = 0;
  int64_t count = 1;
  // Whether `o` records the same kind of use (all but the count equal).
  bool same_use(const AuditRow& o) const;
};

// The audit table of a token, through a connection of its own with
// synchronous=NORMAL: in WAL mode a commit then costs no fsync (the rows
// survive a crash of the application, and reach the disk with the next
// checkpoint or durable commit). AuditLog (audit.h) batches rows into it.
class AuditStore {
 public:
  explicit AuditStore(const std::string& path);  // CKR_DEVICE_ERROR
  ~AuditStore();
  AuditStore(const AuditStore&) = delete;
  AuditStore& operator=(const AuditStore&) = delete;
  // Appends the rows in one transaction: all of them or none. A row of the
  // same uses as the last one this connection wrote adds to its count.
  void append(const std::vector<AuditRow>& rows);

 private:
  bool add_to(int64_t rowid, const AuditRow& r);

  sqlite3* db_ = nullptr;
  sqlite3_stmt* insert_ = nullptr;
  sqlite3_stmt* add_ = nullptr;
  // The last row written (its rowid), once its transaction committed.
  std::optional<std::pair<int64_t, AuditRow>> last_;
};

}  // namespace tk
