// What the certs subcommands (and smime's --to and --store-sender-cert)
// share: where the local store is, and how an entry is shown as JSON.
#pragma once

#include <ctime>
#include <string>

#include "cli.hpp"
#include "token/certstore.hpp"

namespace tokenkit {

// --db when given, else token::certs::Store::default_path().
std::string store_path(const po::variables_map& vm);

Json entry_json(const token::certs::Entry& e, std::time_t now);

}  // namespace tokenkit
