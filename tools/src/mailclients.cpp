#include "mailclients.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "token/error.hpp"
#include "token/ossl.hpp"

namespace fs = std::filesystem;

namespace tokenkit::mail {

using token::Error;
using token::ErrorKind;

// ---- files ----------------------------------------------------------------------

std::optional<std::string> read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tokenkit-tmp";
  mode_t mode = 0644;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) mode = st.st_mode & 07777;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) throw Error(ErrorKind::Io, "cannot write " + tmp + ": " + std::strerror(errno));
  std::size_t done = 0;
  while (done < content.size()) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(ErrorKind::Io, "cannot write " + tmp + ": " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  // Durable before it replaces the old file: a crash leaves one or the other.
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::Io, "cannot write " + tmp + ": " + std::strerror(errno));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    throw Error(ErrorKind::Io, "cannot replace " + path + ": " + why);
  }
}

namespace {
std::string home_dir() {
  const char* h = std::getenv("HOME");
  if (!h || !*h) throw Error(ErrorKind::Usage, "HOME is not set; name the place explicitly");
  return h;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

void backup(const std::string& path) {
  if (auto text = read_text(path)) write_atomic(path + ".tokenkit-backup", *text);
}
}  // namespace

// ---- running programs -----------------------------------------------------------

ProgramResult run_program(const std::vector<std::string>& argv) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0)
    throw Error(ErrorKind::Io, std::string("pipe: ") + std::strerror(errno));
  pid_t pid = ::fork();
  if (pid < 0) throw Error(ErrorKind::Io, std::string("fork: ") + std::strerror(errno));
  if (pid == 0) {
    int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, 0);
    ::dup2(pipefd[1], 1);
    ::dup2(pipefd[1], 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  ::close(pipefd[1]);
  ProgramResult r;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(pipefd[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    r.output.append(buf, static_cast<std::size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (r.exit_code == 127)
    throw Error(ErrorKind::Io,
                "cannot run " + argv[0] +
                    " (NSS's tools: Debian package libnss3-tools): " + trim(r.output));
  return r;
}

// ---- NSS ---------------------------------------------------------------------------

std::vector<NssModule> parse_modutil_list(const std::string& text) {
  // "  2. tokenkit\n\tlibrary name: /usr/lib/...\n"
  std::vector<NssModule> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    std::size_t i = 0;
    while (i < t.size() && std::isdigit(static_cast<unsigned char>(t[i]))) ++i;
    if (i > 0 && i + 1 < t.size() && t[i] == '.' && t[i + 1] == ' ') {
      out.push_back({trim(t.substr(i + 2)), {}});
      continue;
    }
    const std::string key = "library name:";
    if (!out.empty() && t.rfind(key, 0) == 0) out.back().library = trim(t.substr(key.size()));
  }
  return out;
}

std::string default_nss_db() { return home_dir() + "/.pki/nssdb"; }

bool nss_db_exists(const std::string& dir) {
  return fs::exists(dir + "/cert9.db") || fs::exists(dir + "/pkcs11.txt");
}

std::vector<NssModule> parse_pkcs11_txt(const std::string& text) {
  // Blocks of key=value lines separated by blank lines: library=, name=, ...
  std::vector<NssModule> out;
  std::istringstream in(text);
  std::string line;
  bool open = false;
  auto unquote = [](std::string v) {
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front())
      v = v.substr(1, v.size() - 2);
    return v;
  };
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty()) {
      open = false;
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = trim(t.substr(0, eq));
    if (key != "library" && key != "name") continue;
    if (!open) {
      out.emplace_back();
      open = true;
    }
    (key == "library" ? out.back().library : out.back().name) = unquote(trim(t.substr(eq + 1)));
  }
  return out;
}

std::vector<NssModule> nss_modules(const std::string& dir) {
  ProgramResult r = run_program({"modutil", "-list", "-dbdir", "sql:" + dir});
  if (r.exit_code != 0)
    throw Error(ErrorKind::Io, "cannot read the NSS database " + dir + ": " + trim(r.output));
  return parse_modutil_list(r.output);
}

// ---- NSS database locks -------------------------------------------------------------

