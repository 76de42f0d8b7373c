// tokenkit certs: the local store of correspondents' certificates (list,
// import, export, remove) and directory lookup (cmd_certs_lookup.cpp).
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>

#include "certs_common.hpp"
#include "cli.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "token/certstore.hpp"
#include "token/error.hpp"

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;
namespace certs = token::certs;

void add_db_option(po::options_description& d) {
  d.add_options()("db", po::value<std::string>(),
                  "the store file (default: $TOKENKIT_CERTS_DIR/certs.db, else "
                  "$XDG_DATA_HOME/tokenkit/certs.db)")("json", "print JSON");
}

int list(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("email", po::value<std::string>(),
                                              "only the certificates for this address");
  add_db_option(d);
  po::positional_options_description pos;
  pos.add("email", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit certs list [EMAIL] [--json]",
               "Lists the certificates in the local store, newest first: addresses, validity,\n"
               "SHA-256 fingerprint, where each came from (import, verify, ldap) and when.\n"
               "For one address, marks the one `smime encrypt --to` would choose.",
               "tokenkit certs list bob@example.org --json", d);
    return kExitOk;
  }
  certs::Store store(store_path(p.vm));
  std::optional<std::string> email;
  if (p.vm.count("email")) email = p.vm["email"].as<std::string>();
  const std::time_t now = std::time(nullptr);
  std::vector<certs::Entry> entries = store.list(email);
  std::string chosen;
  if (email) {
    if (auto c = store.choose(*email, now); c.chosen) chosen = c.chosen->fingerprint;
  }
  if (p.vm.count("json")) {
    Json a = Json::array();
    for (const auto& e : entries) {
      Json j = entry_json(e, now);
      if (email) j["chosen"] = e.fingerprint == chosen;
      a.push_back(std::move(j));
    }
    out << a.dump(2) << "\n";
    return kExitOk;
  }
  if (entries.empty()) {
    out << (email ? "no certificates for " + *email : std::string("the store is empty")) << " ("
        << store.path() << ")\n";
    return kExitOk;
  }
  for (const auto& e : entries) {
    out << e.fingerprint << (e.fingerprint == chosen ? "  (chosen for " + *email + ")" : "")
        << "\n  subject   " << e.subject << "\n  emails    " << join(e.emails, ", ")
        << "\n  valid     " << certs::iso_time(e.not_before) << " to "
        << certs::iso_time(e.not_after)
        << (now > e.not_after    ? "  EXPIRED"
            : now < e.not_before ? "  NOT YET VALID"
                                 : "")
        << "\n  source    " << certs::source_name(e.source) << ", added "
        << certs::iso_time(e.added) << "\n";
  }
  return kExitOk;
}

int import(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("file", po::value<std::vector<std::string>>(),
                                              "certificate files (PEM, possibly several, or DER)");
  add_db_option(d);
  po::positional_options_description pos;
  pos.add("file", -1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit certs import FILE... [--json]",
               "Adds correspondents' certificates to the local store. A certificate already\n"
               "there is kept once; several certificates for one address are all kept.\n"
               "Every file is read first: if one is not a certificate, nothing is added.",
               "tokenkit certs import bob.pem carol.der", d);
    return kExitOk;
  }
  if (!p.vm.count("file")) throw Error(ErrorKind::Usage, "certs import needs FILE");
  std::vector<token::ossl::X509Ptr> all;
  for (const auto& f : p.vm["file"].as<std::vector<std::string>>()) {
    for (auto& c : certs::read_certificate_file(f)) all.push_back(std::move(c));
  }
  certs::Store store(store_path(p.vm));
  const std::time_t now = std::time(nullptr);
  Json a = Json::array();
  for (const auto& c : all) {
    const bool added = store.add(c.get(), certs::Source::Import, now);
    const std::string fp = certs::fingerprint(c.get());
    if (p.vm.count("json")) {
      a.push_back({{"fingerprint", fp},
                   {"subject", certs::subject(c.get())},
                   {"emails", certs::emails(c.get())},
                   {"added", added}});
    } else {
      out << (added ? "added " : "already present ") << certs::subject(c.get()) << " <"
          << join(certs::emails(c.get()), ", ") << "> " << fp << "\n";
    }
  }
  if (p.vm.count("json")) out << a.dump(2) << "\n";
  return kExitOk;
}

// The entries a FINGERPRINT-or-EMAIL argument names.
std::vector<certs::Entry> select(const certs::Store& store, const std::string& what) {
  if (what.find('@') != std::string::npos) {
    auto v = store.list(what);
    if (v.empty()) {
      throw Error(ErrorKind::NotFound,
                  "no certificate for " + what + " in the store " + store.path());
    }
    return v;
  }
  auto v = store.find_prefix(what);
  if (v.empty()) {
    throw Error(ErrorKind::NotFound, "no certificate with fingerprint " + what + " in the store " +
                                         store.path() +
                                         " (give an address, or at least 8 hex digits)");
  }
  if (v.size() > 1) {
    throw Error(ErrorKind::Ambiguous, std::to_string(v.size()) +
                                          " certificates have fingerprints starting " + what +
                                          ": give more digits");
  }
  return v;
}

