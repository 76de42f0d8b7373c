// Thunderbird's files: profiles.ini, the profile lock, prefs.js/user.js,
// and the certificate dbKey its identity prefs hold.
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "mailclients.hpp"
#include "token/error.hpp"
#include "token/ossl.hpp"

namespace fs = std::filesystem;

namespace tokenkit::mail {

using token::Error;
using token::ErrorKind;

namespace {
std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}
}  // namespace

// ---- Thunderbird profiles ----------------------------------------------------------

std::vector<IniSection> parse_ini(const std::string& text) {
  std::vector<IniSection> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    const std::string t = trim(line);
    if (t.empty() || t[0] == ';' || t[0] == '#') continue;
    if (t.front() == '[' && t.back() == ']') {
      out.push_back({t.substr(1, t.size() - 2), {}});
      continue;
    }
    const auto eq = t.find('=');
    if (eq == std::string::npos || out.empty()) continue;
    out.back().values[trim(t.substr(0, eq))] = trim(t.substr(eq + 1));
  }
  return out;
}

std::vector<std::string> profiles_ini_candidates(const std::string& home) {
  return {home + "/.thunderbird/profiles.ini", home + "/.mozilla-thunderbird/profiles.ini"};
}

std::vector<Profile> profiles_from_ini(const std::string& ini_text, const std::string& ini_dir) {
  const auto sections = parse_ini(ini_text);
  // Newer Thunderbirds name the default per installation: [Install...] Default=path.
  std::string install_default;
  for (const auto& s : sections)
    if (s.name.rfind("Install", 0) == 0 && s.values.count("Default"))
      install_default = s.values.at("Default");
  std::vector<Profile> out;
  for (const auto& s : sections) {
    if (s.name.rfind("Profile", 0) != 0 || !s.values.count("Path")) continue;
    const std::string& path = s.values.at("Path");
    if (path.empty()) continue;
    const bool relative = !s.values.count("IsRelative") || s.values.at("IsRelative") != "0";
    Profile p;
    p.name = s.values.count("Name") ? s.values.at("Name") : path;
    p.path = relative && path[0] != '/' ? ini_dir + "/" + path : path;
    p.is_default = install_default.empty()
                       ? s.values.count("Default") && s.values.at("Default") == "1"
                       : install_default == path;
    out.push_back(p);
  }
  return out;
}

Profile find_profile(const std::string& home, const std::string& which) {
  std::vector<Profile> all;
  std::vector<std::string> searched;
  for (const auto& ini : profiles_ini_candidates(home)) {
    searched.push_back(ini);
    if (auto text = read_text(ini)) {
      auto ps = profiles_from_ini(*text, fs::path(ini).parent_path().string());
      all.insert(all.end(), ps.begin(), ps.end());
    }
  }
  if (all.empty())
    throw Error(ErrorKind::NotFound, "no Thunderbird profile found (searched " + searched[0] +
                                         " and " + searched[1] +
                                         "); name one with --profile-dir DIR");
  std::string names;
  for (const auto& p : all) names += (names.empty() ? "" : ", ") + ("\"" + p.name + "\"");
  std::vector<Profile> hits;
  for (const auto& p : all) {
    if (which.empty()
            ? p.is_default
            : (p.name == which || p.path == which || fs::path(p.path).filename() == which))
      hits.push_back(p);
  }
  if (which.empty() && hits.empty() && all.size() == 1) hits = all;
  if (hits.empty())
    throw Error(which.empty() ? ErrorKind::Ambiguous : ErrorKind::NotFound,
                (which.empty() ? std::string("no default Thunderbird profile among ")
                               : "no Thunderbird profile \"" + which + "\" among ") +
                    names + "; name one: --thunderbird NAME");
  if (hits.size() > 1)
    throw Error(ErrorKind::Ambiguous,
                "several Thunderbird profiles match \"" + which + "\": " + names);
  return hits[0];
}