namespace {

// "python3 (pid 4242)", from /proc; "another process" when the lock names
// no process (an open file description lock).
std::string describe_process(long pid) {
  if (pid <= 0) return "another process (an open file description lock)";
  std::string name = trim(read_text("/proc/" + std::to_string(pid) + "/comm").value_or(""));
  return (name.empty() ? "process" : name) + " (pid " + std::to_string(pid) + ")";
}

// The process holding an SQLite lock on `file`, if any. SQLite (unix VFS,
// os_unix.c) takes POSIX fcntl() locks on bytes from 0x40000000: PENDING,
// RESERVED, then 510 SHARED bytes; a reader holds SHARED, a writer RESERVED
// to EXCLUSIVE. Asking F_GETLK for a write lock over all 512 bytes finds
// any of them without taking one.
std::optional<long> sqlite_lock_pid(const std::string& file) {
  int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0x40000000;
  fl.l_len = 512;
  const bool asked = ::fcntl(fd, F_GETLK, &fl) == 0;
  ::close(fd);
  if (!asked || fl.l_type == F_UNLCK) return std::nullopt;
  return static_cast<long>(fl.l_pid);
}

// Other processes (of those this user may inspect) with `files` open.
std::vector<std::string> processes_with_open(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  std::error_code ec;
  const std::string self = std::to_string(::getpid());
  for (const auto& p : fs::directory_iterator("/proc", ec)) {
    const std::string pid = p.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid == self) continue;
    std::error_code fec;
    for (const auto& fd : fs::directory_iterator(p.path() / "fd", fec)) {
      std::error_code lec;
      const fs::path target = fs::read_symlink(fd.path(), lec);
      if (lec) continue;
      const auto hit = std::find(files.begin(), files.end(), target.string());
      if (hit != files.end()) {
        out.push_back(describe_process(std::stol(pid)) + " has " +
                      fs::path(*hit).filename().string() + " open");
        break;
      }
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> nss_db_lock_holder(const std::string& dir) {
  std::error_code ec;
  // sql: (cert9.db, key4.db): an SQLite lock that is still held after a
  // moment (a reader's lock lasts milliseconds; one that stays makes modutil
  // fail with SEC_ERROR_BAD_DATABASE or CKR_GENERAL_ERROR).
  for (const char* name : {"cert9.db", "key4.db"}) {
    const std::string file = dir + "/" + name;
    if (!fs::exists(file, ec)) continue;
    std::optional<long> pid;
    for (int tries = 0; tries < 20; ++tries) {
      pid = sqlite_lock_pid(file);
      if (!pid) break;
      ::usleep(100 * 1000);
    }
    if (pid) {
      return describe_process(*pid) + " holds an SQLite lock on " + file +
             " (another program has the database open for a change)";
    }
  }
  // dbm: (cert8.db, key3.db, secmod.db, Berkeley DB 1.85): no locks at all,
  // so a writer beside another program that has the files open corrupts
  // them; open is held.
  std::vector<std::string> legacy;
  for (const char* name : {"cert8.db", "key3.db", "secmod.db"}) {
    const fs::path file = fs::weakly_canonical(dir + "/" + name, ec);
    if (!ec && fs::exists(file, ec)) legacy.push_back(file.string());
  }
  if (!legacy.empty()) {
    auto holders = processes_with_open(legacy);
    if (!holders.empty()) {
      std::string all;
      for (const auto& h : holders) all += (all.empty() ? "" : ", ") + h;
      return all + " (a legacy DBM database, which has no locking)";
    }
  }
  return std::nullopt;
}

void check_nss_db_unlocked(const std::string& dir) {
  if (auto holder = nss_db_lock_holder(dir)) {
    throw Error(ErrorKind::Conflict, "the NSS database " + dir + " is in use: " + *holder +
                                         "; close that program first, nothing was changed");
  }
}

void check_nss_db_not_legacy(const std::string& dir) {
  std::error_code lec;
  if (!fs::exists(dir + "/cert9.db", lec) &&
      (fs::exists(dir + "/cert8.db", lec) || fs::exists(dir + "/key3.db", lec))) {
    // NSS would upgrade it to sql: first, and stop to ask for the old
    // database's password ("Enter Password or Pin for "NSS Certificate DB"")
    // on stdin, after creating cert9.db and key4.db.
    throw Error(ErrorKind::Input,
                dir +
                    " holds a legacy DBM NSS database (cert8.db, key3.db) and no cert9.db: NSS "
                    "upgrades it to the sql: format when it is first changed, and asks for its "
                    "password then; upgrade it at a terminal first (certutil -N -d sql:" +
                    dir + " asks for it), nothing was changed");
  }
}

namespace {
bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (a == b) return true;
  return fs::equivalent(a, b, ec) && !ec;
}

void check_db_dir(const std::string& dir) {
  if (fs::exists(dir) && !fs::is_directory(dir))
    throw Error(ErrorKind::Input, dir + " is not a directory, so not an NSS database");
}
}  // namespace

Change nss_register(const std::string& dir, const std::string& name, const std::string& library,
                    bool create) {
  check_db_dir(dir);
  Change c{"NSS database " + dir, {}, false};
  std::vector<std::string> created;
  check_nss_db_unlocked(dir);
  check_nss_db_not_legacy(dir);
  if (!nss_db_exists(dir)) {
    if (!create)
      throw Error(ErrorKind::NotFound, "no NSS database in " + dir + " (no cert9.db/pkcs11.txt)");
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(ErrorKind::Io, "cannot create " + dir + ": " + ec.message());
    // An empty password, as Thunderbird and Chromium make theirs.
    ProgramResult r = run_program({"certutil", "-N", "-d", "sql:" + dir, "--empty-password"});
    if (r.exit_code != 0)
      throw Error(ErrorKind::Io, "cannot create an NSS database in " + dir + ": " + trim(r.output));
    created.push_back("created the database");
  }
  for (const auto& m : nss_modules(dir)) {
    if (m.name == name && !m.library.empty() && same_file(m.library, library)) {
      c.what = created.empty() ? "module \"" + name + "\" already registered (" + library + ")"
                               : "created the database; module already registered";
      c.changed = !created.empty();
      return c;
    }
    if (m.name == name)
      throw Error(ErrorKind::Conflict, "the NSS database " + dir + " already has a module \"" +
                                           name + "\" with library " + m.library +
                                           "; unregister it first or choose another --name");
    if (!m.library.empty() && same_file(m.library, library))
      throw Error(ErrorKind::Conflict,
                  "the NSS database " + dir + " already has " + library + " as module \"" + m.name +
                      "\"; unregister that name first (--name \"" + m.name + "\")");
  }
  backup(dir + "/pkcs11.txt");
  ProgramResult r =
      run_program({"modutil", "-add", name, "-libfile", library, "-dbdir", "sql:" + dir, "-force"});
  if (r.exit_code != 0) check_nss_db_unlocked(dir);  // taken since: name the holder
  if (r.exit_code != 0)
    throw Error(ErrorKind::Io, "modutil could not add " + library + " to the NSS database " + dir +
                                   ": " + trim(r.output));
  created.push_back("added module \"" + name + "\" (" + library + ")");
  c.what = created.size() == 2 ? created[0] + "; " + created[1] : created[0];
  c.changed = true;
  return c;
}

Change nss_unregister(const std::string& dir, const std::string& name, const std::string& library) {
  check_db_dir(dir);
  Change c{"NSS database " + dir, {}, false};
  if (!nss_db_exists(dir)) {
    c.what = "no database here; nothing to remove";
    return c;
  }
  check_nss_db_unlocked(dir);
  for (const auto& m : nss_modules(dir)) {
    if (m.name != name) continue;
    if (!library.empty() && !m.library.empty() && !same_file(m.library, library))
      throw Error(ErrorKind::Conflict, "the module \"" + name + "\" in the NSS database " + dir +
                                           " is " + m.library + ", not " + library +
                                           "; left as it is");
    backup(dir + "/pkcs11.txt");
    ProgramResult r = run_program({"modutil", "-delete", name, "-dbdir", "sql:" + dir, "-force"});
    if (r.exit_code != 0) check_nss_db_unlocked(dir);
    if (r.exit_code != 0)
      throw Error(ErrorKind::Io, "modutil could not remove \"" + name +
                                     "\" from the NSS database " + dir + ": " + trim(r.output));
    c.what = "removed module \"" + name + "\" (" + m.library + ")";
    c.changed = true;
    return c;
  }
  c.what = "module \"" + name + "\" not registered; nothing to remove";
  return c;
}

namespace {
// NSS reads "a:b" in a nickname as token "a", certificate "b".
std::string no_colons(std::string s) {
  std::replace(s.begin(), s.end(), ':', '-');
  return s;
}
}  // namespace

std::string ca_nickname(const std::string& ca_file) {
  auto text = read_text(ca_file);
  if (!text) throw Error(ErrorKind::Io, "cannot read the CA certificate " + ca_file);
  const std::string& der_or_pem = *text;
  token::ossl::Bio bio(BIO_new_mem_buf(der_or_pem.data(), static_cast<int>(der_or_pem.size())));
  token::ossl::X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(der_or_pem.data());
    x.reset(d2i_X509(nullptr, &p, static_cast<long>(der_or_pem.size())));
  }
  if (!x) throw Error(ErrorKind::Input, ca_file + " holds no certificate (PEM or DER)");
  char cn[256] = {0};
  if (X509_NAME_get_text_by_NID(X509_get_subject_name(x.get()), NID_commonName, cn, sizeof cn) > 0)
    return "tokenkit CA - " + no_colons(cn);
  char* one = X509_NAME_oneline(X509_get_subject_name(x.get()), nullptr, 0);
  std::string name = one ? one : "unnamed";
  OPENSSL_free(one);
  return "tokenkit CA - " + no_colons(name);
}

namespace {
bool nss_has_cert(const std::string& dir, const std::string& nick) {
  return run_program({"certutil", "-L", "-d", "sql:" + dir, "-n", nick}).exit_code == 0;
}
}  // namespace

Change nss_trust_ca(const std::string& dir, const std::string& ca_file) {
  const std::string nick = ca_nickname(ca_file);
  Change c{"NSS database " + dir, {}, false};
  check_nss_db_unlocked(dir);
  if (nss_has_cert(dir, nick)) {
    c.what = "CA \"" + nick + "\" already trusted";
    return c;
  }
  ProgramResult r = run_program(
      {"certutil", "-A", "-d", "sql:" + dir, "-n", nick, "-t", ",C,", "-a", "-i", ca_file});
  if (r.exit_code != 0) {
    // DER files: certutil reads them without -a.
    r = run_program({"certutil", "-A", "-d", "sql:" + dir, "-n", nick, "-t", ",C,", "-i", ca_file});
  }
  if (r.exit_code != 0) check_nss_db_unlocked(dir);
  if (r.exit_code != 0)
    throw Error(ErrorKind::Io, "certutil could not add " + ca_file + " to the NSS database " + dir +
                                   ": " + trim(r.output));
  c.what = "trusted CA \"" + nick + "\" for email (" + ca_file + ")";
  c.changed = true;
  return c;
}

Change nss_untrust_ca(const std::string& dir, const std::string& ca_file) {
  const std::string nick = ca_nickname(ca_file);
  Change c{"NSS database " + dir, {}, false};
  if (nss_db_exists(dir)) check_nss_db_unlocked(dir);
  if (!nss_db_exists(dir) || !nss_has_cert(dir, nick)) {
    c.what = "CA \"" + nick + "\" not there; nothing to remove";
    return c;
  }
  ProgramResult r = run_program({"certutil", "-D", "-d", "sql:" + dir, "-n", nick});
  if (r.exit_code != 0) check_nss_db_unlocked(dir);
  if (r.exit_code != 0)
    throw Error(ErrorKind::Io, "certutil could not remove \"" + nick + "\" from the NSS database " +
                                   dir + ": " + trim(r.output));
  c.what = "removed CA \"" + nick + "\"";
  c.changed = true;
  return c;
}

// ---- p11-kit ------------------------------------------------------------------------

std::string p11kit_user_dir() {
  const char* x = std::getenv("XDG_CONFIG_HOME");
  std::string base = x && *x ? std::string(x) : home_dir() + "/.config";
  return base + "/pkcs11/modules";
}

std::string p11kit_module_path(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.rfind("module:", 0) == 0) return trim(t.substr(7));
  }
  return {};
}

