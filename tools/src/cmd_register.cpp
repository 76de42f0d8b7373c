// tokenkit register / unregister: a PKCS#11 module made known to the places
// mail clients look (a Thunderbird profile, an NSS database, p11-kit), and a
// Thunderbird identity pointed at the certificate of a key on the token.
#include <filesystem>
#include <iostream>

#include <openssl/x509v3.h>

#include "cli.hpp"
#include "commands.hpp"
#include "mailclients.hpp"
#include "token/error.hpp"
#include "token/ossl.hpp"

namespace fs = std::filesystem;

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;

// The prefs an identity gets; unregister removes exactly these names.
const char* const kIdentityPrefs[] = {"signing_cert_dbkey", "signing_cert_name",
                                      "encryption_cert_dbkey", "encryption_cert_name", "sign_mail"};

struct RegisterOptions {
  bool unregister = false;
  std::optional<std::string> module, name;
  std::optional<std::string> thunderbird;  // profile name, or "" for the default
  std::optional<std::string> profile_dir;
  std::optional<std::string> nss_db;  // "" for the default
  bool p11kit = false;
  std::optional<std::string> identity, key;
  std::vector<std::string> ca_files;
  bool sign_mail = true;
  bool json = false;
};

RegisterOptions register_options(const po::variables_map& vm, bool unregister) {
  RegisterOptions o;
  o.unregister = unregister;
  auto get = [&](const char* k) -> std::optional<std::string> {
    if (!vm.count(k)) return std::nullopt;
    return vm[k].as<std::string>();
  };
  o.module = get("module");
  o.name = get("name");
  o.thunderbird = get("thunderbird");
  o.profile_dir = get("profile-dir");
  o.nss_db = get("nss-db");
  o.p11kit = vm.count("p11-kit") != 0;
  o.identity = get("identity");
  o.key = get("key");
  o.sign_mail = vm.count("no-sign-mail") == 0;
  if (vm.count("ca-file")) o.ca_files = vm["ca-file"].as<std::vector<std::string>>();
  o.json = vm.count("json") != 0;
  if (!o.thunderbird && !o.profile_dir && !o.nss_db && !o.p11kit)
    throw Error(ErrorKind::Usage,
                "where? name --thunderbird [PROFILE], --profile-dir DIR, --nss-db [DIR] or "
                "--p11-kit; see --help");
  if (o.thunderbird && o.profile_dir)
    throw Error(ErrorKind::Usage, "--thunderbird and --profile-dir both name a profile; use one");
  const bool profile = o.thunderbird || o.profile_dir;
  if (o.identity && !profile)
    throw Error(ErrorKind::Usage,
                "--identity sets Thunderbird prefs: add --thunderbird or --profile-dir");
  if (!unregister && o.identity.has_value() != o.key.has_value())
    throw Error(ErrorKind::Usage, "--identity EMAIL and --key URI go together");
  if (unregister && o.key) throw Error(ErrorKind::Usage, "unregister takes no --key");
  if (!o.ca_files.empty() && !profile && !o.nss_db)
    throw Error(ErrorKind::Usage,
                "--ca-file trusts a CA in an NSS database: add --thunderbird, "
                "--profile-dir or --nss-db");
  return o;
}

// The name a module is registered under: ours "tokenkit", others their file
// name without "lib" and ".so" ("opensc-pkcs11", "ykcs11").
std::string module_name_for(const std::string& path, bool ours) {
  if (ours) return "tokenkit";
  std::string stem = fs::path(path).filename().string();
  if (auto so = stem.find(".so"); so != std::string::npos) stem.resize(so);
  if (stem.rfind("lib", 0) == 0 && stem.size() > 3) stem.erase(0, 3);
  return stem;
}

struct IdentityPlan {
  std::string profile_dir;
  std::vector<std::string> ids;
  std::vector<mail::Pref> set;  // empty for unregister
  std::vector<std::string> remove;
  std::string email;
};

