// The local certificate store over SQLite: one row per certificate (by
// SHA-256 fingerprint), one row per (certificate, address).
#include "token/certstore.hpp"

#include <openssl/err.h>
#include <openssl/x509.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "token/error.hpp"

namespace token::certs {

namespace {

namespace fs = std::filesystem;

// Version 1: certs and emails. Version 2 adds capabilities (what a
// correspondent's client announced in its last signed message). A newer
// file is refused rather than guessed at; an older one gains the new tables.
constexpr int kSchemaVersion = 2;
constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS certs("
    " fingerprint TEXT PRIMARY KEY, der BLOB NOT NULL, subject TEXT NOT NULL,"
    " issuer TEXT NOT NULL, serial TEXT NOT NULL, not_before INTEGER NOT NULL,"
    " not_after INTEGER NOT NULL, source TEXT NOT NULL, added INTEGER NOT NULL);"
    "CREATE TABLE IF NOT EXISTS emails("
    " fingerprint TEXT NOT NULL REFERENCES certs(fingerprint) ON DELETE CASCADE,"
    " email TEXT NOT NULL, PRIMARY KEY(fingerprint, email));"
    "CREATE INDEX IF NOT EXISTS emails_by_email ON emails(email);"
    "CREATE TABLE IF NOT EXISTS capabilities("
    " fingerprint TEXT PRIMARY KEY REFERENCES certs(fingerprint) ON DELETE CASCADE,"
    " der BLOB NOT NULL, signed_at INTEGER NOT NULL, updated INTEGER NOT NULL);";

class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) : db_(db) {
    if (sqlite3_prepare_v2(db, sql, -1, &s_, nullptr) != SQLITE_OK) fail("prepare");
  }
  ~Stmt() { sqlite3_finalize(s_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  Stmt& bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind_blob(int i, const std::string& v) {
    sqlite3_bind_blob(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& bind(int i, std::int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  bool step() {
    const int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) fail("step");
    return false;
  }
  std::string text(int i) const {
    const auto* p = sqlite3_column_blob(s_, i);
    return p ? std::string(static_cast<const char*>(p),
                           static_cast<std::size_t>(sqlite3_column_bytes(s_, i)))
             : std::string();
  }
  std::int64_t integer(int i) const { return sqlite3_column_int64(s_, i); }

 private:
  [[noreturn]] void fail(const char* what) const {
    throw Error(ErrorKind::Io,
                std::string("certificate store: SQLite ") + what + ": " + sqlite3_errmsg(db_));
  }
  sqlite3* db_;
  sqlite3_stmt* s_ = nullptr;
};

std::string serial_hex(X509* cert) {
  const ASN1_INTEGER* s = X509_get0_serialNumber(cert);
  static const char* hex = "0123456789abcdef";
  std::string r;
  for (int i = 0; i < s->length; ++i) {
    r += hex[s->data[i] >> 4];
    r += hex[s->data[i] & 15];
  }
  return r;
}

std::string issuer(X509* cert) {
  ossl::Bio b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), X509_get_issuer_name(cert), 0,
                     XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

Source parse_source(const std::string& s) {
  if (s == "verify") return Source::Verify;
  if (s == "ldap") return Source::Ldap;
  return Source::Import;
}

constexpr const char* kColumns =
    "SELECT fingerprint, der, subject, issuer, serial, not_before, not_after, source, added "
    "FROM certs ";

Entry read_entry(sqlite3* db, const Stmt& s) {
  Entry e;
  e.fingerprint = s.text(0);
  e.der = s.text(1);
  e.subject = s.text(2);
  e.issuer = s.text(3);
  e.serial = s.text(4);
  e.not_before = static_cast<std::time_t>(s.integer(5));
  e.not_after = static_cast<std::time_t>(s.integer(6));
  e.source = parse_source(s.text(7));
  e.added = static_cast<std::time_t>(s.integer(8));
  Stmt m(db, "SELECT email FROM emails WHERE fingerprint = ? ORDER BY rowid");
  m.bind(1, e.fingerprint);
  while (m.step()) e.emails.push_back(m.text(0));
  return e;
}

// A transaction that rolls back unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) : db_(db) { run("BEGIN IMMEDIATE"); }
  ~Transaction() {
    if (!done_) sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit() {
    run("COMMIT");
    done_ = true;
  }

 private:
  void run(const char* sql) {
    if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
      throw Error(ErrorKind::Io,
                  std::string("certificate store: ") + sql + ": " + sqlite3_errmsg(db_));
    }
  }
  sqlite3* db_;
  bool done_ = false;
};

}  // namespace

std::string source_name(Source s) {
  switch (s) {
    case Source::Import:
      return "import";
    case Source::Verify:
      return "verify";
    case Source::Ldap:
      return "ldap";
  }
  return "import";
}

ossl::X509Ptr Entry::certificate() const {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, "the certificate store's entry " + fingerprint +
                                      " does not hold a readable certificate");
  }
  return x;
}

std::string Store::default_path() {
  if (const char* d = std::getenv("TOKENKIT_CERTS_DIR"); d && *d) {
    return (fs::path(d) / "certs.db").string();
  }
  fs::path base;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x) {
    base = x;
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    base = fs::path(h) / ".local" / "share";
  } else {
    throw Error(ErrorKind::Usage,
                "no place for the certificate store: set TOKENKIT_CERTS_DIR, XDG_DATA_HOME or "
                "HOME");
  }
  return (base / "tokenkit" / "certs.db").string();
}