void check_profile_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec))
    throw Error(ErrorKind::NotFound,
                "the Thunderbird profile directory " + dir + " does not exist");
  if (!fs::is_directory(dir, ec))
    throw Error(ErrorKind::Input,
                dir + " is not a Thunderbird profile directory (not a directory)");
  if (fs::is_empty(dir, ec)) return;  // a profile about to be used for the first time
  for (const char* marker : {"prefs.js", "user.js", "cert9.db", "key4.db", "pkcs11.txt",
                             "times.json", "compatibility.ini"})
    if (fs::exists(dir + "/" + marker, ec)) return;
  throw Error(ErrorKind::Input, dir +
                                    " is not a Thunderbird profile directory (no prefs.js, "
                                    "cert9.db, pkcs11.txt or times.json in it)");
}

std::optional<std::string> profile_lock_holder(const std::string& dir) {
  // Mozilla on Linux holds two locks: a symlink "lock" -> "IP:+PID", and an
  // fcntl() lock on ".parentlock" for as long as the profile is open.
  char target[512];
  const std::string lock = dir + "/lock";
  ssize_t n = ::readlink(lock.c_str(), target, sizeof target - 1);
  if (n > 0) {
    const std::string t(target, static_cast<std::size_t>(n));
    const auto colon = t.rfind(':');
    std::string pid_text = colon == std::string::npos ? t : t.substr(colon + 1);
    if (!pid_text.empty() && pid_text[0] == '+') pid_text.erase(0, 1);
    char* end = nullptr;
    long pid = std::strtol(pid_text.c_str(), &end, 10);
    if (end && *end == '\0' && pid > 0 &&
        (::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM))
      return "Thunderbird (pid " + std::to_string(pid) + ") has the profile " + dir +
             " open (its lock " + lock + " -> " + t + ")";
  }
  const std::string parent = dir + "/.parentlock";
  int fd = ::open(parent.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) fd = ::open(parent.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct flock fl {};
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    const bool asked = ::fcntl(fd, F_GETLK, &fl) == 0;
    ::close(fd);
    if (asked && fl.l_type != F_UNLCK)
      return "Thunderbird (pid " + std::to_string(fl.l_pid) + ") has the profile " + dir +
             " open (it holds " + parent + ")";
  }
  return std::nullopt;
}

// ---- prefs.js / user.js ------------------------------------------------------------

namespace {
// A JavaScript string literal at text[i] ('"' or '\''); returns its value and
// moves i past it, or nullopt when it is not closed.
std::optional<std::string> read_js_string(const std::string& text, std::size_t& i) {
  const char q = text[i++];
  std::string v;
  while (i < text.size()) {
    char c = text[i++];
    if (c == q) return v;
    if (c == '\\' && i < text.size()) {
      char e = text[i++];
      switch (e) {
        case 'n':
          v += '\n';
          break;
        case 't':
          v += '\t';
          break;
        case 'r':
          v += '\r';
          break;
        default:
          v += e;
      }
      continue;
    }
    v += c;
  }
  return std::nullopt;
}

void skip_space(const std::string& t, std::size_t& i) {
  while (i < t.size() && std::isspace(static_cast<unsigned char>(t[i]))) ++i;
}

// One pref(...) statement starting at the '(' in `line`.
std::optional<Pref> parse_pref_args(const std::string& line, std::size_t i) {
  skip_space(line, i);
  if (i >= line.size() || line[i] != '(') return std::nullopt;
  ++i;
  skip_space(line, i);
  if (i >= line.size() || (line[i] != '"' && line[i] != '\'')) return std::nullopt;
  auto name = read_js_string(line, i);
  if (!name) return std::nullopt;
  skip_space(line, i);
  if (i >= line.size() || line[i] != ',') return std::nullopt;
  ++i;
  skip_space(line, i);
  if (i >= line.size()) return std::nullopt;
  Pref p;
  p.name = *name;
  const std::size_t start = i;
  if (line[i] == '"' || line[i] == '\'') {
    auto v = read_js_string(line, i);
    if (!v) return std::nullopt;
    p.value = *v;
    p.is_string = true;
  } else {
    while (i < line.size() && line[i] != ')' && !std::isspace(static_cast<unsigned char>(line[i])))
      ++i;
    p.value = line.substr(start, i - start);
    if (p.value.empty()) return std::nullopt;
  }
  p.raw = line.substr(start, i - start);
  skip_space(line, i);
  if (i >= line.size() || line[i] != ')') return std::nullopt;
  return p;
}

std::optional<Pref> parse_pref_line(const std::string& line) {
  std::size_t i = 0;
  skip_space(line, i);
  for (const char* fn : {"user_pref", "pref", "sticky_pref"}) {
    const std::size_t n = std::strlen(fn);
    if (line.compare(i, n, fn) == 0) return parse_pref_args(line, i + n);
  }
  return std::nullopt;
}
}  // namespace

