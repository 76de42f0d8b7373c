#include "store.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "error.h"

namespace tk {
namespace {

constexpr int kFormat = 3;

// Version 1 lacked the index MACs of private objects: opening such a store
// adds them (NULL until the first user login writes them) and moves it on.
constexpr const char* kUpgradeFrom1 = R"sql(
ALTER TABLE objects ADD COLUMN ckaid_mac BLOB;
ALTER TABLE objects ADD COLUMN label_mac BLOB;
CREATE INDEX objects_id_mac ON objects(ckaid_mac);
CREATE INDEX objects_label_mac ON objects(label_mac);
UPDATE token SET format = 2 WHERE id = 1 AND format = 1;
)sql";

// Version 2 wrote one audit row per key use: version 3 rows carry a count
// of identical uses (same second, key, mechanism, operation and process),
// and the rows of version 2 are each one use.
constexpr const char* kUpgradeFrom2 = R"sql(
ALTER TABLE audit ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
UPDATE token SET format = 3 WHERE id = 1 AND format = 2;
)sql";

constexpr const char* kSchema = R"sql(
CREATE TABLE token(
  id INTEGER PRIMARY KEY CHECK(id = 1),
  format INTEGER NOT NULL, label BLOB NOT NULL, serial TEXT NOT NULL,
  kdf TEXT NOT NULL, so_wrap BLOB NOT NULL, user_wrap BLOB,
  so_fails INTEGER NOT NULL, user_fails INTEGER NOT NULL, generation INTEGER NOT NULL);
CREATE TABLE objects(
  uid INTEGER PRIMARY KEY AUTOINCREMENT, class INTEGER NOT NULL,
  private INTEGER NOT NULL, ckaid BLOB, label BLOB, ckaid_mac BLOB, label_mac BLOB);
CREATE INDEX objects_class ON objects(class);
CREATE INDEX objects_id ON objects(ckaid);
CREATE INDEX objects_label ON objects(label);
CREATE INDEX objects_id_mac ON objects(ckaid_mac);
CREATE INDEX objects_label_mac ON objects(label_mac);
CREATE TABLE attributes(
  uid INTEGER NOT NULL REFERENCES objects(uid) ON DELETE CASCADE,
  type INTEGER NOT NULL, enc INTEGER NOT NULL, value BLOB NOT NULL,
  PRIMARY KEY(uid, type));
CREATE TABLE audit(
  time INTEGER NOT NULL, ckaid BLOB, label BLOB, mechanism INTEGER NOT NULL,
  operation TEXT NOT NULL, pid INTEGER NOT NULL, count INTEGER NOT NULL DEFAULT 1);
)sql";

// A prepared statement finalised at scope exit.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) {
    require(sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) == SQLITE_OK, CKR_DEVICE_ERROR);
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  sqlite3_stmt* get() { return s_; }

 private:
  sqlite3_stmt* s_ = nullptr;
};

void bind_blob(sqlite3_stmt* s, int i, const Bytes& b) {
  // A zero-length blob must still be a blob, not NULL.
  static const uint8_t empty = 0;
  sqlite3_bind_blob(s, i, b.empty() ? &empty : b.data(), static_cast<int>(b.size()),
                    SQLITE_TRANSIENT);
}

void bind_blob_or_null(sqlite3_stmt* s, int i, bool null, const Bytes& b) {
  if (null) {
    sqlite3_bind_null(s, i);
  } else {
    bind_blob(s, i, b);
  }
}

Bytes column_blob(sqlite3_stmt* s, int i) {
  auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s, i));
  return to_bytes(p, static_cast<size_t>(sqlite3_column_bytes(s, i)));
}

void step_done(sqlite3_stmt* s) { require(sqlite3_step(s) == SQLITE_DONE, CKR_DEVICE_ERROR); }

// BEGIN IMMEDIATE ... COMMIT, rolled back if an exception leaves the scope.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) {
    require(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK,
            CKR_DEVICE_ERROR);
  }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    require(sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) == SQLITE_OK, CKR_DEVICE_ERROR);
    done_ = true;
  }

 private:
  sqlite3* db_;
  bool done_ = false;
};

