// tokenkit token init|init-pin|set-pin|delete: manage a token through
// PKCS#11 calls, like any client would (C_InitToken, C_InitPIN, C_SetPIN;
// delete: C_Login as SO, then tokenkit's vendor interface).
#include <dlfcn.h>

#include <cstdio>
#include <iostream>

#include "tokenkit/pkcs11-vendor.h"

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;

// A secret source from --NAME-file / --NAME-env / --NAME-fd, with a default
// environment variable, else a prompt.
token::PinSource secret_source(const po::variables_map& vm, const std::string& name,
                               const std::string& default_env) {
  token::PinSource s;
  s.default_env = default_env;
  if (vm.count(name + "-file")) s.file = vm[name + "-file"].as<std::string>();
  if (vm.count(name + "-env")) s.env = vm[name + "-env"].as<std::string>();
  if (vm.count(name + "-fd")) s.fd = vm[name + "-fd"].as<int>();
  return s;
}

void add_secret_options(po::options_description& d, const std::string& name, const char* what) {
  d.add_options()((name + "-file").c_str(), po::value<std::string>(),
                  (std::string("read the ") + what + " from this file").c_str())(
      (name + "-env").c_str(), po::value<std::string>(), "... from this environment variable")(
      (name + "-fd").c_str(), po::value<int>(), "... from this file descriptor");
}

CK_UTF8CHAR_PTR utf8(const token::Secret& s) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s.data()));
}

// The slot of the one uninitialised token (SoftHSM2's and tokenkit's spare
// slot), or --slot.
CK_SLOT_ID free_slot(const token::Module& m, const TokenOptions& o) {
  if (o.slot) return *o.slot;
  for (const auto& s : m.slots(true)) {
    if (s.has_token && !(s.token.flags & CKF_TOKEN_INITIALIZED)) return s.id;
  }
  throw Error(ErrorKind::NotFound,
              "module " + m.name() +
                  " has no uninitialised token to "
                  "initialise; name one with --slot (re-initialising erases it)");
}

void set_user_pin(const token::Module& m, CK_SLOT_ID slot, const token::Secret& so,
                  const token::Secret& user) {
  token::Session s(m, slot, true);
  s.login(so, CKU_SO);
  m.call("C_InitPIN", m.functions()->C_InitPIN, s.context(), s.handle(), utf8(user),
         CK_ULONG(user.size()));
  s.logout();
}

int init(const po::variables_map& vm, std::ostream& out) {
  if (!vm.count("label")) throw Error(ErrorKind::Usage, "token init needs --label");
  const std::string label = vm["label"].as<std::string>();
  if (label.size() > 32) throw Error(ErrorKind::Usage, "a token label has at most 32 bytes");
  TokenOptions topts = token_options(vm);
  Target t = open_target(topts);
  CK_SLOT_ID slot = free_slot(t.module, topts);
  token::Secret so =
      token::read_secret(secret_source(vm, "so-pin", "TOKENKIT_SO_PIN"), "new SO PIN");
  token::Secret user =
      token::read_secret(secret_source(vm, "new-pin", "TOKENKIT_NEW_PIN"), "new user PIN");
  CK_UTF8CHAR padded[32];
  std::fill(std::begin(padded), std::end(padded), ' ');
  std::copy(label.begin(), label.end(), padded);
  t.module.call("C_InitToken", t.module.functions()->C_InitToken,
                "slot " + std::to_string(slot) + " of module " + t.module.name(), slot, utf8(so),
                CK_ULONG(so.size()), padded);
  // SoftHSM2 gives the new token a new slot id: find it again by label.
  token::TokenSelector sel;
  sel.label = label;
  token::SlotInfo made = token::select_token(t.module, sel);
  set_user_pin(t.module, made.id, so, user);
  made = t.module.slot(made.id);
  if (vm.count("json")) {
    out << token_json(made).dump(2) << "\n";
  } else {
    out << "Initialised token \"" << label << "\" (slot " << made.id << ") with a user PIN.\n";
    print_token(out, made, "");
  }
  return kExitOk;
}

