#include <iostream>

#include "cli.hpp"
#include "commands.hpp"
#include "token/error.hpp"

namespace tokenkit {

const std::vector<Command>& commands() {
  static const std::vector<Command> all = {
      {"modules", "PKCS#11 modules registered with p11-kit, and their tokens", cmd_modules},
      {"tokens", "slots and tokens of a module: flags, PIN state, mechanisms", cmd_tokens},
      {"objects", "objects on a token: keys, certificates, their safety attributes and URIs",
       cmd_objects},
      {"token", "initialise a token, set or unlock its user PIN", cmd_token},
      {"keygen", "a key pair generated on the token", cmd_keygen},
      {"audit", "every use of a key on a tokenkit software token", cmd_audit},
      {"provision", "many tokens from one manifest: migrate or generate, set PINs, report", cmd_provision},
      {"csr", "a certificate request signed by a key on the token", cmd_csr},
      {"import-cert", "a certificate stored next to its key on the token", cmd_import_cert},
      {"import-p12", "a PKCS#12 file onto a token: key, certificate, chain; verified", cmd_import_p12},
      {"smime", "S/MIME mail with a token key: sign, verify, encrypt, decrypt", cmd_smime},
      {"certs", "correspondents' certificates: the local store, directory lookup", cmd_certs},
      {"register", "a module made known to Thunderbird, NSS databases, p11-kit", cmd_register},
      {"unregister", "undoes register", cmd_unregister},
      {"doctor", "why a mail client does not use a token: findings and fixes", cmd_doctor},
  };
  return all;
}

namespace {
void usage(std::ostream& out) {
  out << "Usage: tokenkit COMMAND [OPTIONS]\n\n"
         "Keys on PKCS#11 tokens, used where they are.\n\nCommands:\n";
  for (const auto& c : commands()) {
    out << "  " << c.name << std::string(12 - std::string(c.name).size(), ' ') << c.summary
        << "\n";
  }
  out << "\nExample:\n  tokenkit objects 'pkcs11:token=alice' --login --pin-file ~/.pin\n\n"
         "`tokenkit COMMAND --help` describes each command. Exit codes: docs/exit-codes.md.\n";
}
}  // namespace

int run_command(const Args& argv, std::ostream& out, std::ostream& err) {
  if (argv.empty() || argv[0] == "--help" || argv[0] == "-h" || argv[0] == "help") {
    usage(argv.empty() ? err : out);
    return argv.empty() ? kExitUsage : kExitOk;
  }
  if (argv[0] == "--version") {
    out << "tokenkit 0.1.0\n";
    return kExitOk;
  }
  for (const auto& c : commands()) {
    if (argv[0] != c.name) continue;
    try {
      return c.run(Args(argv.begin() + 1, argv.end()), out);
    } catch (const token::Error& e) {
      err << "tokenkit " << c.name << ": " << e.what() << "\n";
      return e.exit_code();
    } catch (const std::exception& e) {
      err << "tokenkit " << c.name << ": internal error: " << e.what() << "\n";
      return static_cast<int>(token::ErrorKind::Internal);
    }
  }
  err << "tokenkit: unknown command \"" << argv[0] << "\"; see tokenkit --help\n";
  return kExitUsage;
}

}  // namespace tokenkit