void insert_attrs(sqlite3* db, int64_t uid, const std::vector<StoredAttr>& attrs) {
  Stmt st(db, "INSERT INTO attributes(uid, type, enc, value) VALUES(?, ?, ?, ?)");
  for (const auto& a : attrs) {
    sqlite3_reset(st.get());
    sqlite3_bind_int64(st.get(), 1, uid);
    sqlite3_bind_int64(st.get(), 2, static_cast<int64_t>(a.type));
    sqlite3_bind_int(st.get(), 3, a.sealed ? 1 : 0);
    bind_blob(st.get(), 4, a.value);
    step_done(st.get());
  }
}

}  // namespace

std::unique_ptr<Store> Store::open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db);
    fail(CKR_TOKEN_NOT_RECOGNIZED);
  }
  std::unique_ptr<Store> s(new Store(db, path));
  try {
    s->pragmas();
    s->upgrade();
    // Touch every table the module uses, so a foreign schema is caught here.
    Stmt probe(db,
               "SELECT (SELECT count(label_mac) FROM objects) + (SELECT count(*) FROM attributes)"
               " + (SELECT count(count) FROM audit)");
    require(sqlite3_step(probe.get()) == SQLITE_ROW, CKR_TOKEN_NOT_RECOGNIZED);
  } catch (const Error&) {
    fail(CKR_TOKEN_NOT_RECOGNIZED);
  }
  s->map_counter();
  return s;
}

int Store::format() {
  Stmt st(db_, "SELECT format FROM token WHERE id = 1");
  require(sqlite3_step(st.get()) == SQLITE_ROW, CKR_TOKEN_NOT_RECOGNIZED);
  return sqlite3_column_int(st.get(), 0);
}

void Store::upgrade() {
  // One step per version, each in its own transaction; another process may
  // have been first, so each looks again inside its transaction.
  for (auto [from, sql] : {std::pair{1, kUpgradeFrom1}, std::pair{2, kUpgradeFrom2}}) {
    if (format() != from) continue;
    Transaction t(db_);
    if (format() == from) exec(sql);
    t.commit();
  }
  require(format() == kFormat, CKR_TOKEN_NOT_RECOGNIZED);
}

std::unique_ptr<Store> Store::create(const std::string& path, const TokenRow& row,
                                     const StoredObject& first) {
  // Made here, private to the user, before SQLite opens it (SQLite would
  // create it with the umask's mode); O_EXCL: never take over a file.
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  require(fd >= 0, CKR_DEVICE_ERROR);
  ::close(fd);
  sqlite3* db = nullptr;
  int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    fail(CKR_DEVICE_ERROR);
  }
  std::unique_ptr<Store> s(new Store(db, path));
  s->pragmas();
  Transaction t(db);
  s->exec(kSchema);
  Stmt st(db,
          "INSERT INTO token(id, format, label, serial, kdf, so_wrap, user_wrap, so_fails,"
          " user_fails, generation) VALUES(1, ?, ?, ?, 'pbkdf2-sha256', ?, NULL, 0, 0, 1)");
  sqlite3_bind_int(st.get(), 1, kFormat);
  bind_blob(st.get(), 2, row.label);
  sqlite3_bind_text(st.get(), 3, row.serial.c_str(), -1, SQLITE_TRANSIENT);
  bind_blob(st.get(), 4, row.so_wrap);
  step_done(st.get());
  insert_attrs(db, s->insert_row(first), first.attrs);
  t.commit();
  s->map_counter();
  s->announce();  // a token replacing one another process still maps
  return s;
}

Store::~Store() {
  if (counter_ != nullptr) munmap(counter_, sizeof *counter_);
  sqlite3_finalize(generation_stmt_);
  sqlite3_close(db_);
}

void Store::exec(const char* sql) {
  require(sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) == SQLITE_OK, CKR_DEVICE_ERROR);
}

void Store::pragmas() {
  sqlite3_busy_timeout(db_, 5000);
  // WAL with synchronous=FULL: each commit is durable when it returns.
  Stmt wal(db_, "PRAGMA journal_mode=WAL");
  require(sqlite3_step(wal.get()) == SQLITE_ROW, CKR_DEVICE_ERROR);
  exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA secure_delete=ON");
}

sqlite3_stmt* Store::prepare(const char* sql) {
  sqlite3_stmt* s = nullptr;
  require(sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) == SQLITE_OK,
          CKR_DEVICE_ERROR);
  return s;
}

void Store::bump() { exec("UPDATE token SET generation = generation + 1 WHERE id = 1"); }