int init_pin(const po::variables_map& vm, std::ostream& out) {
  Target t = open_target(token_options(vm));
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Secret so = token::read_secret(secret_source(vm, "so-pin", "TOKENKIT_SO_PIN"), "SO PIN");
  token::Secret user =
      token::read_secret(secret_source(vm, "new-pin", "TOKENKIT_NEW_PIN"), "new user PIN");
  set_user_pin(t.module, slot.id, so, user);
  out << "Set a new user PIN on token \"" << token::pkcs11_text(slot.token.label)
      << "\" (this also unlocks a locked PIN).\n";
  return kExitOk;
}

int set_pin(const po::variables_map& vm, std::ostream& out) {
  Target t = open_target(token_options(vm));
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  PinOptions pin = pin_options(vm);
  token::Session s(t.module, slot.id, true);
  token::Secret old = token::read_secret(pin.source, "current user PIN for " + s.context());
  token::Secret fresh =
      token::read_secret(secret_source(vm, "new-pin", "TOKENKIT_NEW_PIN"), "new user PIN");
  s.login(old);
  t.module.call("C_SetPIN", t.module.functions()->C_SetPIN, s.context(), s.handle(), utf8(old),
                CK_ULONG(old.size()), utf8(fresh), CK_ULONG(fresh.size()));
  s.logout();
  out << "Changed the user PIN of " << s.context() << ".\n";
  return kExitOk;
}

// tokenkit's vendor interface (C_DeleteToken) of the loaded module, or null
// for any other module. The module is loaded already: RTLD_NOLOAD finds it.
const TOKENKIT_FUNCTION_LIST* vendor_functions(const token::Module& m) {
  void* lib = dlopen(m.path().c_str(), RTLD_NOW | RTLD_NOLOAD);
  if (lib == nullptr) return nullptr;
  auto get = reinterpret_cast<TOKENKIT_C_GetInterface>(dlsym(lib, "C_GetInterface"));
  dlclose(lib);  // the module's own load keeps it mapped
  if (get == nullptr) return nullptr;
  CK_UTF8CHAR name[] = TOKENKIT_VENDOR_INTERFACE;
  TOKENKIT_INTERFACE* iface = nullptr;
  if (get(name, nullptr, &iface, 0) != CKR_OK || iface == nullptr) return nullptr;
  if (std::string(reinterpret_cast<const char*>(iface->pInterfaceName)) !=
      TOKENKIT_VENDOR_INTERFACE)
    return nullptr;  // a module that answers any name with its standard interface
  auto* f = static_cast<const TOKENKIT_FUNCTION_LIST*>(iface->pFunctionList);
  return f != nullptr && f->version.major == 1 ? f : nullptr;
}

// The user types the token's label on the terminal to confirm.
bool confirm_delete(const std::string& label, const std::string& what) {
  std::FILE* tty = std::fopen("/dev/tty", "r+");
  if (tty == nullptr)
    throw Error(ErrorKind::Usage, "no terminal to confirm deleting " + what + " on; pass --yes");
  (void)std::fprintf(tty,
                     "Delete %s and every key, certificate and object on it?\n"
                     "This cannot be undone. Type the token's label to confirm: ",
                     what.c_str());
  (void)std::fflush(tty);
  char buf[64] = {};
  std::string answer = std::fgets(buf, sizeof buf, tty) ? buf : "";
  (void)std::fclose(tty);
  while (!answer.empty() && (answer.back() == '\n' || answer.back() == '\r')) answer.pop_back();
  return answer == label;
}

