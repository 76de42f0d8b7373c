// tokenkit doctor: what a mail client (NSS: Thunderbird, Evolution, Firefox)
// needs from a token, checked one finding at a time, each with its fix; and
// --fix for what can be repaired safely on the token (ids and labels).
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string_view>

#include "cli.hpp"
#include "commands.hpp"
#include "doctor.hpp"
#include "mailclients.hpp"
#include "token/error.hpp"
#include "token/ossl.hpp"

namespace fs = std::filesystem;

namespace tokenkit {

namespace {

using token::Bytes;
using token::Error;
using token::ErrorKind;
using namespace doctor;

struct Places {
  std::optional<std::string> thunderbird, profile_dir, nss_db;
  bool p11kit = false;
};

void check_registration(const std::string& module, const Places& pl, Report& r) {
  auto in_db = [&](const std::string& dir) {
    auto text = mail::read_text(dir + "/pkcs11.txt");
    if (!text) return false;
    std::error_code ec;
    for (const auto& m : mail::parse_pkcs11_txt(*text))
      if (!m.library.empty() && (m.library == module || fs::equivalent(m.library, module, ec)))
        return true;
    return false;
  };
  int registered = 0;
  auto judge = [&](const std::string& where, bool yes, const std::string& fix) {
    if (yes) ++registered;
    r.add(yes ? Severity::Ok : Severity::Warning, "registered", where,
          yes ? "loads " + module : "does not load " + module, yes ? "" : fix);
  };
  const bool named = pl.thunderbird || pl.profile_dir || pl.nss_db || pl.p11kit;
  // The Thunderbird profile named, or the default one when there is one.
  std::optional<std::string> profile = pl.profile_dir;
  if (!profile && (pl.thunderbird || !named)) {
    const char* home = std::getenv("HOME");
    try {
      if (home) profile = mail::find_profile(home, pl.thunderbird.value_or("")).path;
    } catch (const Error&) {
      if (pl.thunderbird) throw;
    }
  }
  if (profile)
    judge("Thunderbird profile " + *profile, in_db(*profile),
          "tokenkit register --profile-dir " + *profile);
  std::string db;
  if (pl.nss_db)
    db = pl.nss_db->empty() ? mail::default_nss_db() : *pl.nss_db;
  else if (!named && std::getenv("HOME"))
    db = mail::default_nss_db();
  if (!db.empty() && (pl.nss_db || mail::nss_db_exists(db)))
    judge("NSS database " + db, in_db(db), "tokenkit register --nss-db " + db);
  if (pl.p11kit || !named) {
    bool yes = false;
    std::error_code ec;
    for (const auto& m : token::registered_modules())
      if (m.path == module || fs::equivalent(m.path, module, ec)) yes = true;
    if (yes || pl.p11kit) judge("p11-kit", yes, "tokenkit register --p11-kit");
  }
  if (registered == 0)
    r.add(
        Severity::Warning, "registered", module, "no mail client found that loads this module",
        "tokenkit register --thunderbird (Thunderbird), --nss-db (Evolution, Chromium), --p11-kit");
}

void print_report(const Report& r, std::ostream& out) {
  for (const auto& f : r.findings) {
    out << severity_name(f.severity) << ": [" << f.check << "] " << f.object << ": " << f.message
        << "\n";
    if (!f.fix.empty()) out << "    fix: " << f.fix << "\n";
  }
}

Json report_json(const Report& r) {
  Json j{{"errors", 0}, {"warnings", 0}, {"findings", Json::array()}};
  for (const auto& f : r.findings) {
    if (f.severity == Severity::Error) j["errors"] = j["errors"].get<int>() + 1;
    if (f.severity == Severity::Warning) j["warnings"] = j["warnings"].get<int>() + 1;
    j["findings"].push_back({{"severity", severity_name(f.severity)},
                             {"check", f.check},
                             {"object", f.object},
                             {"message", f.message},
                             {"fix", f.fix}});
  }
  return j;
}

bool pin_available(const PinOptions& pin, const token::Uri& uri) {
  return pin.login || std::getenv("TOKENKIT_PIN") || uri.pin_value() || uri.pin_source() ||
         ::isatty(0);
}

struct DoctorOptions {
  TokenOptions token;
  PinOptions pin;
  std::optional<std::string> key_uri;
  CheckOptions checks;
  Places places;
  bool fix = false, yes = false, json = false;
};

DoctorOptions doctor_options(const po::variables_map& vm) {
  DoctorOptions o;
  o.token = token_options(vm);
  if (vm.count("key")) o.key_uri = vm["key"].as<std::string>();
  if (!o.token.uri && o.key_uri) o.token.uri = o.key_uri;
  o.pin = pin_options(vm);
  if (vm.count("email")) o.checks.email = vm["email"].as<std::string>();
  if (vm.count("ca-file")) o.checks.ca_files = vm["ca-file"].as<std::vector<std::string>>();
  if (vm.count("thunderbird")) o.places.thunderbird = vm["thunderbird"].as<std::string>();
  if (vm.count("profile-dir")) o.places.profile_dir = vm["profile-dir"].as<std::string>();
  if (vm.count("nss-db")) o.places.nss_db = vm["nss-db"].as<std::string>();
  o.places.p11kit = vm.count("p11-kit") != 0;
  o.fix = vm.count("fix") != 0;
  o.yes = vm.count("yes") != 0;
  o.json = vm.count("json") != 0;
  if (o.yes && !o.fix) throw Error(ErrorKind::Usage, "--yes confirms --fix; add --fix");
  return o;
}

// What NSS sees before login: certificates, and whether it may list them
// without asking for the PIN.
void check_public_view(const token::Session& session, bool login_required,
                       const std::vector<Obj>& before, const std::vector<Obj>& after, Report& r) {
  if (!login_required || has_public_certificates_profile(session))
    r.add(Severity::Ok, "public certificates", session.context(),
          "certificates can be listed without login");
  else
    r.add(Severity::Warning, "public certificates", session.context(),
          "the token needs a login and does not say its certificates are public (no "
          "CKO_PROFILE CKP_PUBLIC_CERTIFICATES_TOKEN): NSS asks for the PIN just to list them",
          "a module that offers the profile object (tokenkit's does), or accept the prompt");
  for (const auto& o : after)
    if (o.cls == CKO_CERTIFICATE && std::none_of(before.begin(), before.end(), [&](const Obj& b) {
          return b.handle == o.handle;
        }))
      r.add(Severity::Error, "public certificates", o.describe(),
            "is private (CKA_PRIVATE true): NSS does not see it until the user logs in",
            "store certificates with CKA_PRIVATE false (tokenkit import-p12 does)");
}

// The certificates to judge: the --key one; else each whose key (or, before
// login, public key) is on the token, and each that is not a CA.
std::vector<const Obj*> user_certificates(const token::Session& session,
                                          const std::optional<std::string>& key_uri,
                                          const std::vector<Obj>& objs) {
  std::vector<const Obj*> certs;
  if (key_uri) {
    auto kc = mail::certificate_for_key(session, token::Uri::parse(*key_uri));
    for (const auto& o : objs)
      if (o.handle == kc.handle) certs.push_back(&o);
    return certs;
  }
  for (const auto& o : objs) {
    if (o.cls != CKO_CERTIFICATE || !o.cert) continue;
    const bool has_key = std::any_of(objs.begin(), objs.end(), [&](const Obj& k) {
      return k.cls != CKO_CERTIFICATE && !o.pub.empty() && key_public(k, objs) == o.pub;
    });
    if (has_key || !o.is_ca) certs.push_back(&o);
  }
  return certs;
}

void check_user_certificates(const token::Session& session, const std::vector<const Obj*>& certs,
                             const std::vector<Obj>& objs, const CheckOptions& co, bool logged_in,
                             const token::KeyOptions& ko, Report& r) {
  if (certs.empty())
    r.add(Severity::Error, "certificates", session.context(), "holds no user certificate",
          "tokenkit import-p12, or tokenkit csr and import-cert");
  for (const Obj* c : certs) {
    check_certificate(*c, objs, co, r);
    if (!logged_in) {
      r.add(Severity::Warning, "sign", c->describe(), "key operations not tested: no PIN given",
            "give the PIN (--pin-file, --pin-env, TOKENKIT_PIN) to test signing and decryption");
      continue;
    }
    const Obj* key = nullptr;
    for (const auto& k : objs)
      if (k.cls == CKO_PRIVATE_KEY && key_public(k, objs) == c->pub) key = &k;
    if (!key) {
      r.add(Severity::Error, "key", c->describe(), "has no private key on this token",
            "import the key with its certificate (tokenkit import-p12)");
      continue;
    }
    if (key->id != c->id) continue;  // the ids finding says it; tested after --fix
    check_key_operations(session, *c, *key, ko, r);
  }
}

// Shows the plan, asks (unless --yes), and sets the attributes. False when
// the user said no.
bool apply_repairs(const Target& t, token::Session& session, const DoctorOptions& o, bool logged_in,
                   const Report& r, std::ostream& out) {
  out << "Plan (" << r.repairs.size() << " repairs on " << session.context() << "):\n";
  for (const auto& rep : r.repairs) out << "  " << rep.what << "\n";
  if (!o.yes) {
    if (!::isatty(0))
      throw Error(
          ErrorKind::Usage,
          "--fix changes the token: confirm with --yes (no terminal to ask); nothing changed");
    std::cerr << "Apply? [y/N] ";
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "yes") {
      out << "Nothing changed.\n";
      return false;
    }
  }
  if (!logged_in) login(session, o.pin, t.selector.uri);
  for (const auto& rep : r.repairs) {
    CK_ATTRIBUTE a{rep.attr, const_cast<unsigned char*>(rep.value.data()),
                   static_cast<CK_ULONG>(rep.value.size())};
    t.module.call("C_SetAttributeValue", t.module.functions()->C_SetAttributeValue,
                  rep.object + " on " + session.context(), session.handle(), rep.handle, &a,
                  CK_ULONG{1});
    out << "  done: " << rep.what << "\n";
  }
  out << "Run tokenkit doctor again to check.\n";
  return true;
}

void describe_options(po::options_description& d) {
  d.add_options()("help,h", "show this help")("uri", po::value<std::string>(),
                                              "pkcs11: URI of the token")(
      "key", po::value<std::string>(), "pkcs11: URI of the key (or certificate) to check")(
      "email", po::value<std::string>(), "the address the certificate must carry")(
      "ca-file", po::value<std::vector<std::string>>(),
      "trusted CA certificates (PEM), repeatable")(
      "thunderbird", po::value<std::string>()->implicit_value(""),
      "check this Thunderbird profile (default: the default one)")(
      "profile-dir", po::value<std::string>(), "check this Thunderbird profile directory")(
      "nss-db", po::value<std::string>()->implicit_value(""), "check this NSS database")(
      "p11-kit", "check p11-kit's configuration")("fix", "repair ids and labels on the token")(
      "yes", "with --fix: do not ask")("json", "print JSON");
  add_token_options(d);
  add_pin_options(d);
}

}  // namespace

