// Where smime meets the certificate store: recipients by address, senders'
// certificates kept after verification, a token's CA certificates as trust
// anchors.
#include <ctime>
#include <ostream>

#include "certs_common.hpp"
#include "token/certstore.hpp"
#include "token/error.hpp"

namespace tokenkit {

using token::Error;
using token::ErrorKind;
namespace certs = token::certs;

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
