// tokenkit certs lookup EMAIL: correspondents' certificates from LDAP
// directories, each judged (valid now, emailProtection, encryption usage,
// the address, a chain to a trusted CA) and, with --store, kept.
#include <openssl/pem.h>

#include <ctime>
#include <iostream>
#include <memory>

#include "certs_common.hpp"
#include "cli.hpp"
#include "directories.hpp"
#include "token/certcheck.hpp"
#include "token/certstore.hpp"
#include "token/directory.hpp"
#include "token/error.hpp"

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;
namespace certs = token::certs;

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

}  // namespace

DirectoryAnswer ask_directory(const token::directory::Config& c, const std::string& email,
                              X509_STORE* trust) {
  DirectoryAnswer a;
  a.uri = c.uri;
  try {
    token::directory::Found f = token::directory::search(c, email);
    a.entries = f.entries;
    a.notes = std::move(f.notes);
    std::vector<std::string_view> views(f.values.begin(), f.values.end());
    a.judgement = certs::judge_values(views, email, std::time(nullptr), trust, c.value_limits);
    if (a.judgement.values_skipped > 0) {
      a.notes.push_back(std::to_string(a.judgement.values_skipped) +
                        " certificate values past the limit of " +
                        std::to_string(c.value_limits.max_values) + " were not read");
    }
  } catch (const Error& e) {
    a.error = e.what();
    a.error_kind = e.kind();
  }
  return a;
}

namespace {

Json answer_json(const DirectoryAnswer& a) {
  Json j{{"uri", a.uri}, {"entries", a.entries}};
  Json acc = Json::array(), rej = Json::array();
  for (const auto& c : a.judgement.accepted) {
    acc.push_back({{"fingerprint", certs::fingerprint(c.cert.get())},
                   {"subject", certs::subject(c.cert.get())},
                   {"emails", certs::emails(c.cert.get())},
                   {"not_before", certs::iso_time(certs::not_before(c.cert.get()))},
                   {"not_after", certs::iso_time(certs::not_after(c.cert.get()))}});
  }
  for (const auto& c : a.judgement.rejected) {
    rej.push_back({{"fingerprint", certs::fingerprint(c.cert.get())},
                   {"subject", certs::subject(c.cert.get())},
                   {"reasons", c.problems}});
  }
  j["accepted"] = acc;
  j["rejected"] = rej;
  j["unreadable"] = a.judgement.unreadable;
  j["notes"] = a.notes;
  if (!a.error.empty()) j["error"] = a.error;
  return j;
}

void print_answer(std::ostream& out, const DirectoryAnswer& a) {
  out << a.uri << ": ";
  if (!a.error.empty()) {
    out << "error: " << a.error << "\n";
    return;
  }
  out << a.entries << " entr" << (a.entries == 1 ? "y" : "ies") << ", "
      << a.judgement.accepted.size() << " accepted, " << a.judgement.rejected.size()
      << " rejected\n";
  for (const auto& c : a.judgement.accepted) {
    out << "  accepted  " << c.description << ", valid until "
        << certs::iso_time(certs::not_after(c.cert.get())) << "\n";
  }
  for (const auto& c : a.judgement.rejected) {
    out << "  rejected  " << c.description << ": " << join(c.problems, "; ") << "\n";
  }
  for (const auto& u : a.judgement.unreadable) out << "  unreadable " << u << "\n";
  for (const auto& n : a.notes) out << "  limit     " << n << "\n";
}

}  // namespace

int certs_lookup(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("email", po::value<std::string>(),
                                              "the address to look up")(
      "store", "keep the accepted certificates in the local certificate store")(
      "db", po::value<std::string>(), "the certificate store file (see tokenkit certs list)")(
      "json", "print JSON");
  add_directory_options(d);
  po::positional_options_description pos;
  pos.add("email", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out,
               "tokenkit certs lookup EMAIL [--ldap URI]... [--base DN] [--starttls] [--store]",
               "Looks EMAIL up in LDAP directories (--ldap, and the directories file) and\n"
               "reports the certificates that are valid now, have emailProtection and an\n"
               "encryption key usage, carry the address and chain to a trusted CA (the\n"
               "system's and --trust); says why it rejected each other one. Every wait is\n"
               "bounded (--network-timeout, --timeout) and so are entries (--size-limit) and\n"
               "bytes; limits hit are said. --store keeps the accepted ones.",
               "tokenkit certs lookup bob@example.org --ldap ldap://ldap.example.org "
               "--base ou=people,dc=example,dc=org --starttls --store",
               d);
    return kExitOk;
  }
  if (!p.vm.count("email")) throw Error(ErrorKind::Usage, "certs lookup needs EMAIL");
  const std::string email = p.vm["email"].as<std::string>();
  if (email.find('@') == std::string::npos) {
    throw Error(ErrorKind::Usage, "\"" + email + "\" is not a mail address");
  }
  Directories dirs = directories_from(p.vm);
  if (dirs.list.empty()) {
    throw Error(ErrorKind::Usage, "no directory to search: give --ldap URI, or configure one in " +
                                      default_directories_file());
  }
  std::unique_ptr<X509_STORE, StoreFree> trust(trust_store(dirs));
  std::vector<DirectoryAnswer> answers;
  for (const auto& c : dirs.list) answers.push_back(ask_directory(c, email, trust.get()));
  std::size_t accepted = 0, stored = 0;
  std::optional<ErrorKind> failure;
  std::string first_error;
  for (const auto& a : answers) {
    accepted += a.judgement.accepted.size();
    if (!a.error.empty() && !failure) {
      failure = a.error_kind;
      first_error = a.error;
    }
  }
  if (p.vm.count("store") && accepted > 0) {
    certs::Store store(store_path(p.vm));
    const std::time_t now = std::time(nullptr);
    for (const auto& a : answers) {
      for (const auto& c : a.judgement.accepted) {
        stored += store.add(c.cert.get(), certs::Source::Ldap, now) ? 1 : 0;
      }
    }
  }
  if (p.vm.count("json")) {
    Json j{{"email", email}, {"accepted", accepted}};
    Json arr = Json::array();
    for (const auto& a : answers) arr.push_back(answer_json(a));
    j["directories"] = arr;
    if (p.vm.count("store")) j["stored"] = stored;
    out << j.dump(2) << "\n";
  } else {
    for (const auto& a : answers) print_answer(out, a);
    if (p.vm.count("store")) {
      out << "stored " << stored << " new certificate(s) for " << email << "\n";
    }
  }
  if (accepted > 0) return kExitOk;
  if (failure) {
    std::cerr << "tokenkit certs lookup: " << first_error << "\n";
    return static_cast<int>(*failure);
  }
  std::cerr << "tokenkit certs lookup: no usable certificate for " << email << " in "
            << answers.size() << " director" << (answers.size() == 1 ? "y" : "ies") << "\n";
  return static_cast<int>(ErrorKind::NotFound);
}

}  // namespace tokenkit
