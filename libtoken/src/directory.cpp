// The directory lookup's side in libtoken: RFC 4515 filters, the password,
// and loading tokenkit-ldap.so (src/ldap/), which holds the LDAP client.
// The module is loaded on the first search and stays loaded (libldap and
// GnuTLS keep global state that dlclose() would leave dangling).
#include "token/directory.hpp"

#include <dlfcn.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <vector>

#include "ldap/plugin.hpp"
#include "token/error.hpp"
#include "token/secret.hpp"

namespace token::directory {

namespace {

// Where the module is, in order: $TOKENKIT_LDAP_PLUGIN; next to an installed
// tokenkit (<bindir>/<TOKENKIT_LDAP_PLUGIN_RELATIVE>); the build tree's
// module; the configured install path. Only files that exist count, so an
// installed tokenkit never loads a build tree's module and a build tree's
// tokenkit finds its own before an installed one.
std::vector<std::string> candidates() {
  std::vector<std::string> out;
  if (const char* env = std::getenv("TOKENKIT_LDAP_PLUGIN"); env != nullptr && *env != '\0') {
    out.emplace_back(env);
    return out;  // named explicitly: nothing else is tried
  }
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    out.push_back((exe.parent_path() / TOKENKIT_LDAP_PLUGIN_RELATIVE / plugin::kFileName)
                      .lexically_normal()
                      .string());
  }
  out.emplace_back(TOKENKIT_LDAP_PLUGIN_BUILD);
  out.emplace_back(TOKENKIT_LDAP_PLUGIN_INSTALLED);
  return out;
}

plugin::SearchFn load_plugin() {
  static std::once_flag once;
  static plugin::SearchFn fn = nullptr;
  static std::string problem;
  std::call_once(once, [] {
    std::string tried;
    for (const std::string& path : candidates()) {
      std::error_code ec;
      if (!std::filesystem::is_regular_file(path, ec)) {
        tried += (tried.empty() ? "" : ", ") + path;
        continue;
      }
      void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (h == nullptr) {
        const char* why = dlerror();
        problem = "cannot load the LDAP module " + path + ": " + (why ? why : "dlopen failed");
        return;
      }
      fn = reinterpret_cast<plugin::SearchFn>(dlsym(h, plugin::kSymbol));
      if (fn == nullptr) {
        problem = path + " is not tokenkit's LDAP module (no " + plugin::kSymbol + ")";
      }
      return;  // loaded: never closed
    }
    problem = std::string("tokenkit's LDAP module (") + plugin::kFileName +
              ") is not installed; looked at " + tried;
  });
  if (fn == nullptr) throw Error(ErrorKind::Directory, "directory lookup unavailable: " + problem);
  return fn;
}

}  // namespace

std::string make_filter(const std::string& pattern, const std::string& email) {
  // RFC 4515 section 3: *, (, ), \ and NUL are written as \XX.
  std::string escaped;
  static const char* hex = "0123456789abcdef";
  for (unsigned char ch : email) {
    if (ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == 0) {
      escaped += '\\';
      escaped += hex[ch >> 4];
      escaped += hex[ch & 15];
    } else {
      escaped += static_cast<char>(ch);
    }
  }
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 's') {
      out += escaped;
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

Found search(const Config& config, const std::string& email) {
  if (config.ca_file && !std::filesystem::exists(*config.ca_file)) {
    throw Error(ErrorKind::Io, "cannot read the directory's CA file " + *config.ca_file);
  }
  const plugin::SearchFn fn = load_plugin();
  const std::string filter = make_filter(config.filter, email);
  Secret password;
  plugin::Request request;
  request.config = &config;
  request.filter = &filter;
  if (config.bind_dn) {
    password =
        read_secret(config.password, "password for " + *config.bind_dn + " at " + config.uri);
    request.password = password.data();
    request.password_size = password.size();
  }
  plugin::Reply reply;
  const int rc = fn(&request, &reply);
  if (rc == 0) return std::move(reply.found);
  if (reply.error_kind == 0) {
    throw Error(ErrorKind::Directory,
                "directory " + config.uri +
                    ": the LDAP module was built from another tokenkit (interface mismatch)");
  }
  throw Error(static_cast<ErrorKind>(reply.error_kind), reply.error);
}

}  // namespace token::directory
