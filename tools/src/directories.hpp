// The directories `certs lookup` and `smime encrypt --to` search: from the
// command line (--ldap URI ...) and from a config file, parsed into plain
// values that tests check alone.
#pragma once

#include <openssl/x509.h>

#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "token/directory.hpp"

namespace tokenkit {

struct Directories {
  std::vector<token::directory::Config> list;
  std::vector<std::string> trust_files;  // CA certificates found certificates must chain to
  bool system_cas = true;
};

// The options `certs lookup` takes (also accepted by `smime encrypt`).
void add_directory_options(po::options_description& d);

// $TOKENKIT_CONFIG_DIR/directories.conf, else $XDG_CONFIG_HOME (or
// ~/.config)/tokenkit/directories.conf.
std::string default_directories_file();

// Reads a directories file (INI: one [section] per directory; keys uri,
// base, filter, starttls, ca-file, bind-dn, password-file, password-env,
// timeout, network-timeout, size-limit, trust). A missing default file is
// no directory; a missing named file, a bad line or an unknown key is
// Error(Input) naming the file.
Directories read_directories_file(const std::string& path, bool must_exist);

// The directories of the command line (--ldap, with --base, --filter, ...),
// then those of --config FILE (or the default file).
Directories directories_from(const po::variables_map& vm);

// A trust store: the system CAs (unless turned off) and the trust files.
X509_STORE* trust_store(const Directories& d);

}  // namespace tokenkit
