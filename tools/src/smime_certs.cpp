// Where smime meets the certificate store: recipients by address, senders'
// certificates kept after verification, a token's CA certificates as trust
// anchors.
#include <ctime>
#include <ostream>

#include "certs_common.hpp"
#include "directories.hpp"
#include "token/certstore.hpp"
#include "token/error.hpp"

namespace tokenkit {

using token::Error;
using token::ErrorKind;
namespace certs = token::certs;

namespace {

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

// The newest accepted certificate for `email` from the configured
// directories (the directories file, or --ldap); adds to `why` otherwise.
token::ossl::X509Ptr from_directories(const std::string& email, const po::variables_map& vm,
                                      std::string& why, std::ostream& log) {
  Directories dirs = directories_from(vm);
  if (dirs.list.empty()) {
    why += "; no directory is configured (" + default_directories_file() + ")";
    return nullptr;
  }
  std::unique_ptr<X509_STORE, StoreFree> trust(trust_store(dirs));
  for (const auto& c : dirs.list) {
    DirectoryAnswer a = ask_directory(c, email, trust.get());
    if (!a.judgement.accepted.empty()) {
      const auto& j = a.judgement.accepted.front();
      log << "tokenkit smime encrypt: to " << email << ": " << j.description << " (from " << c.uri
          << ")\n";
      return token::ossl::X509Ptr(X509_dup(j.cert.get()));
    }
    if (!a.error.empty()) {
      why += "; " + a.error;
    } else if (a.judgement.rejected.empty()) {
      why += "; directory " + c.uri + " has none";
    }
    for (const auto& r : a.judgement.rejected) {
      why += "; in " + c.uri + ": " + r.description + ": " + join(r.problems, "; ");
    }
  }
  return nullptr;
}

}  // namespace

std::vector<token::ossl::X509Ptr> certificates_for(const std::vector<std::string>& addresses,
                                                   const po::variables_map& vm, std::ostream& log) {
  std::vector<token::ossl::X509Ptr> out;
  if (addresses.empty()) return out;
  certs::Store store(store_path(vm));
  const std::time_t now = std::time(nullptr);
  for (const auto& a : addresses) {
    if (a.find('@') == std::string::npos) {
      throw Error(ErrorKind::Usage, "--to takes a mail address, not \"" + a + "\"");
    }
    certs::Choice c = store.choose(a, now);
    if (c.chosen) {
      log << "tokenkit smime encrypt: to " << a << ": " << c.chosen->subject << " "
          << c.chosen->fingerprint.substr(0, 16) << " (from the certificate store)\n";
      out.push_back(c.chosen->certificate());
      continue;
    }
    std::string why =
        c.rejections.empty()
            ? "the certificate store " + store.path() + " has none for it"
            : "in the certificate store " + store.path() + ": " + join(c.rejections, "; ");
    if (auto x = from_directories(a, vm, why, log)) {
      out.push_back(std::move(x));
      continue;
    }
    throw Error(ErrorKind::NotFound, "no usable certificate for " + a + ": " + why);
  }
  return out;
}

void store_sender_certificates(const std::vector<std::string>& der, const po::variables_map& vm,
                               std::ostream& log) {
  certs::Store store(store_path(vm));
  const std::time_t now = std::time(nullptr);
  for (const auto& d : der) {
    const auto* p = reinterpret_cast<const unsigned char*>(d.data());
    token::ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(d.size())));
    if (!x) throw Error(ErrorKind::Internal, "a verified signer certificate does not re-encode");
    const bool added = store.add(x.get(), certs::Source::Verify, now);
    log << "tokenkit smime verify: " << (added ? "stored" : "already stored")
        << " the certificate of " << certs::subject(x.get()) << " in " << store.path() << "\n";
  }
}

std::vector<std::string> token_ca_certificates(const po::variables_map& vm) {
  TokenOptions topts = token_options(vm);
  if (vm.count("token")) topts.uri = vm["token"].as<std::string>();
  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id);
  return certs::token_authorities(session);
}

}  // namespace tokenkit