int cmd_doctor(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  describe_options(d);
  po::positional_options_description pos;
  pos.add("uri", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit doctor [URI] [--key URI] [--email ADDR] [--fix [--yes]]",
               "Checks what mail clients need from a token and prints each finding with its\n"
               "fix: key, public key and certificate share one CKA_ID; certificates have\n"
               "labels; key usage, emailProtection, address, validity, a chain to a trusted\n"
               "CA; a real signature and decryption with the key (after the PIN); certificates\n"
               "listable without login; the module registered where clients look. --fix\n"
               "repairs ids and labels on the token after showing the plan. Exits 1 when a\n"
               "finding is an error.",
               "tokenkit doctor --key 'pkcs11:token=mail;object=alice' --email alice@example.org",
               d);
    return kExitOk;
  }
  const DoctorOptions o = doctor_options(p.vm);
  Target t = open_target(o.token);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id, o.fix);
  Report r;

  const auto before = gather(session);
  const bool login_required = slot.token.flags & CKF_LOGIN_REQUIRED;
  std::vector<Obj> objs = before;
  bool logged_in = !login_required;
  if (login_required && pin_available(o.pin, t.selector.uri)) {
    login(session, o.pin, t.selector.uri);
    logged_in = true;
    objs = gather(session);
  }
  check_public_view(session, login_required, before, objs, r);
  check_labels(objs, r);
  check_pairing(objs, r);
  // A CKA_ALWAYS_AUTHENTICATE key (PIV slot 9c) wants the PIN again for each
  // test operation: read once, from the same source as the login.
  std::optional<token::Secret> context_pin;
  token::KeyOptions ko;
  ko.context_pin = [&] {
    if (!context_pin) context_pin.emplace(read_user_pin(session, o.pin, t.selector.uri));
    return token::Secret(std::string_view(context_pin->data(), context_pin->size()));
  };
  check_user_certificates(session, user_certificates(session, o.key_uri, objs), objs, o.checks,
                          logged_in, ko, r);
  check_registration(t.module.path(), o.places, r);

  bool repaired = false;
  if (o.fix && !r.repairs.empty()) {
    if (!apply_repairs(t, session, o, logged_in, r, o.json ? std::cerr : out)) return kExitFailure;
    repaired = true;
  } else if (o.fix) {
    (o.json ? std::cerr : out) << "Nothing to repair on " << session.context() << ".\n";
  }
  if (o.json) {
    Json j = report_json(r);
    j["token"] = token::pkcs11_text(slot.token.label);
    j["repaired"] = repaired ? r.repairs.size() : 0;
    out << j.dump(2) << "\n";
  } else {
    print_report(r, out);
  }
  return r.has_error(repaired) ? kExitFailure : kExitOk;
}

}  // namespace tokenkit