int export_(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("what", po::value<std::string>(),
                                              "a fingerprint (or its first 8+ hex digits) or an "
                                              "address")(
      "out", po::value<std::string>(), "the file to write (default: standard output)")(
      "der", "DER instead of PEM (one certificate only)")(
      "all", "with an address: every certificate for it, not only the chosen one");
  add_db_option(d);
  po::positional_options_description pos;
  pos.add("what", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit certs export FINGERPRINT|EMAIL [--out FILE] [--der] [--all]",
               "Writes a stored certificate to a file (written under a temporary name, renamed\n"
               "when complete). For an address, the one `smime encrypt --to` would choose\n"
               "(the newest usable one), or all of them with --all.",
               "tokenkit certs export bob@example.org --out bob.pem", d);
    return kExitOk;
  }
  if (!p.vm.count("what")) throw Error(ErrorKind::Usage, "certs export needs FINGERPRINT or EMAIL");
  const std::string what = p.vm["what"].as<std::string>();
  certs::Store store(store_path(p.vm));
  std::vector<certs::Entry> entries = select(store, what);
  if (what.find('@') != std::string::npos && !p.vm.count("all")) {
    certs::Choice c = store.choose(what, std::time(nullptr));
    if (!c.chosen) {
      throw Error(ErrorKind::NotFound, "no usable certificate for " + what + " (" +
                                           join(c.rejections, "; ") +
                                           "); --all exports them anyway");
    }
    entries = {*c.chosen};
  }
  const bool der = p.vm.count("der") != 0;
  if (der && entries.size() > 1) {
    throw Error(ErrorKind::Usage, "DER holds one certificate and " + what + " names " +
                                      std::to_string(entries.size()) + ": use PEM");
  }
  std::optional<std::string> target;
  if (p.vm.count("out")) target = p.vm["out"].as<std::string>();
  Output o(target);
  for (const auto& e : entries) {
    auto x = e.certificate();
    const int ok = der ? i2d_X509_bio(o.bio(), x.get()) : PEM_write_bio_X509(o.bio(), x.get());
    if (ok != 1) throw Error(ErrorKind::Io, "cannot write " + target.value_or("standard output"));
  }
  o.commit();
  if (target) {
    std::cerr << "tokenkit certs export: wrote " << entries.size() << " certificate(s) to "
              << *target << "\n";
  }
  return kExitOk;
}

// Asks on the terminal; false unless the answer is yes.
bool confirm(const std::string& question) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr) {
    throw Error(ErrorKind::Usage, "no terminal to confirm on: " + question + " Pass --yes");
  }
  (void)std::fprintf(tty, "%s [y/N] ", question.c_str());
  (void)std::fflush(tty);
  char buf[16] = {};
  const bool yes = std::fgets(buf, sizeof buf, tty) && (buf[0] == 'y' || buf[0] == 'Y');
  (void)std::fclose(tty);
  return yes;
}

int remove(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")(
      "what", po::value<std::string>(),
      "a fingerprint (or its first 8+ hex digits), or an address: all its certificates")(
      "yes,y", "do not ask for confirmation");
  add_db_option(d);
  po::positional_options_description pos;
  pos.add("what", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit certs remove FINGERPRINT|EMAIL [--yes]",
               "Removes certificates from the local store: one by fingerprint, or every one\n"
               "for an address. Asks on the terminal first unless --yes is given.",
               "tokenkit certs remove 3f2a9c01 --yes", d);
    return kExitOk;
  }
  if (!p.vm.count("what")) throw Error(ErrorKind::Usage, "certs remove needs FINGERPRINT or EMAIL");
  const std::string what = p.vm["what"].as<std::string>();
  certs::Store store(store_path(p.vm));
  std::vector<certs::Entry> entries = select(store, what);
  std::vector<std::string> fps;
  for (const auto& e : entries) fps.push_back(e.fingerprint);
  if (!p.vm.count("yes")) {
    std::string q =
        "Remove " + std::to_string(fps.size()) + " certificate(s) from " + store.path() + "?";
    for (const auto& e : entries) q += "\n  " + e.subject + " " + e.fingerprint;
    if (!confirm(q)) {
      std::cerr << "tokenkit certs remove: nothing removed\n";
      return kExitFailure;
    }
  }
  const std::size_t n = store.remove(fps);
  if (p.vm.count("json")) {
    out << Json{{"removed", fps}}.dump(2) << "\n";
  } else {
    out << "removed " << n << " certificate(s)\n";
  }
  return kExitOk;
}

}  // namespace

std::string store_path(const po::variables_map& vm) {
  if (vm.count("db")) return vm["db"].as<std::string>();
  return certs::Store::default_path();
}

Json entry_json(const certs::Entry& e, std::time_t now) {
  return {{"fingerprint", e.fingerprint},
          {"subject", e.subject},
          {"issuer", e.issuer},
          {"serial", e.serial},
          {"emails", e.emails},
          {"not_before", certs::iso_time(e.not_before)},
          {"not_after", certs::iso_time(e.not_after)},
          {"valid_now", now >= e.not_before && now <= e.not_after},
          {"source", certs::source_name(e.source)},
          {"added", certs::iso_time(e.added)}};
}

int cmd_certs(const Args& args, std::ostream& out) {
  const std::string usage =
      "Usage: tokenkit certs list|import|export|remove|lookup [OPTIONS]\n\n"
      "Correspondents' certificates: the local store that `smime encrypt --to EMAIL`\n"
      "chooses from, and lookup in LDAP directories. `tokenkit certs ACTION --help`\n"
      "describes each action.\n\nExample:\n"
      "  tokenkit certs import bob.pem && tokenkit certs list bob@example.org\n\n"
      "Exit codes: docs/exit-codes.md (0 ok, 1 nothing found or not confirmed, 2 usage, ...).\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << usage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "list") return list(rest, out);
  if (args[0] == "import") return import(rest, out);
  if (args[0] == "export") return export_(rest, out);
  if (args[0] == "remove") return remove(rest, out);
  if (args[0] == "lookup") return certs_lookup(rest, out);
  throw Error(ErrorKind::Usage, "unknown certs action \"" + args[0] +
                                    "\"; use list, import, export, remove or lookup");
}

}  // namespace tokenkit
