#include "directories.hpp"

#include <openssl/err.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "token/error.hpp"

namespace tokenkit {

namespace fs = std::filesystem;
using token::Error;
using token::ErrorKind;

void add_directory_options(po::options_description& d) {
  d.add_options()("ldap", po::value<std::vector<std::string>>(),
                  "a directory to search: ldap://HOST[:PORT] or ldaps://HOST[:PORT]; repeatable")(
      "base", po::value<std::string>(), "search base DN (default: the server's)")(
      "filter", po::value<std::string>(), "search filter, %s is the address (default (mail=%s))")(
      "attribute", po::value<std::vector<std::string>>(),
      "attribute holding certificates (default userCertificate;binary and "
      "userSMIMECertificate); repeatable")("starttls", "ldap://: upgrade to TLS with StartTLS")(
      "ca-file", po::value<std::string>(), "the directory's TLS CA certificate (PEM)")(
      "bind-dn", po::value<std::string>(), "simple bind as this DN (default: anonymous)")(
      "password-file", po::value<std::string>(), "the bind password from this file")(
      "password-env", po::value<std::string>(),
      "... from this environment variable (default TOKENKIT_LDAP_PASSWORD when set)")(
      "password-fd", po::value<int>(), "... from this file descriptor")(
      "timeout", po::value<double>(), "seconds each directory operation may take (default 10)")(
      "network-timeout", po::value<double>(), "seconds to connect (default 5)")(
      "size-limit", po::value<std::size_t>(), "entries read per search (default 50)")(
      "config", po::value<std::string>(),
      "directories file (default: $XDG_CONFIG_HOME/tokenkit/directories.conf)")(
      "no-config", "ignore the directories file")(
      "trust", po::value<std::vector<std::string>>(),
      "CA certificates (PEM) the found certificates must chain to; repeatable")(
      "no-system-cas", "trust only --trust, not the system's CA certificates");
}

std::string default_directories_file() {
  if (const char* d = std::getenv("TOKENKIT_CONFIG_DIR"); d && *d) {
    return (fs::path(d) / "directories.conf").string();
  }
  fs::path base;
  if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) {
    base = x;
  } else if (const char* h = std::getenv("HOME"); h && *h) {
    base = fs::path(h) / ".config";
  } else {
    return {};
  }
  return (base / "tokenkit" / "directories.conf").string();
}

namespace {

int to_ms(double seconds, const std::string& what) {
  if (!(seconds > 0) || seconds > 3600) {
    throw Error(ErrorKind::Usage, what + " must be between 0 and 3600 seconds");
  }
  return static_cast<int>(seconds * 1000);
}

bool yes(const std::string& v) { return v == "yes" || v == "true" || v == "1" || v == "on"; }

// One key of a directory section.
void set_key(token::directory::Config& c, Directories& all, const std::string& key,
             const std::string& value, const std::string& where) {
  if (key == "uri") {
    c.uri = value;
  } else if (key == "base") {
    c.base = value;
  } else if (key == "filter") {
    c.filter = value;
  } else if (key == "attribute") {
    c.attributes.push_back(value);
  } else if (key == "starttls") {
    c.starttls = yes(value);
  } else if (key == "ca-file") {
    c.ca_file = value;
  } else if (key == "bind-dn") {
    c.bind_dn = value;
  } else if (key == "password-file") {
    c.password.file = value;
  } else if (key == "password-env") {
    c.password.env = value;
  } else if (key == "timeout" || key == "network-timeout" || key == "size-limit") {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0') {
      throw Error(ErrorKind::Input, where + ": " + key + " is not a number: \"" + value + "\"");
    }
    if (key == "timeout") c.timeout_ms = to_ms(v, where + ": timeout");
    if (key == "network-timeout") c.network_timeout_ms = to_ms(v, where + ": network-timeout");
    if (key == "size-limit") {
      if (v < 1 || v > 100000) throw Error(ErrorKind::Input, where + ": size-limit out of range");
      c.max_entries = static_cast<std::size_t>(v);
    }
  } else if (key == "trust") {
    all.trust_files.push_back(value);
  } else {
    throw Error(ErrorKind::Input, where + ": unknown key \"" + key + "\"");
  }
}

}  // namespace