Store::Store(const std::string& path) : path_(path) {
  const fs::path dir = fs::path(path).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    const bool made = fs::create_directories(dir, ec);
    if (ec) {
      throw Error(ErrorKind::Io, "cannot create the certificate store's directory " + dir.string() +
                                     ": " + ec.message());
    }
    if (made) ::chmod(dir.c_str(), 0700);
  }
  const bool existed = fs::exists(path);
  if (sqlite3_open_v2(path.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string why = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw Error(ErrorKind::Io, "cannot open the certificate store " + path + ": " + why);
  }
  if (!existed) ::chmod(path.c_str(), 0600);
  sqlite3_busy_timeout(db_, 5000);
  try {
    // WAL with synchronous=FULL: each commit is durable when it returns,
    // and readers do not block the writer.
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON");
    Stmt v(db_, "PRAGMA user_version");
    v.step();
    const auto version = v.integer(0);
    if (version > kSchemaVersion) {
      throw Error(ErrorKind::Input, "the certificate store " + path + " has format version " +
                                        std::to_string(version) + ", newer than this tokenkit (" +
                                        std::to_string(kSchemaVersion) + ")");
    }
    if (version < kSchemaVersion) {
      Transaction t(db_);
      exec(kSchema);
      exec(("PRAGMA user_version=" + std::to_string(kSchemaVersion)).c_str());
      t.commit();
    }
  } catch (const Error& e) {
    sqlite3_close(db_);
    db_ = nullptr;
    if (e.kind() == ErrorKind::Input) throw;
    throw Error(ErrorKind::Io, "cannot use the certificate store " + path + ": " + e.what());
  }
}

Store::~Store() { sqlite3_close(db_); }

void Store::exec(const char* sql) {
  char* msg = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &msg) != SQLITE_OK) {
    std::string why = msg ? msg : sqlite3_errmsg(db_);
    sqlite3_free(msg);
    throw Error(ErrorKind::Io, "certificate store " + path_ + ": " + why);
  }
}

bool Store::add(X509* cert, Source source, std::time_t now) {
  const std::string fp = fingerprint(cert);
  unsigned char* buf = nullptr;
  const int n = i2d_X509(cert, &buf);
  if (n <= 0) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, "cannot encode the certificate " + subject(cert));
  }
  std::string der(reinterpret_cast<char*>(buf), static_cast<std::size_t>(n));
  OPENSSL_free(buf);
  Transaction t(db_);
  Stmt ins(db_,
           "INSERT OR IGNORE INTO certs(fingerprint, der, subject, issuer, serial, not_before,"
           " not_after, source, added) VALUES(?,?,?,?,?,?,?,?,?)");
  ins.bind(1, fp)
      .bind_blob(2, der)
      .bind(3, subject(cert))
      .bind(4, issuer(cert))
      .bind(5, serial_hex(cert))
      .bind(6, static_cast<std::int64_t>(not_before(cert)))
      .bind(7, static_cast<std::int64_t>(not_after(cert)))
      .bind(8, source_name(source))
      .bind(9, static_cast<std::int64_t>(now));
  ins.step();
  const bool added = sqlite3_changes(db_) > 0;
  if (added) {
    for (const auto& e : emails(cert)) {
      Stmt m(db_, "INSERT OR IGNORE INTO emails(fingerprint, email) VALUES(?,?)");
      m.bind(1, fp).bind(2, e);
      m.step();
    }
  }
  t.commit();
  return added;
}