int remove_token(const po::variables_map& vm, std::ostream& out) {
  Target t = open_target(token_options(vm));
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  const std::string label = token::pkcs11_text(slot.token.label);
  const std::string serial = token::pkcs11_text(slot.token.serialNumber);
  const std::string what = "token \"" + label + "\" (serial " + serial + ", slot " +
                           std::to_string(slot.id) + " of module " + t.module.name() + ")";
  // PKCS#11 has no call that deletes a token: only our module offers one.
  const TOKENKIT_FUNCTION_LIST* vendor = vendor_functions(t.module);
  if (vendor == nullptr) {
    throw Error(ErrorKind::Usage,
                "cannot delete " + what +
                    ": PKCS#11 has no call that deletes a token, and "
                    "this module is not tokenkit's software token. Erase it instead with `tokenkit "
                    "token init --slot " +
                    std::to_string(slot.id) +
                    " --label NEW` (re-initialises "
                    "it, the SO PIN is needed), or with its vendor's tool (SoftHSM2: softhsm2-util "
                    "--delete-token --serial " +
                    serial + ")");
  }
  token::Secret so =
      token::read_secret(secret_source(vm, "so-pin", "TOKENKIT_SO_PIN"), "SO PIN of " + what);
  if (!vm.count("yes") && !confirm_delete(label, what)) {
    std::cerr << "tokenkit token delete: not confirmed, nothing deleted\n";
    return kExitFailure;
  }
  {
    // The SO PIN, checked the standard way first (a wrong one: nothing happens).
    token::Session s(t.module, slot.id, true);
    s.login(so, CKU_SO);
    s.logout();
  }
  t.module.call("C_DeleteToken (tokenkit vendor interface)", vendor->C_DeleteToken, what, slot.id,
                utf8(so), CK_ULONG(so.size()));
  if (vm.count("json")) {
    out << Json{{"deleted",
                 {{"label", label},
                  {"serial", serial},
                  {"slot", slot.id},
                  {"module", t.module.name()}}}}
               .dump(2)
        << "\n";
  } else {
    out << "Deleted " << what << ". The slot is free for `tokenkit token init`.\n";
  }
  return kExitOk;
}

}  // namespace

int cmd_token(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("verb", po::value<std::string>(),
                                              "init, init-pin, set-pin or delete")(
      "uri", po::value<std::string>(), "pkcs11: URI of the token")(
      "label", po::value<std::string>(), "label of the new token (init)")(
      "yes,y", "delete: do not ask for confirmation")("json", "print JSON");
  add_token_options(d);
  add_pin_options(d);
  add_secret_options(d, "so-pin", "SO PIN (default: $TOKENKIT_SO_PIN, else a prompt)");
  add_secret_options(d, "new-pin", "new user PIN (default: $TOKENKIT_NEW_PIN, else a prompt)");
  po::positional_options_description pos;
  pos.add("verb", 1).add("uri", 1);
  Parsed p = parse(args, d, &pos);
  const std::string verb = p.vm.count("verb") ? p.vm["verb"].as<std::string>() : "";
  if (p.help || verb.empty()) {
    print_help(out, "tokenkit token init|init-pin|set-pin|delete [URI] [options]",
               "init      makes the module's free (uninitialised) token into a new token with\n"
               "          --label, an SO PIN and a user PIN\n"
               "init-pin  the SO sets a new user PIN (and so unlocks a locked one)\n"
               "set-pin   the user changes their PIN (current PIN from --pin-file etc.)\n"
               "delete    deletes a token of tokenkit's software token and everything on it,\n"
               "          after checking the SO PIN (asks on the terminal unless --yes)\n"
               "PINs come from files, environment variables, descriptors or a prompt.",
               "tokenkit token init --label mail --so-pin-file so.txt --new-pin-file pin.txt\n"
               "  tokenkit token delete --token-label old --so-pin-file so.txt --yes",
               d);
    return p.help ? kExitOk : kExitUsage;
  }
  if (verb == "init") return init(p.vm, out);
  if (verb == "init-pin") return init_pin(p.vm, out);
  if (verb == "set-pin") return set_pin(p.vm, out);
  if (verb == "delete") return remove_token(p.vm, out);
  throw Error(ErrorKind::Usage,
              "unknown token verb \"" + verb + "\": init, init-pin, set-pin or delete");
}

}  // namespace tokenkit
