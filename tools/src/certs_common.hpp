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
#include "token/smime.hpp"

namespace tokenkit {

// --db when given, else token::certs::Store::default_path().
std::string store_path(const po::variables_map& vm);

Json entry_json(const token::certs::Entry& e, std::time_t now);

}  // namespace tokenkit

namespace tokenkit {

// A recipient of `smime encrypt` (--recipient, --to) and `smime sign
// --encrypt-to`: its certificate and where it came from.
struct Recipient {
  token::ossl::X509Ptr cert;
  std::string from;  // "file bob.pem", "certificate \"bob\" on token ...", an address
};

// What a recipient argument may be: File (--recipient) takes only files;
// Any takes a pkcs11: URI (every usable certificate on the token that
// matches it; a login only when the token may hide them), an existing file
// (PEM or DER), or a mail address (the local store, then the directories).
enum class RecipientKind { Any, File };

// --db, --ldap, --base, --config, --no-config, --trust: where addresses are
// looked up.
void add_recipient_options(po::options_description& d);

// Resolves each argument to certificates; logs what each became. Throws
// Error(NotFound) naming the argument and why each candidate was refused,
// Error(Input) for a URI naming something other than a certificate.
std::vector<Recipient> resolve_recipients(const std::vector<std::string>& specs, RecipientKind kind,
                                          const po::variables_map& vm, std::ostream& log);

// For `smime verify --store-sender-cert`: keeps the signers' certificates,
// and with each the SMIMECapabilities its signer announced.
void store_sender_certificates(const token::smime::VerifyResult& r, const po::variables_map& vm,
                               std::ostream& log);

// The content cipher for these recipients (RFC 8551 section 2.7.1): AES-256
// GCM unless `eo` asks for CBC, moved to the strongest cipher every recipient
// can decrypt when some recipient's capabilities are known (kept by
// `smime verify --store-sender-cert`, or its certificate's RFC 4262
// extension) and lack it; AES-128-CBC, which RFC 8551 requires of every
// agent, at worst. Logs why when it moves.
void choose_content_cipher(const std::vector<Recipient>& recipients,
                           token::smime::EncryptOptions& eo, const po::variables_map& vm,
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