Directories read_directories_file(const std::string& path, bool must_exist) {
  Directories d;
  std::ifstream f(path);
  if (!f) {
    if (must_exist) throw Error(ErrorKind::Io, "cannot read the directories file " + path);
    return d;
  }
  po::parsed_options parsed(nullptr);
  try {
    po::options_description none;
    parsed = po::parse_config_file(f, none, true);
  } catch (const po::error& e) {
    throw Error(ErrorKind::Input, path + ": " + e.what());
  }
  // Sections in file order; keys "section.key".
  std::vector<std::string> order;
  std::map<std::string, token::directory::Config> by_name;
  for (const auto& o : parsed.options) {
    const auto dot = o.string_key.find('.');
    if (dot == std::string::npos) {
      throw Error(ErrorKind::Input,
                  path + ": \"" + o.string_key + "\" is outside a [directory] section");
    }
    const std::string section = o.string_key.substr(0, dot);
    const std::string key = o.string_key.substr(dot + 1);
    if (!by_name.count(section)) {
      order.push_back(section);
      by_name[section].attributes.clear();
    }
    set_key(by_name[section], d, key, o.value.empty() ? std::string() : o.value.front(),
            path + " [" + section + "]");
  }
  for (const auto& name : order) {
    auto& c = by_name[name];
    if (c.uri.empty()) throw Error(ErrorKind::Input, path + " [" + name + "]: no uri");
    if (c.attributes.empty()) c.attributes = token::directory::Config{}.attributes;
    c.password.default_env = "TOKENKIT_LDAP_PASSWORD";
    d.list.push_back(std::move(c));
  }
  return d;
}

Directories directories_from(const po::variables_map& vm) {
  Directories d;
  token::directory::Config base;
  if (vm.count("base")) base.base = vm["base"].as<std::string>();
  if (vm.count("filter")) base.filter = vm["filter"].as<std::string>();
  if (vm.count("attribute")) base.attributes = vm["attribute"].as<std::vector<std::string>>();
  base.starttls = vm.count("starttls") != 0;
  if (vm.count("ca-file")) base.ca_file = vm["ca-file"].as<std::string>();
  if (vm.count("bind-dn")) base.bind_dn = vm["bind-dn"].as<std::string>();
  if (vm.count("password-file")) base.password.file = vm["password-file"].as<std::string>();
  if (vm.count("password-env")) base.password.env = vm["password-env"].as<std::string>();
  if (vm.count("password-fd")) base.password.fd = vm["password-fd"].as<int>();
  base.password.default_env = "TOKENKIT_LDAP_PASSWORD";
  if (vm.count("timeout")) base.timeout_ms = to_ms(vm["timeout"].as<double>(), "--timeout");
  if (vm.count("network-timeout")) {
    base.network_timeout_ms = to_ms(vm["network-timeout"].as<double>(), "--network-timeout");
  }
  if (vm.count("size-limit")) {
    base.max_entries = vm["size-limit"].as<std::size_t>();
    if (base.max_entries < 1) throw Error(ErrorKind::Usage, "--size-limit must be at least 1");
  }
  if (vm.count("ldap")) {
    for (const auto& u : vm["ldap"].as<std::vector<std::string>>()) {
      token::directory::Config c = base;
      c.uri = u;
      d.list.push_back(std::move(c));
    }
  }
  if (!vm.count("no-config")) {
    const bool named = vm.count("config") != 0;
    const std::string file = named ? vm["config"].as<std::string>() : default_directories_file();
    if (!file.empty()) {
      Directories f = read_directories_file(file, named);
      for (auto& c : f.list) {
        // Command-line timeouts and limits apply to configured directories too.
        if (vm.count("timeout")) c.timeout_ms = base.timeout_ms;
        if (vm.count("network-timeout")) c.network_timeout_ms = base.network_timeout_ms;
        if (vm.count("size-limit")) c.max_entries = base.max_entries;
        d.list.push_back(std::move(c));
      }
      d.trust_files.insert(d.trust_files.end(), f.trust_files.begin(), f.trust_files.end());
    }
  }
  if (vm.count("trust")) {
    for (const auto& t : vm["trust"].as<std::vector<std::string>>()) d.trust_files.push_back(t);
  }
  d.system_cas = vm.count("no-system-cas") == 0;
  return d;
}

X509_STORE* trust_store(const Directories& d) {
  X509_STORE* s = X509_STORE_new();
  if (s == nullptr) throw Error(ErrorKind::Internal, "out of memory");
  if (d.system_cas && X509_STORE_set_default_paths(s) != 1) ERR_clear_error();
  for (const auto& f : d.trust_files) {
    if (X509_STORE_load_file(s, f.c_str()) != 1) {
      ERR_clear_error();
      X509_STORE_free(s);
      throw Error(ErrorKind::Io, "cannot read CA certificates from " + f);
    }
  }
  return s;
}

}  // namespace tokenkit
