// tokenkit import-p12: a PKCS#12 file onto a token, in one verified step.
#include <fcntl.h>
#include <unistd.h>

#include <iostream>
#include <memory>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"
#include "token/profile.hpp"
#include "token/provision.hpp"

namespace tokenkit {

namespace {

struct ImportArgs {
  std::string file;
  token::ImportOptions opts;
  token::PinSource password;
  token::PinSource so_pin;  // only for tokens whose profile writes as SO
  bool dry_run = false, json = false, remove_source = false;
};

ImportArgs import_args(const po::variables_map& vm) {
  ImportArgs a;
  a.file = vm["file"].as<std::string>();
  if (vm.count("id")) {
    auto id = token::from_hex(vm["id"].as<std::string>());
    if (!id || id->empty())
      throw token::Error(token::ErrorKind::Usage, "--id takes hex digits, e.g. --id 01a2");
    a.opts.id = *id;
  }
  if (vm.count("piv-slot")) {
    if (vm.count("id"))
      throw token::Error(token::ErrorKind::Usage, "give --id or --piv-slot, not both");
    auto id = token::piv_slot_id(vm["piv-slot"].as<std::string>());
    if (!id) {
      throw token::Error(token::ErrorKind::Usage,
                         "--piv-slot takes 9a, 9c, 9d, 9e or a retired slot 82..95");
    }
    a.opts.id = *id;
  }
  if (vm.count("label")) a.opts.label = vm["label"].as<std::string>();
  a.opts.chain = vm.count("no-chain") == 0;
  a.opts.extractable = vm.count("extractable") != 0;
  a.password.default_env = "TOKENKIT_P12_PASSWORD";
  if (vm.count("password-file")) a.password.file = vm["password-file"].as<std::string>();
  if (vm.count("password-env")) a.password.env = vm["password-env"].as<std::string>();
  if (vm.count("password-fd")) a.password.fd = vm["password-fd"].as<int>();
  a.so_pin.default_env = "TOKENKIT_SO_PIN";
  if (vm.count("so-pin-file")) a.so_pin.file = vm["so-pin-file"].as<std::string>();
  if (vm.count("so-pin-env")) a.so_pin.env = vm["so-pin-env"].as<std::string>();
  if (a.so_pin.file && a.so_pin.env) {
    throw token::Error(token::ErrorKind::Usage,
                       "give the SO PIN one way only: --so-pin-file or --so-pin-env");
  }
  a.dry_run = vm.count("dry-run") != 0;
  a.json = vm.count("json") != 0;
  a.remove_source = vm.count("remove-source") != 0;
  return a;
}

// Overwrites the file before unlinking it. Not a guarantee: SSDs and
// copy-on-write file systems keep old blocks; the warning says so.
void remove_source(const std::string& path, std::ostream& err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd >= 0) {
    off_t size = lseek(fd, 0, SEEK_END);
    lseek(fd, 0, SEEK_SET);
    std::string zeros(4096, '\0');
    for (off_t done = 0; done < size; done += 4096) {
      (void)!::write(fd, zeros.data(), std::min<off_t>(4096, size - done));
    }
    fsync(fd);
    ::close(fd);
  }
  if (::unlink(path.c_str()) != 0) {
    throw token::Error(token::ErrorKind::Io,
                       "the import succeeded, but " + path + " could not be removed");
  }
  err << "tokenkit: removed " << path << " (overwritten first; on SSDs and copy-on-write file "
      << "systems old copies of its blocks may survive)\n";
}

Json plan_json(const token::ImportPlan& plan, const token::ImportResult* result) {
  Json ids = Json::array();
  for (const auto& i : plan.identities) {
    ids.push_back({{"label", i.label},
                   {"id", hex_id(i.id)},
                   {"subject", i.subject},
                   {"certificate_sha256", i.fingerprint_sha256},
                   {"usage", i.usage},
                   {"already_present", i.already_present}});
  }
  Json objs = Json::array();
  for (const auto& o : plan.objects) {
    objs.push_back({{"class", token::class_label(o.cls)},
                    {"label", o.label},
                    {"id", hex_id(o.id)},
                    {"what", o.what},
                    {"already_present", o.already_present}});
  }
  Json j{{"identities", ids}, {"objects", objs}};
  if (result) {
    j["written"] = result->created.size();
    j["verified"] = result->verified;
    j["untested"] = result->untested;
  }
  return j;
}

void print_plan(std::ostream& out, const token::ImportPlan& plan, bool extractable) {
  for (const auto& i : plan.identities) {
    out << "  identity \"" << i.label << "\" id " << hex_id(i.id) << ": " << i.subject
        << "\n    usage: " << join(i.usage, ", ")
        << (i.already_present ? "  (already on the token)" : "") << "\n";
  }
  for (const auto& o : plan.objects) {
    out << "  " << (o.already_present ? "= " : "+ ") << o.what;
    if (o.cls == CKO_PRIVATE_KEY)
      out << (extractable ? " (sensitive, EXTRACTABLE)" : " (sensitive, not extractable)");
    if (o.already_present) out << " (already on the token)";
    out << "\n";
  }
  for (const auto& n : plan.notes) out << "  note: " << n << "\n";
}

// A token that writes as SO (ykcs11: the PIV management key) writes with the
// SO login and uses the key with the user's; the user PIN also serves the
// context-specific login of a CKA_ALWAYS_AUTHENTICATE key (PIV slot 9c).
token::ImportLogins logins_for(const token::ImportPlan& plan, token::Session& s,
                               const ImportArgs& a, const token::Secret& user_pin) {
  token::ImportLogins l;
  l.context_specific = [&s, &user_pin] { s.login(user_pin, CKU_CONTEXT_SPECIFIC); };
  if (!plan.profile.so_login_to_write) return l;
  const std::string what = std::string(plan.profile.so_secret_name) + " of " + s.context();
  auto so = std::make_shared<token::Secret>(token::read_secret(a.so_pin, what));
  l.to_write = [&s, so] {
    s.logout();
    s.login(*so, CKU_SO);
  };
  l.to_use = [&s, &user_pin] {
    s.logout();
    s.login(user_pin);
  };
  return l;
}

}  // namespace