TokenRow Store::token() {
  Stmt st(db_,
          "SELECT label, serial, so_wrap, user_wrap, so_fails, user_fails FROM token"
          " WHERE id = 1");
  require(sqlite3_step(st.get()) == SQLITE_ROW, CKR_DEVICE_ERROR);
  TokenRow r;
  r.label = column_blob(st.get(), 0);
  auto* serial = sqlite3_column_text(st.get(), 1);
  r.serial = serial ? reinterpret_cast<const char*>(serial) : "";
  r.so_wrap = column_blob(st.get(), 2);
  if (sqlite3_column_type(st.get(), 3) != SQLITE_NULL) r.user_wrap = column_blob(st.get(), 3);
  r.so_fails = sqlite3_column_int(st.get(), 4);
  r.user_fails = sqlite3_column_int(st.get(), 5);
  return r;
}

// The change counter (docs/store-format.md, "Noticing changes"): a word in
// <token>.db-gen, mapped shared by every process using the token, which
// each writer increments after its commit. While it stays as it was at the
// last read of token.generation (and that read is younger than
// kRecheckAfter), no process has committed since, and the read is skipped:
// it is a read transaction, whose file locks cost as much as a signature.
void Store::map_counter() {
  std::string name = path_ + "-gen";
  int fd = ::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;  // then every call reads token.generation
  struct stat st {};
  void* p = MAP_FAILED;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_size >= static_cast<off_t>(sizeof(uint64_t)) || ftruncate(fd, sizeof(uint64_t)) == 0))
    p = mmap(nullptr, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ::close(fd);
  if (p != MAP_FAILED) counter_ = static_cast<uint64_t*>(p);
}

void Store::announce() {
  generation_read_ = {};  // our own next call reads it too
  if (counter_ != nullptr) __atomic_fetch_add(counter_, 1, __ATOMIC_SEQ_CST);
}

int64_t Store::generation() {
  auto now = std::chrono::steady_clock::now();
  uint64_t seen = counter_ ? __atomic_load_n(counter_, __ATOMIC_SEQ_CST) : 0;
  if (counter_ != nullptr && seen == counter_seen_ && generation_read_ != Clock::time_point{} &&
      now - generation_read_ < kRecheckAfter)
    return generation_;
  if (!generation_stmt_) generation_stmt_ = prepare("SELECT generation FROM token WHERE id = 1");
  sqlite3_reset(generation_stmt_);
  require(sqlite3_step(generation_stmt_) == SQLITE_ROW, CKR_DEVICE_ERROR);
  int64_t g = sqlite3_column_int64(generation_stmt_, 0);
  sqlite3_reset(generation_stmt_);
  generation_ = g;
  counter_seen_ = seen;
  generation_read_ = now;
  return g;
}

std::vector<StoredObject> Store::objects() {
  std::vector<StoredObject> out;
  // One read transaction, so objects and attributes are from the same state.
  exec("BEGIN");
  try {
    Stmt st(db_, "SELECT uid, class, private, ckaid_mac, label_mac FROM objects ORDER BY uid");
    Stmt at(db_, "SELECT type, enc, value FROM attributes WHERE uid = ?");
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      StoredObject o;
      o.uid = sqlite3_column_int64(st.get(), 0);
      o.cls = static_cast<CK_OBJECT_CLASS>(sqlite3_column_int64(st.get(), 1));
      o.priv = sqlite3_column_int(st.get(), 2) != 0;
      o.ckaid_mac = column_blob(st.get(), 3);
      o.label_mac = column_blob(st.get(), 4);
      sqlite3_reset(at.get());
      sqlite3_bind_int64(at.get(), 1, o.uid);
      int ra;
      while ((ra = sqlite3_step(at.get())) == SQLITE_ROW) {
        o.attrs.push_back({static_cast<CK_ATTRIBUTE_TYPE>(sqlite3_column_int64(at.get(), 0)),
                           sqlite3_column_int(at.get(), 1) != 0, column_blob(at.get(), 2)});
      }
      require(ra == SQLITE_DONE, CKR_DEVICE_ERROR);
      out.push_back(std::move(o));
    }
    require(rc == SQLITE_DONE, CKR_DEVICE_ERROR);
  } catch (...) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  exec("COMMIT");
  return out;
}

int64_t Store::insert_row(const StoredObject& head) {
  Stmt st(db_,
          "INSERT INTO objects(class, private, ckaid, label, ckaid_mac, label_mac)"
          " VALUES(?, ?, ?, ?, ?, ?)");
  sqlite3_bind_int64(st.get(), 1, static_cast<int64_t>(head.cls));
  sqlite3_bind_int(st.get(), 2, head.priv ? 1 : 0);
  bind_blob_or_null(st.get(), 3, head.priv, head.ckaid);
  bind_blob_or_null(st.get(), 4, head.priv, head.label);
  bind_blob_or_null(st.get(), 5, !head.priv, head.ckaid_mac);
  bind_blob_or_null(st.get(), 6, !head.priv, head.label_mac);
  step_done(st.get());
  return sqlite3_last_insert_rowid(db_);
}