std::vector<mail::Pref> identity_prefs(const std::string& id, const mail::TokenCertificate& cert,
                                       const std::string& token_label, bool sign_mail) {
  const unsigned char* p = cert.der.data();
  token::ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(cert.der.size())));
  if (!x) throw Error(ErrorKind::Input, "the certificate \"" + cert.label + "\" is not X.509");
  const uint32_t ku = X509_get_key_usage(x.get());  // all bits when the extension is absent
  const bool can_sign = (ku & (KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION)) != 0;
  const bool can_encrypt = (ku & (KU_KEY_ENCIPHERMENT | KU_KEY_AGREEMENT)) != 0;
  if (!can_sign && !can_encrypt)
    throw Error(ErrorKind::Input, "the certificate \"" + cert.label +
                                      "\" allows neither signing nor key encipherment (key usage)");
  const std::string dbkey = mail::cert_db_key(cert.der);
  // NSS's nickname of a token certificate: "token label:CKA_LABEL".
  const std::string nick = token_label + ":" + cert.label;
  const std::string base = "mail.identity." + id + ".";
  std::vector<mail::Pref> out;
  auto str = [&](const std::string& n, const std::string& v) {
    out.push_back({base + n, mail::quote_pref_string(v), v, true});
  };
  if (can_sign) {
    str("signing_cert_dbkey", dbkey);
    str("signing_cert_name", nick);
    if (sign_mail) out.push_back({base + "sign_mail", "true", "true", false});
  }
  if (can_encrypt) {
    str("encryption_cert_dbkey", dbkey);
    str("encryption_cert_name", nick);
  }
  return out;
}

IdentityPlan plan_identity(const RegisterOptions& o, const std::string& dir,
                           const std::optional<mail::TokenCertificate>& cert,
                           const std::string& token_label) {
  IdentityPlan plan{dir, {}, {}, {}, *o.identity};
  std::vector<mail::Pref> prefs;
  for (const char* f : {"/prefs.js", "/user.js"})
    if (auto text = mail::read_text(dir + f)) {
      auto more = mail::parse_prefs(*text);
      prefs.insert(prefs.end(), more.begin(), more.end());
    }
  plan.ids = mail::identities_for_email(prefs, *o.identity);
  if (plan.ids.empty()) {
    std::string known;
    for (const auto& p : prefs)
      if (p.name.rfind("mail.identity.", 0) == 0 && p.name.size() > 10 &&
          p.name.compare(p.name.size() - 10, 10, ".useremail") == 0)
        known += (known.empty() ? "" : ", ") + p.value;
    throw Error(ErrorKind::NotFound, "no identity with the address " + *o.identity +
                                         " in the Thunderbird profile " + dir + " (" +
                                         (known.empty() ? "it has no identities yet; add the "
                                                          "account in Thunderbird first"
                                                        : "its addresses: " + known) +
                                         ")");
  }
  for (const auto& id : plan.ids) {
    for (const char* n : kIdentityPrefs) plan.remove.push_back("mail.identity." + id + "." + n);
    if (cert) {
      auto s = identity_prefs(id, *cert, token_label, o.sign_mail);
      plan.set.insert(plan.set.end(), s.begin(), s.end());
    }
  }
  return plan;
}

// user.js holds what we set (it wins over prefs.js when Thunderbird starts).
// On unregister, prefs.js copies Thunderbird made of exactly those values go too.
std::vector<mail::Change> apply_identity(const IdentityPlan& plan) {
  std::vector<mail::Change> out;
  const std::string user_js = plan.profile_dir + "/user.js";
  const std::string before = mail::read_text(user_js).value_or("");
  const std::string after = mail::edit_prefs_text(before, plan.set, plan.remove);
  mail::Change c{user_js, {}, false};
  std::string ids = join(plan.ids, ", ");
  if (after == before) {
    c.what = plan.set.empty()
                 ? "no certificate prefs for " + plan.email + " (" + ids + "); nothing to remove"
                 : "certificate prefs for " + plan.email + " (" + ids + ") already set";
  } else {
    if (!before.empty()) mail::write_atomic(user_js + ".tokenkit-backup", before);
    mail::write_atomic(user_js, after);
    c.changed = true;
    c.what = plan.set.empty()
                 ? "removed the certificate prefs of " + plan.email + " (" + ids + ")"
                 : "set the signing/encryption certificate of " + plan.email + " (" + ids + ")";
  }
  out.push_back(c);
  if (!plan.set.empty()) return out;
  // Thunderbird rewrites prefs.js from user.js's values when it runs.
  const std::string prefs_js = plan.profile_dir + "/prefs.js";
  auto ptext = mail::read_text(prefs_js);
  if (!ptext) return out;
  std::vector<std::string> drop;
  auto ours = mail::parse_prefs(before);
  for (const auto& p : mail::parse_prefs(*ptext))
    for (const auto& u : ours)
      if (p.name == u.name && p.value == u.value &&
          std::find(plan.remove.begin(), plan.remove.end(), p.name) != plan.remove.end())
        drop.push_back(p.name);
  if (drop.empty()) return out;
  mail::write_atomic(prefs_js + ".tokenkit-backup", *ptext);
  mail::write_atomic(prefs_js, mail::edit_prefs_text(*ptext, {}, drop));
  out.push_back({prefs_js,
                 "removed " + std::to_string(drop.size()) +
                     " certificate prefs Thunderbird had copied from user.js",
                 true});
  return out;
}

