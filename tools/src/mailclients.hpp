// Where mail clients look for PKCS#11 modules and certificates, and how
// tokenkit changes those places: NSS databases (through NSS's own modutil),
// Thunderbird profiles (profiles.ini, the profile lock, prefs.js/user.js)
// and p11-kit's user configuration. Used by `register`, `unregister` and
// `doctor`; the parsers of outside files are plain functions, fuzzed alone.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/session.hpp"
#include "token/uri.hpp"

namespace tokenkit::mail {

// ---- running NSS's tools ----------------------------------------------------

struct ProgramResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};
// Runs argv (searched in PATH) with stdin from /dev/null. Throws
// token::Error(Io) naming the program when it cannot be started.
ProgramResult run_program(const std::vector<std::string>& argv);

// ---- NSS databases ------------------------------------------------------------

struct NssModule {
  std::string name;
  std::string library;  // empty for NSS's built-in modules
};
// The modules listed by `modutil -list` (its text output).
std::vector<NssModule> parse_modutil_list(const std::string& text);

// What one change did, for the report: "added module ..." or "nothing to do".
struct Change {
  std::string where;  // the database, profile or file
  std::string what;
  bool changed = false;
};

// $HOME/.pki/nssdb, the shared database Evolution and Chromium read.
std::string default_nss_db();
bool nss_db_exists(const std::string& dir);
// The modules a pkcs11.txt names (read without loading any of them).
std::vector<NssModule> parse_pkcs11_txt(const std::string& text);
std::vector<NssModule> nss_modules(const std::string& dir);
// What holds the NSS database in `dir` so that changing it now would fail
// half-way (modutil: SEC_ERROR_BAD_DATABASE, CKR_GENERAL_ERROR) or corrupt
// it: for sql: databases an SQLite lock on cert9.db or key4.db still held
// after about 2 s (found with F_GETLK, without taking it), naming the
// process; for legacy dbm: ones (cert8.db, key3.db, secmod.db), which have no
// locks, another process of this user with one of them open. nullopt when
// nothing holds it.
std::optional<std::string> nss_db_lock_holder(const std::string& dir);
// Throws Error(Conflict) naming the database and its holder.
void check_nss_db_unlocked(const std::string& dir);
// Throws Error(Input) when `dir` holds a legacy DBM database (cert8.db,
// key3.db) and no cert9.db: NSS would upgrade it on the first change and ask
// for its password on stdin (certutil waits for ever without a terminal).
void check_nss_db_not_legacy(const std::string& dir);
// Adds `library` as `name` (creating an empty database first when `create`
// and there is none); nothing when it is already there. A module of the same
// name with another library, or the same library under another name, is a
// Conflict. pkcs11.txt is copied to pkcs11.txt.tokenkit-backup first.
Change nss_register(const std::string& dir, const std::string& name, const std::string& library,
                    bool create);
Change nss_unregister(const std::string& dir, const std::string& name, const std::string& library);
// A CA certificate (PEM or DER file) trusted for email (certutil trust
// ",C,") under the nickname "tokenkit CA - <subject CN>"; nothing when a
// certificate of that nickname is there. Thunderbird clears an identity's
// certificate prefs when the certificate does not chain to a trusted CA.
Change nss_trust_ca(const std::string& dir, const std::string& ca_file);
// The nickname nss_trust_ca() gives; throws Io/Input for an unreadable or
// non-certificate file.
std::string ca_nickname(const std::string& ca_file);
Change nss_untrust_ca(const std::string& dir, const std::string& ca_file);

// ---- Thunderbird ----------------------------------------------------------------

struct IniSection {
  std::string name;
  std::map<std::string, std::string> values;
};
std::vector<IniSection> parse_ini(const std::string& text);

struct Profile {
  std::string name;
  std::string path;  // absolute
  bool is_default = false;
};
// The profiles.ini files searched: ~/.thunderbird and ~/.mozilla-thunderbird.
std::vector<std::string> profiles_ini_candidates(const std::string& home);
std::vector<Profile> profiles_from_ini(const std::string& ini_text, const std::string& ini_dir);
// The profile named (by Name= or path) or, for an empty `which`, the default.
Profile find_profile(const std::string& home, const std::string& which);
// Throws Input when `dir` is not a profile directory (empty ones are).
void check_profile_dir(const std::string& dir);
// "Thunderbird (pid 1234) holds ..." when the profile is in use; nullopt when free.
std::optional<std::string> profile_lock_holder(const std::string& dir);

struct Pref {
  std::string name;
  std::string raw;    // the value as written: "text", 12, true
  std::string value;  // strings unquoted and unescaped; others as written
  bool is_string = false;
};
// The user_pref(...) / pref(...) lines of prefs.js or user.js; others skipped.
std::vector<Pref> parse_prefs(const std::string& text);
std::string quote_pref_string(const std::string& s);

// Identity keys ("id1") whose useremail is `email` (case-insensitive).
std::vector<std::string> identities_for_email(const std::vector<Pref>& prefs,
                                              const std::string& email);
// user.js text with `set` written (replacing earlier lines for those names)
// and every line for a name in `remove` dropped.
std::string edit_prefs_text(const std::string& text, const std::vector<Pref>& set,
                            const std::vector<std::string>& remove);

// The key Thunderbird stores in mail.identity.*.{signing,encryption}_cert_dbkey
// (nsNSSCertificate::GetDbKey): base64 of 8 zero bytes, the serial's and
// the issuer's lengths (32-bit big-endian), the serial INTEGER's content
// bytes, and the issuer Name's DER.
std::string cert_db_key(const token::Bytes& cert_der);

// ---- p11-kit ------------------------------------------------------------------------

// $XDG_CONFIG_HOME/pkcs11/modules (default ~/.config/pkcs11/modules).
std::string p11kit_user_dir();
Change p11kit_register(const std::string& name, const std::string& library);
Change p11kit_unregister(const std::string& name, const std::string& library);
// The `module:` line of a .module file; empty when it has none.
std::string p11kit_module_path(const std::string& text);

// ---- the token side ----------------------------------------------------------------

struct TokenCertificate {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  token::Bytes der, id;
  std::string label;
};
// The one certificate a key URI means: the certificate(s) the URI names, or
// those sharing the CKA_ID of the keys it names. NotFound / Ambiguous else.
TokenCertificate certificate_for_key(const token::Session& session, const token::Uri& uri);

// ---- files ------------------------------------------------------------------------

std::optional<std::string> read_text(const std::string& path);
// Writes beside `path` and renames onto it; the mode of a file it replaces.
void write_atomic(const std::string& path, const std::string& content);

}  // namespace tokenkit::mail