int64_t Store::insert_object(const StoredObject& head,
                             const std::function<std::vector<StoredAttr>(int64_t)>& seal) {
  Transaction t(db_);
  int64_t uid = insert_row(head);
  insert_attrs(db_, uid, seal(uid));
  bump();
  t.commit();
  announce();
  return uid;
}

void Store::replace_attributes(int64_t uid, const StoredObject& head,
                               const std::vector<StoredAttr>& attrs) {
  Transaction t(db_);
  Stmt up(db_,
          "UPDATE objects SET ckaid = ?, label = ?, ckaid_mac = ?, label_mac = ? WHERE uid = ?");
  bind_blob_or_null(up.get(), 1, head.priv, head.ckaid);
  bind_blob_or_null(up.get(), 2, head.priv, head.label);
  bind_blob_or_null(up.get(), 3, !head.priv, head.ckaid_mac);
  bind_blob_or_null(up.get(), 4, !head.priv, head.label_mac);
  sqlite3_bind_int64(up.get(), 5, uid);
  step_done(up.get());
  require(sqlite3_changes(db_) == 1, CKR_OBJECT_HANDLE_INVALID);
  Stmt del(db_, "DELETE FROM attributes WHERE uid = ?");
  sqlite3_bind_int64(del.get(), 1, uid);
  step_done(del.get());
  insert_attrs(db_, uid, attrs);
  bump();
  t.commit();
  announce();
}

void Store::delete_object(int64_t uid) {
  Transaction t(db_);
  Stmt st(db_, "DELETE FROM objects WHERE uid = ?");
  sqlite3_bind_int64(st.get(), 1, uid);
  step_done(st.get());
  require(sqlite3_changes(db_) == 1, CKR_OBJECT_HANDLE_INVALID);
  bump();
  t.commit();
  announce();
}

void Store::set_index_macs(const std::vector<StoredObject>& heads) {
  Transaction t(db_);
  Stmt st(db_, "UPDATE objects SET ckaid_mac = ?, label_mac = ? WHERE uid = ? AND private = 1");
  for (const auto& h : heads) {
    sqlite3_reset(st.get());
    bind_blob(st.get(), 1, h.ckaid_mac);
    bind_blob(st.get(), 2, h.label_mac);
    sqlite3_bind_int64(st.get(), 3, h.uid);
    step_done(st.get());
  }
  t.commit();
}

bool Store::begin_attempt(bool so, int limit) {
  Stmt st(db_, so ? "UPDATE token SET so_fails = so_fails + 1 WHERE id = 1 AND so_fails < ?"
                  : "UPDATE token SET user_fails = user_fails + 1 WHERE id = 1 AND user_fails < ?");
  sqlite3_bind_int(st.get(), 1, limit);
  step_done(st.get());
  return sqlite3_changes(db_) == 1;
}

void Store::reset_fails(bool so) {
  exec(so ? "UPDATE token SET so_fails = 0 WHERE id = 1"
          : "UPDATE token SET user_fails = 0 WHERE id = 1");
}

void Store::set_wrap(bool so, const Bytes& wrap) {
  Transaction t(db_);
  Stmt st(db_, so ? "UPDATE token SET so_wrap = ?, so_fails = 0 WHERE id = 1"
                  : "UPDATE token SET user_wrap = ?, user_fails = 0 WHERE id = 1");
  bind_blob(st.get(), 1, wrap);
  step_done(st.get());
  bump();
  t.commit();
  announce();
}

void Store::reinitialise(const Bytes& label, const Bytes& so_wrap, const StoredObject& first) {
  Transaction t(db_);
  exec("DELETE FROM attributes; DELETE FROM objects; DELETE FROM audit;");
  Stmt st(db_,
          "UPDATE token SET label = ?, so_wrap = ?, user_wrap = NULL, so_fails = 0,"
          " user_fails = 0 WHERE id = 1");
  bind_blob(st.get(), 1, label);
  bind_blob(st.get(), 2, so_wrap);
  step_done(st.get());
  insert_attrs(db_, insert_row(first), first.attrs);
  bump();
  t.commit();
  announce();
}

