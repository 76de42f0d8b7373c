// What the certs subcommands (and smime's --to and --store-sender-cert)
// share: where the local store is, and how an entry is shown as JSON.
#pragma once

#include <ctime>
#include <string>

#include "cli.hpp"
#include "commands.hpp"
#include "token/certstore.hpp"
#include "token/directory.hpp"
#include "token/error.hpp"

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
                                                   const po::variables_map& vm, std::ostream& log);

// For `smime verify --store-sender-cert`: keeps the signers' certificates.
void store_sender_certificates(const std::vector<std::string>& der, const po::variables_map& vm,
                               std::ostream& log);

// One directory's answer to a lookup, judged.
struct DirectoryAnswer {
  std::string uri;
  std::size_t entries = 0;
  token::certs::Judgement judgement;
  std::vector<std::string> notes;  // limits hit
  std::string error;               // the directory failed
  token::ErrorKind error_kind = token::ErrorKind::Directory;
};
DirectoryAnswer ask_directory(const token::directory::Config& c, const std::string& email,
                              X509_STORE* trust);

int certs_lookup(const Args& args, std::ostream& out);

// For `smime verify --token URI`: the token's CA certificates (DER).
std::vector<std::string> token_ca_certificates(const po::variables_map& vm);

}  // namespace tokenkit