std::vector<Entry> Store::list(const std::optional<std::string>& email) const {
  std::vector<Entry> out;
  if (email) {
    Stmt s(db_, (std::string(kColumns) +
                 "WHERE fingerprint IN (SELECT fingerprint FROM emails WHERE email = ?) "
                 "ORDER BY not_before DESC, added DESC")
                    .c_str());
    s.bind(1, normalise_email(*email));
    while (s.step()) out.push_back(read_entry(db_, s));
  } else {
    Stmt s(db_, (std::string(kColumns) + "ORDER BY not_before DESC, added DESC").c_str());
    while (s.step()) out.push_back(read_entry(db_, s));
  }
  return out;
}

std::optional<Entry> Store::get(const std::string& fp) const {
  Stmt s(db_, (std::string(kColumns) + "WHERE fingerprint = ?").c_str());
  s.bind(1, normalise_email(fp));
  if (!s.step()) return std::nullopt;
  return read_entry(db_, s);
}

std::vector<Entry> Store::find_prefix(const std::string& prefix) const {
  std::vector<Entry> out;
  std::string p = normalise_email(prefix);
  std::string clean;
  for (char c : p) {
    if (c != ':') clean += c;
  }
  if (clean.size() < 8 || clean.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return out;
  }
  Stmt s(db_, (std::string(kColumns) + "WHERE substr(fingerprint, 1, ?) = ?").c_str());
  s.bind(1, static_cast<std::int64_t>(clean.size())).bind(2, clean);
  while (s.step()) out.push_back(read_entry(db_, s));
  return out;
}

std::size_t Store::remove(const std::vector<std::string>& fingerprints) {
  Transaction t(db_);
  std::size_t n = 0;
  for (const auto& fp : fingerprints) {
    Stmt d(db_, "DELETE FROM certs WHERE fingerprint = ?");
    d.bind(1, fp);
    d.step();
    n += static_cast<std::size_t>(sqlite3_changes(db_));
  }
  t.commit();
  return n;
}

bool Store::set_capabilities(const std::string& fp, const std::string& der, std::time_t signed_at,
                             std::time_t now) {
  Transaction t(db_);
  Stmt ins(db_,
           "INSERT INTO capabilities(fingerprint, der, signed_at, updated)"
           " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM certs WHERE fingerprint = ?1)"
           " ON CONFLICT(fingerprint) DO UPDATE SET der = excluded.der,"
           " signed_at = excluded.signed_at, updated = excluded.updated"
           " WHERE excluded.signed_at >= capabilities.signed_at");
  ins.bind(1, fp)
      .bind_blob(2, der)
      .bind(3, static_cast<std::int64_t>(signed_at))
      .bind(4, static_cast<std::int64_t>(now));
  ins.step();
  const bool kept = sqlite3_changes(db_) > 0;
  t.commit();
  return kept;
}

std::optional<Capabilities> Store::capabilities(const std::string& fp) const {
  Stmt s(db_, "SELECT der, signed_at, updated FROM capabilities WHERE fingerprint = ?");
  s.bind(1, fp);
  if (!s.step()) return std::nullopt;
  return Capabilities{s.text(0), static_cast<std::time_t>(s.integer(1)),
                      static_cast<std::time_t>(s.integer(2))};
}

Choice Store::choose(const std::string& email, std::time_t now) const {
  Choice c;
  std::vector<ossl::X509Ptr> certs;
  std::vector<Entry> entries = list(email);
  for (const auto& e : entries) certs.push_back(e.certificate());
  Judgement j = judge_certs(std::move(certs), email, now, nullptr);
  for (const auto& r : j.rejected) {
    std::string why;
    for (const auto& p : r.problems) why += (why.empty() ? "" : "; ") + p;
    c.rejections.push_back(r.description + ": " + why);
  }
  if (!j.accepted.empty()) {
    const std::string fp = fingerprint(j.accepted.front().cert.get());
    for (auto& e : entries) {
      if (e.fingerprint == fp) c.chosen = std::move(e);
    }
  }
  return c;
}

}  // namespace token::certs