std::string resolve_profile_dir(const RegisterOptions& o) {
  std::string dir;
  if (o.profile_dir) {
    dir = *o.profile_dir;
  } else {
    const char* home = std::getenv("HOME");
    if (!home || !*home) throw Error(ErrorKind::Usage, "HOME is not set; use --profile-dir DIR");
    dir = mail::find_profile(home, *o.thunderbird).path;
  }
  mail::check_profile_dir(dir);
  if (auto holder = mail::profile_lock_holder(dir))
    throw Error(ErrorKind::Conflict, *holder + "; quit Thunderbird first, nothing was changed");
  return dir;
}

void trust_cas(const RegisterOptions& o, const std::string& dir,
               std::vector<mail::Change>& changes) {
  for (const auto& f : o.ca_files)
    changes.push_back(o.unregister ? mail::nss_untrust_ca(dir, f) : mail::nss_trust_ca(dir, f));
}

int run_register(const Args& args, std::ostream& out, bool unregister) {
  const std::string verb = unregister ? "unregister" : "register";
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")(
      "module", po::value<std::string>(),
      "PKCS#11 module: a path or a p11-kit name (default: tokenkit's own)")(
      "name", po::value<std::string>(),
      "the name it is registered under (default: tokenkit, or the module file's name)")(
      "thunderbird", po::value<std::string>()->implicit_value(""),
      "a Thunderbird profile, by name or path (default: the default profile)")(
      "profile-dir", po::value<std::string>(), "a Thunderbird profile directory, named directly")(
      "nss-db", po::value<std::string>()->implicit_value(""),
      "an NSS database directory (default: ~/.pki/nssdb, read by Evolution and Chromium)")(
      "p11-kit", "p11-kit's user configuration (~/.config/pkcs11/modules)")(
      "identity", po::value<std::string>(), "the Thunderbird identity (its email address)")(
      "key", po::value<std::string>(), "pkcs11: URI of the key (or certificate) for --identity")(
      "no-sign-mail", "do not turn on signing by default for the identity")(
      "ca-file", po::value<std::vector<std::string>>(),
      "a CA certificate (PEM/DER) to trust for email in the NSS databases named; repeatable")(
      "json", "print JSON");
  Parsed p = parse(args, d);
  if (p.help) {
    if (unregister)
      print_help(
          out, "tokenkit unregister [--thunderbird [PROFILE]] [--nss-db [DIR]] [--p11-kit]",
          "Undoes `tokenkit register`: removes the module from each place named, and\n"
          "with --identity the certificate prefs it set. Says what it removed, or that\n"
          "nothing needed removing. Refuses a profile Thunderbird has open.",
          "tokenkit unregister --thunderbird --identity alice@example.org --nss-db --p11-kit", d);
    else
      print_help(out,
                 "tokenkit register [--thunderbird [PROFILE]] [--nss-db [DIR]] [--p11-kit] "
                 "[--identity EMAIL --key URI]",
                 "Makes a PKCS#11 module (tokenkit's own, or --module for OpenSC, ykcs11,\n"
                 "tpm2-pkcs11) known where mail clients look: a Thunderbird profile's NSS\n"
                 "database (with NSS's modutil), an NSS database, p11-kit's user config. With\n"
                 "--identity and --key it also sets that Thunderbird identity's signing and\n"
                 "encryption certificate (user.js). Running it again changes nothing;\n"
                 "a profile Thunderbird has open is refused untouched.",
                 "tokenkit register --thunderbird --identity alice@example.org \\\n"
                 "      --key 'pkcs11:token=mail;object=alice' --nss-db --p11-kit",
                 d);
    return kExitOk;
  }
  RegisterOptions o = register_options(p.vm, unregister);

  // The module: loaded once, so a file that is not a PKCS#11 module is
  // refused before anything changes.
  std::optional<mail::TokenCertificate> cert;
  std::string token_label;
  std::string library;
  if (o.key) {
    TokenOptions topts;
    topts.module = o.module;
    topts.uri = o.key;
    Target t = open_target(topts);
    token::SlotInfo slot = token::select_token(t.module, t.selector);
    token::Session session(t.module, slot.id);
    cert = mail::certificate_for_key(session, t.selector.uri);
    token_label = token::pkcs11_text(slot.token.label);
    library = t.module.path();
  } else if (!unregister || o.module) {
    library = token::Module::load(o.module.value_or(default_module())).path();
  }
  // Mail clients load the library from their own working directory: a
  // relative path given here is written down absolute.
  if (library.find('/') != std::string::npos && fs::path(library).is_relative())
    library = fs::absolute(library).lexically_normal().string();
  const std::string lib_for_name = library.empty() ? default_module() : library;
  const bool ours = fs::path(lib_for_name).filename().string().rfind("tokenkit-pkcs11", 0) == 0;
  const std::string name = o.name.value_or(module_name_for(lib_for_name, ours));

  // Every check that can refuse comes before the first change.
  for (const auto& f : o.ca_files) (void)mail::ca_nickname(f);
  std::optional<std::string> profile;
  std::optional<IdentityPlan> identity;
  if (o.thunderbird || o.profile_dir) {
    profile = resolve_profile_dir(o);
    if (o.identity) identity = plan_identity(o, *profile, cert, token_label);
  }
  // A database another program holds would fail half-way (or, legacy DBM,
  // be corrupted): refused before anything changes, the profile's too.
  // A legacy DBM one would stop to ask for its password.
  auto check_db = [unregister](const std::string& dir) {
    if (!fs::is_directory(dir)) return;
    mail::check_nss_db_unlocked(dir);
    if (!unregister) mail::check_nss_db_not_legacy(dir);
  };
  if (profile) check_db(*profile);
  if (o.nss_db) check_db(o.nss_db->empty() ? mail::default_nss_db() : *o.nss_db);

  std::vector<mail::Change> changes;
  if (profile) {
    if (!unregister) {
      changes.push_back(mail::nss_register(*profile, name, library, true));
      trust_cas(o, *profile, changes);
      if (identity) {
        auto c = apply_identity(*identity);
        changes.insert(changes.end(), c.begin(), c.end());
      }
    } else {
      if (identity) {
        auto c = apply_identity(*identity);
        changes.insert(changes.end(), c.begin(), c.end());
      }
      changes.push_back(mail::nss_unregister(*profile, name, library));
      trust_cas(o, *profile, changes);
    }
  }
  if (o.nss_db) {
    const std::string dir = o.nss_db->empty() ? mail::default_nss_db() : *o.nss_db;
    changes.push_back(unregister ? mail::nss_unregister(dir, name, library)
                                 : mail::nss_register(dir, name, library, true));
    trust_cas(o, dir, changes);
  }
  if (o.p11kit)
    changes.push_back(unregister ? mail::p11kit_unregister(name, library)
                                 : mail::p11kit_register(name, library));

  bool any = false;
  for (const auto& c : changes) any = any || c.changed;
  if (o.json) {
    Json j{{"module", library}, {"name", name}, {"changed", any}, {"changes", Json::array()}};
    for (const auto& c : changes)
      j["changes"].push_back({{"where", c.where}, {"what", c.what}, {"changed", c.changed}});
    out << j.dump(2) << "\n";
  } else {
    for (const auto& c : changes) out << c.where << ": " << c.what << "\n";
    if (!any) out << "Nothing needed changing.\n";
  }
  return kExitOk;
}

}  // namespace

int cmd_register(const Args& args, std::ostream& out) { return run_register(args, out, false); }
int cmd_unregister(const Args& args, std::ostream& out) { return run_register(args, out, true); }

}  // namespace tokenkit