int cmd_import_p12(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("file", po::value<std::string>(), "the PKCS#12 file")(
      "token", po::value<std::string>(), "pkcs11: URI of the token")(
      "id", po::value<std::string>(), "CKA_ID in hex (default: SHA-1 of the public key, as NSS)")(
      "piv-slot", po::value<std::string>(), "PIV cards: the slot, 9a|9c|9d|9e (or 82..95)")(
      "label", po::value<std::string>(), "label (default: friendly name, else CN, else email)")(
      "no-chain", "do not store the CA certificates")(
      "extractable", "leave the private key EXTRACTABLE (it is not, unless you say so)")(
      "password-file", po::value<std::string>(), "read the file's password from this file")(
      "password-env", po::value<std::string>(),
      "... from this environment variable "
      "(default TOKENKIT_P12_PASSWORD when set)")("password-fd", po::value<int>(),
                                                  "... from this file descriptor")(
      "so-pin-file", po::value<std::string>(),
      "tokens that write as SO (YubiKey: the PIV "
      "management key): read the SO PIN from this file")("so-pin-env", po::value<std::string>(),
                                                         "... from this environment variable "
                                                         "(default TOKENKIT_SO_PIN when set)")(
      "dry-run", "show what would be written, write nothing")(
      "remove-source", "delete the file after a verified import")("json", "print JSON for scripts");
  add_token_options(d);
  add_pin_options(d);
  po::positional_options_description pos;
  pos.add("file", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit import-p12 FILE --token URI [--pin-file F] [--password-file F]",
               "Moves the keys and certificates of a PKCS#12 file onto a token in one step:\n"
               "each private key (sensitive, not extractable) with its public key and its\n"
               "certificate under one CKA_ID and a non-empty label, so that NSS and\n"
               "Thunderbird pair them; the CA certificates of the chain; then a test\n"
               "signature (and decryption) with the stored key, checked against the stored\n"
               "certificate. On any failure everything written is removed again.\n"
               "PIV cards (a YubiKey through libykcs11.so) need --piv-slot and the\n"
               "management key as SO PIN (--so-pin-file); see docs/import-p12.md.",
               "tokenkit import-p12 alice.p12 --token 'pkcs11:token=alice' --pin-file ~/.pin "
               "--password-file ~/.p12pass",
               d);
    return kExitOk;
  }
  if (!p.vm.count("file"))
    throw token::Error(token::ErrorKind::Usage, "which PKCS#12 file? see --help");
  ImportArgs a = import_args(p.vm);
  TokenOptions topts = token_options(p.vm);
  if (p.vm.count("token")) topts.uri = p.vm["token"].as<std::string>();
  PinOptions pin = pin_options(p.vm);

  token::Secret password = token::read_secret(a.password, "password of " + a.file);
  token::P12Contents p12 = token::read_pkcs12(a.file, password);
  OpenedToken tok = open_session(topts, pin, Login::Always);
  token::Session& session = tok.session;
  const token::Secret& user_pin = *tok.user_pin;
  token::ImportPlan plan = token::plan_import(p12, session, a.opts, a.file);
  if (a.dry_run) {
    if (a.json) {
      out << plan_json(plan, nullptr).dump(2) << "\n";
    } else {
      out << "Would write onto " << session.context() << ":\n";
      print_plan(out, plan, a.opts.extractable);
    }
    return kExitOk;
  }
  token::ImportResult result =
      token::apply_import(plan, session, logins_for(plan, session, a, user_pin));
  if (a.json) {
    out << plan_json(plan, &result).dump(2) << "\n";
  } else {
    out << "Imported " << a.file << " onto " << session.context() << ":\n";
    print_plan(out, plan, a.opts.extractable);
    out << "Verified: "
        << (result.verified.empty() ? "nothing to test" : join(result.verified, ", "));
    if (!result.untested.empty()) out << "\nNot tested: " << join(result.untested, ", ");
    out << "\nWrote " << result.created.size() << " object"
        << (result.created.size() == 1 ? "" : "s") << ".\n";
  }
  if (a.remove_source) remove_source(a.file, std::cerr);
  return kExitOk;
}

}  // namespace tokenkit