namespace {
void check_module_name(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos || name[0] == '.')
    throw Error(ErrorKind::Usage, "\"" + name + "\" cannot be a p11-kit module name");
}
}  // namespace

Change p11kit_register(const std::string& name, const std::string& library) {
  check_module_name(name);
  const std::string dir = p11kit_user_dir();
  const std::string file = dir + "/" + name + ".module";
  Change c{file, {}, false};
  std::error_code ec;
  if (fs::is_directory(dir, ec)) {
    for (const auto& e : fs::directory_iterator(dir, ec)) {
      if (e.path().extension() != ".module") continue;
      auto text = read_text(e.path().string());
      if (!text) continue;
      const std::string path = p11kit_module_path(*text);
      const bool ours = e.path().string() == file;
      if (ours && same_file(path, library)) {
        c.what = "already registered (" + library + ")";
        return c;
      }
      if (ours)
        throw Error(ErrorKind::Conflict, file + " already names another module, " + path +
                                             "; unregister it first or choose another --name");
      if (!path.empty() && same_file(path, library))
        throw Error(ErrorKind::Conflict,
                    library + " is already registered with p11-kit as " + e.path().string());
    }
  }
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorKind::Io, "cannot create " + dir + ": " + ec.message());
  write_atomic(file, "# Registered by tokenkit register --p11-kit\nmodule: " + library + "\n");
  c.what = "added module \"" + name + "\" (" + library + ")";
  c.changed = true;
  return c;
}

