// The local certificate store: correspondents' certificates, as a mail
// client keeps them, so that mail can be encrypted to them. One SQLite file
// ($TOKENKIT_CERTS_DIR/certs.db, else $XDG_DATA_HOME/tokenkit/certs.db);
// every change is one transaction, durable when the call returns.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

#include "token/certcheck.hpp"
#include "token/ossl.hpp"

struct sqlite3;

namespace token::certs {

enum class Source { Import, Verify, Ldap };
std::string source_name(Source s);  // "import", "verify", "ldap"

struct Entry {
  std::string fingerprint;  // SHA-256, lower-case hex
  std::string subject;
  std::string issuer;
  std::string serial;  // hex
  std::vector<std::string> emails;
  std::time_t not_before = 0;
  std::time_t not_after = 0;
  Source source = Source::Import;
  std::time_t added = 0;
  std::string der;

  ossl::X509Ptr certificate() const;  // parsed from der
};

// What a correspondent's mail client announced with a signed message:
// its SMIMECapabilities (RFC 8551 section 2.5.2), DER, as signed at
// `signed_at` (the message's signingTime) and kept at `updated`.
struct Capabilities {
  std::string der;
  std::time_t signed_at = 0;
  std::time_t updated = 0;
};

// The reasons candidates for an address were refused, for error messages.
struct Choice {
  std::optional<Entry> chosen;          // the newest usable one
  std::vector<std::string> rejections;  // "CN=Bob [ab12...]: expired on ..."
};

class Store {
 public:
  // Opens (creating it, its directory 0700, and its tables when missing)
  // the store at `path`. Throws Error(Io) naming the file.
  explicit Store(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // $TOKENKIT_CERTS_DIR/certs.db, else $XDG_DATA_HOME (or ~/.local/share)
  // /tokenkit/certs.db.
  static std::string default_path();
  const std::string& path() const { return path_; }

  // Adds the certificate; false when it was there already (same
  // fingerprint: the first source and time are kept).
  bool add(X509* cert, Source source, std::time_t now);

  // All entries, or those for one address; newest notBefore first.
  std::vector<Entry> list(const std::optional<std::string>& email = std::nullopt) const;
  std::optional<Entry> get(const std::string& fingerprint) const;
  // Entries whose fingerprint starts with `prefix` (at least 8 hex digits).
  std::vector<Entry> find_prefix(const std::string& prefix) const;

  // Keeps the capabilities a verified message from this certificate's owner
  // announced, unless newer ones are kept already (RFC 8551 section 2.7.1:
  // the latest signingTime wins). False when not kept (older, or the
  // certificate is not in the store).
  bool set_capabilities(const std::string& fingerprint, const std::string& der,
                        std::time_t signed_at, std::time_t now);
  std::optional<Capabilities> capabilities(const std::string& fingerprint) const;

  // Removes these entries in one transaction; returns how many went.
  std::size_t remove(const std::vector<std::string>& fingerprints);

  // The newest certificate usable to encrypt to `email` now (see
  // encryption_problems()), and why each other candidate was refused.
  Choice choose(const std::string& email, std::time_t now) const;

 private:
  void exec(const char* sql);
  std::string path_;
  sqlite3* db_ = nullptr;
};

}  // namespace token::certs