void Store::destroy() {
  Transaction t(db_);
  exec(
      "DELETE FROM attributes; DELETE FROM objects; DELETE FROM audit;"
      " UPDATE token SET format = 0, so_wrap = x'', user_wrap = NULL WHERE id = 1;");
  bump();
  t.commit();
  // Other processes holding the token notice at once (the shared counter).
  announce();
  for (const char* suffix : {"", "-wal", "-shm", "-gen"}) {
    std::string p = path_ + suffix;
    require(::unlink(p.c_str()) == 0 || errno == ENOENT, CKR_DEVICE_ERROR);
  }
}

AuditStore::AuditStore(const std::string& path) {
  if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, nullptr) !=
      SQLITE_OK) {
    sqlite3_close(db_);
    db_ = nullptr;
    fail(CKR_DEVICE_ERROR);
  }
  sqlite3_busy_timeout(db_, 5000);
  if (sqlite3_exec(db_, "PRAGMA synchronous=NORMAL", nullptr, nullptr, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v3(db_,
                         "INSERT INTO audit(time, ckaid, label, mechanism, operation, pid, count)"
                         " VALUES(?, ?, NULL, ?, ?, ?, ?)",
                         -1, SQLITE_PREPARE_PERSISTENT, &insert_, nullptr) != SQLITE_OK ||
      sqlite3_prepare_v3(db_,
                         "UPDATE audit SET count = count + ? WHERE rowid = ? AND time = ?"
                         " AND ckaid = ? AND mechanism = ? AND operation = ? AND pid = ?",
                         -1, SQLITE_PREPARE_PERSISTENT, &add_, nullptr) != SQLITE_OK) {
    sqlite3_finalize(add_);
    sqlite3_finalize(insert_);
    sqlite3_close(db_);
    db_ = nullptr;
    fail(CKR_DEVICE_ERROR);
  }
}

AuditStore::~AuditStore() {
  sqlite3_finalize(add_);
  sqlite3_finalize(insert_);
  sqlite3_close(db_);
}

bool AuditRow::same_use(const AuditRow& o) const {
  return time == o.time && mech == o.mech && pid == o.pid && std::strcmp(op, o.op) == 0 &&
         ckaid == o.ckaid;
}

// Adds `r.count` uses to the row `rowid` if it is still the row of the same
// uses (C_InitToken in another process may have emptied the table since).
bool AuditStore::add_to(int64_t rowid, const AuditRow& r) {
  sqlite3_reset(add_);
  sqlite3_bind_int64(add_, 1, r.count);
  sqlite3_bind_int64(add_, 2, rowid);
  sqlite3_bind_int64(add_, 3, r.time);
  bind_blob(add_, 4, r.ckaid);
  sqlite3_bind_int64(add_, 5, static_cast<int64_t>(r.mech));
  sqlite3_bind_text(add_, 6, r.op, -1, SQLITE_STATIC);
  sqlite3_bind_int64(add_, 7, r.pid);
  int rc = sqlite3_step(add_);
  sqlite3_reset(add_);
  require(rc == SQLITE_DONE, CKR_DEVICE_ERROR);
  return sqlite3_changes(db_) == 1;
}

void AuditStore::append(const std::vector<AuditRow>& rows) {
  Transaction t(db_);
  // Uses like the last row written (same second, key, mechanism, operation
  // and process) are added to its count rather than written as a new row.
  std::optional<std::pair<int64_t, AuditRow>> last = last_;
  for (const auto& r : rows) {
    if (last && last->second.same_use(r) && add_to(last->first, r)) continue;
    sqlite3_reset(insert_);
    sqlite3_bind_int64(insert_, 1, r.time);
    bind_blob(insert_, 2, r.ckaid);
    sqlite3_bind_int64(insert_, 3, static_cast<int64_t>(r.mech));
    sqlite3_bind_text(insert_, 4, r.op, -1, SQLITE_STATIC);
    sqlite3_bind_int64(insert_, 5, r.pid);
    sqlite3_bind_int64(insert_, 6, r.count);
    int rc = sqlite3_step(insert_);
    sqlite3_reset(insert_);
    require(rc == SQLITE_DONE, CKR_DEVICE_ERROR);
    last.emplace(sqlite3_last_insert_rowid(db_), r);
  }
  t.commit();
  last_ = std::move(last);  // only once committed: a failed batch is retried whole
}

}  // namespace tk