Change p11kit_unregister(const std::string& name, const std::string& library) {
  check_module_name(name);
  const std::string file = p11kit_user_dir() + "/" + name + ".module";
  Change c{file, {}, false};
  auto text = read_text(file);
  if (!text) {
    c.what = "not registered; nothing to remove";
    return c;
  }
  const std::string path = p11kit_module_path(*text);
  if (!library.empty() && !path.empty() && !same_file(path, library))
    throw Error(ErrorKind::Conflict,
                file + " names " + path + ", not " + library + "; left as it is");
  if (::unlink(file.c_str()) != 0)
    throw Error(ErrorKind::Io, "cannot remove " + file + ": " + std::strerror(errno));
  c.what = "removed module \"" + name + "\" (" + path + ")";
  c.changed = true;
  return c;
}

}  // namespace tokenkit::mail

namespace tokenkit::mail {

TokenCertificate certificate_for_key(const token::Session& session, const token::Uri& uri) {
  // By id and label only: the URI may name the private key, which is
  // invisible before login, while its public key and certificate are not.
  token::AttributeTemplate match = uri.object_template().only({CKA_ID, CKA_LABEL});
  std::vector<TokenCertificate> found;
  auto add_cert = [&](CK_OBJECT_HANDLE h) {
    for (const auto& c : found)
      if (c.handle == h) return;
    const CK_ATTRIBUTE_TYPE types[] = {CKA_VALUE, CKA_ID, CKA_LABEL};
    auto v = session.read(h, types);
    TokenCertificate c;
    c.handle = h;
    if (const auto* b = v.bytes(CKA_VALUE)) c.der = *b;
    if (const auto* b = v.bytes(CKA_ID)) c.id = *b;
    c.label = v.string_value(CKA_LABEL).value_or("");
    found.push_back(std::move(c));
  };
  for (CK_OBJECT_HANDLE h : session.find(match)) {
    const CK_ATTRIBUTE_TYPE types[] = {CKA_CLASS, CKA_ID, CKA_CERTIFICATE_TYPE};
    auto v = session.read(h, types);
    const auto cls = v.ulong_value(CKA_CLASS);
    if (cls == CKO_CERTIFICATE) {
      if (v.ulong_value(CKA_CERTIFICATE_TYPE).value_or(CKC_X_509) == CKC_X_509) add_cert(h);
      continue;
    }
    if (cls != CKO_PRIVATE_KEY && cls != CKO_PUBLIC_KEY) continue;
    const auto* id = v.bytes(CKA_ID);
    if (!id || id->empty()) continue;
    token::AttributeTemplate certs;
    certs.add(CKA_CLASS, CKO_CERTIFICATE).add(CKA_CERTIFICATE_TYPE, CKC_X_509).add(CKA_ID, *id);
    for (CK_OBJECT_HANDLE c : session.find(certs)) add_cert(c);
  }
  if (found.empty())
    throw Error(ErrorKind::NotFound, "no certificate on " + session.context() + " for " +
                                         uri.str() +
                                         " (none matches, and no key it names has one with its "
                                         "CKA_ID; `tokenkit doctor` tells why)");
  if (found.size() > 1) {
    std::string labels;
    for (const auto& c : found) labels += (labels.empty() ? "\"" : ", \"") + c.label + "\"";
    throw Error(ErrorKind::Ambiguous, std::to_string(found.size()) + " certificates on " +
                                          session.context() + " match " + uri.str() + " (" +
                                          labels + "); name one with id= or object= in the URI");
  }
  return found[0];
}

}  // namespace tokenkit::mail
