// tokenkit csr: a certificate request signed on the token.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "output.hpp"
#include "token/error.hpp"
#include "token/keygen.hpp"

namespace tokenkit {

int cmd_csr(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("key", po::value<std::string>(),
                                              "pkcs11: URI of the key")(
      "subject", po::value<std::string>(), "subject, e.g. /CN=Alice Example/O=Example Corp")(
      "email", po::value<std::vector<std::string>>(), "email address (repeatable)")(
      "out", po::value<std::string>(), "write the PEM request here (default: standard output)");
  add_token_options(d);
  add_pin_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out, "tokenkit csr --key URI --subject /CN=... --email ADDR [--out FILE]",
               "Writes a PKCS#10 certificate request for a key on the token, signed there\n"
               "(SHA-256), with subjectAltName email, keyUsage and emailProtection: what a CA\n"
               "needs to issue an S/MIME certificate. Store the certificate it returns with\n"
               "`tokenkit import-cert`.",
               "tokenkit csr --key 'pkcs11:token=mail;object=Alice mail' --subject '/CN=Alice' "
               "--email alice@example.org --out alice.csr --pin-file ~/.pin",
               d);
    return kExitOk;
  }
  if (!p.vm.count("key")) throw token::Error(token::ErrorKind::Usage, "csr needs --key URI");
  if (!p.vm.count("subject")) throw token::Error(token::ErrorKind::Usage, "csr needs --subject");
  TokenOptions topts = token_options(p.vm);
  topts.uri = p.vm["key"].as<std::string>();
  PinOptions pin = pin_options(p.vm);
  token::CsrRequest req;
  req.subject = p.vm["subject"].as<std::string>();
  if (p.vm.count("email")) req.emails = p.vm["email"].as<std::vector<std::string>>();
  OpenedToken tok = open_session(topts, pin, Login::Always, false);
  const std::string pem = token::make_csr(tok.session, tok.target.selector.uri, req);
  std::optional<std::string> target;
  if (p.vm.count("out")) target = p.vm["out"].as<std::string>();
  if (!target) {
    out << pem;
    return kExitOk;
  }
  Output file(target);
  BIO_write(file.bio(), pem.data(), static_cast<int>(pem.size()));
  file.commit();
  return kExitOk;
}

}  // namespace tokenkit
