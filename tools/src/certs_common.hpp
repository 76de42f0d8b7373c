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

namespace tokenkit {

// For `smime encrypt --to EMAIL`: the certificate for each address, from
// the local store (the newest usable one), then from the configured
// directories. Throws Error(NotFound) naming the address and saying why
// each candidate was refused.
std::vector<token::ossl::X509Ptr> certificates_for(const std::vector<std::string>& addresses,
                                                   const po::variables_map& vm,
                                                   std::ostream& log);

// For `smime verify --store-sender-cert`: keeps the signers' certificates.
void store_sender_certificates(const std::vector<std::string>& der, const po::variables_map& vm,
                               std::ostream& log);

// For `smime verify --token URI`: the token's CA certificates (DER).
std::vector<std::string> token_ca_certificates(const po::variables_map& vm);

}  // namespace tokenkit