std::vector<Pref> parse_prefs(const std::string& text) {
  std::vector<Pref> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (auto p = parse_pref_line(line)) out.push_back(std::move(*p));
  return out;
}

std::string quote_pref_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> identities_for_email(const std::vector<Pref>& prefs,
                                              const std::string& email) {
  const std::string prefix = "mail.identity.", suffix = ".useremail";
  std::vector<std::string> out;
  for (const auto& p : prefs) {
    if (p.name.size() <= prefix.size() + suffix.size() || p.name.rfind(prefix, 0) != 0 ||
        p.name.compare(p.name.size() - suffix.size(), suffix.size(), suffix) != 0)
      continue;
    if (lower(trim(p.value)) != lower(trim(email))) continue;
    std::string id = p.name.substr(prefix.size(), p.name.size() - prefix.size() - suffix.size());
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

std::string edit_prefs_text(const std::string& text, const std::vector<Pref>& set,
                            const std::vector<std::string>& remove) {
  std::string out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (auto p = parse_pref_line(line)) {
      const bool drop =
          std::find(remove.begin(), remove.end(), p->name) != remove.end() ||
          std::any_of(set.begin(), set.end(), [&](const Pref& s) { return s.name == p->name; });
      if (drop) continue;
    }
    out += line + "\n";
  }
  for (const auto& p : set) out += "user_pref(" + quote_pref_string(p.name) + ", " + p.raw + ");\n";
  return out;
}

std::string cert_db_key(const token::Bytes& der) {
  const unsigned char* p = der.data();
  token::ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) throw Error(ErrorKind::Input, "not an X.509 certificate");
  // The serial's content octets exactly as encoded (with a leading 00 where
  // DER needs one), as NSS's CERTCertificate.serialNumber holds them.
  const ASN1_INTEGER* serial = X509_get0_serialNumber(x.get());
  int n = i2d_ASN1_INTEGER(serial, nullptr);
  token::Bytes sder(static_cast<std::size_t>(n));
  unsigned char* q = sder.data();
  i2d_ASN1_INTEGER(serial, &q);
  // Skip the tag and the (short or long form) length.
  std::size_t hdr = 2;
  if (sder.size() > 1 && (sder[1] & 0x80)) hdr += sder[1] & 0x7f;
  token::Bytes serial_bytes(sder.begin() + static_cast<long>(hdr), sder.end());
  const unsigned char* issuer = nullptr;
  std::size_t issuer_len = 0;
  if (!X509_NAME_get0_der(X509_get_issuer_name(x.get()), &issuer, &issuer_len))
    throw Error(ErrorKind::Input, "certificate without an issuer name");
  token::Bytes key(8, 0);
  auto put32 = [&](std::size_t v) {
    for (int s = 24; s >= 0; s -= 8) key.push_back(static_cast<unsigned char>((v >> s) & 0xff));
  };
  put32(serial_bytes.size());
  put32(issuer_len);
  key.insert(key.end(), serial_bytes.begin(), serial_bytes.end());
  key.insert(key.end(), issuer, issuer + issuer_len);
  std::string b64(4 * ((key.size() + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(b64.data()), key.data(),
                            static_cast<int>(key.size()));
  b64.resize(static_cast<std::size_t>(len));
  return b64;
}

}  // namespace tokenkit::mail
