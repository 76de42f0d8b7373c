#include "cli.hpp"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "token/error.hpp"
#include "token/profile.hpp"
#include "token/session.hpp"

namespace tokenkit {

using token::Error;
using token::ErrorKind;

void add_token_options(po::options_description& d) {
  d.add_options()("module", po::value<std::string>(),
                  "PKCS#11 module: a path, or a p11-kit module name")(
      "slot", po::value<unsigned long>(), "slot id of the token")(
      "token-label", po::value<std::string>(), "label of the token")(
      "serial", po::value<std::string>(), "serial number of the token");
}

void add_pin_options(po::options_description& d) {
  d.add_options()("login", "log in to see private objects")("pin-file", po::value<std::string>(),
                                                            "read the PIN from this file")(
      "pin-env", po::value<std::string>(),
      "read the PIN from this environment variable "
      "(default TOKENKIT_PIN when set)")("pin-fd", po::value<int>(),
                                         "read the PIN from this open file descriptor")(
      "pin", po::value<std::string>(), "the PIN itself (visible to other users: avoid)");
}

TokenOptions token_options(const po::variables_map& vm) {
  TokenOptions o;
  if (vm.count("module")) o.module = vm["module"].as<std::string>();
  if (vm.count("uri")) o.uri = vm["uri"].as<std::string>();
  if (vm.count("slot")) o.slot = vm["slot"].as<unsigned long>();
  if (vm.count("token-label")) o.label = vm["token-label"].as<std::string>();
  if (vm.count("serial")) o.serial = vm["serial"].as<std::string>();
  return o;
}

PinOptions pin_options(const po::variables_map& vm) {
  PinOptions p;
  p.login = vm.count("login") != 0;
  if (vm.count("pin-file")) p.source.file = vm["pin-file"].as<std::string>();
  if (vm.count("pin-env")) p.source.env = vm["pin-env"].as<std::string>();
  if (vm.count("pin-fd")) p.source.fd = vm["pin-fd"].as<int>();
  if (vm.count("pin")) p.source.value = vm["pin"].as<std::string>();
  const int given = int(p.source.file.has_value()) + int(p.source.env.has_value()) +
                    int(p.source.fd.has_value()) + int(p.source.value.has_value());
  if (given > 1) {
    throw Error(ErrorKind::Usage,
                "give the PIN one way only: --pin-file, --pin-env, --pin-fd or --pin");
  }
  if (given > 0) p.login = true;
  return p;
}

Parsed parse(const std::vector<std::string>& args, const po::options_description& visible,
             const po::positional_options_description* positional) {
  Parsed p;
  try {
    auto parser = po::command_line_parser(args).options(visible);
    if (positional) parser.positional(*positional);
    po::store(parser.run(), p.vm);
    po::notify(p.vm);
  } catch (const po::error& e) {
    throw Error(ErrorKind::Usage, e.what());
  }
  p.help = p.vm.count("help") != 0;
  return p;
}

std::string default_module() {
  if (const char* m = std::getenv("TOKENKIT_MODULE"); m && *m) return m;
  return TOKENKIT_DEFAULT_MODULE;
}

Target open_target(const TokenOptions& opts) {
  token::Uri uri = opts.uri ? token::Uri::parse(*opts.uri) : token::Uri();
  token::TokenSelector sel{uri, opts.slot, opts.label, opts.serial};
  token::Module m = token::resolve_module(opts.module, uri, default_module());
  return Target{std::move(m), std::move(sel)};
}

token::Secret read_user_pin(const token::Session& session, const PinOptions& pin,
                            const token::Uri& uri) {
  token::PinSource src = pin.source;
  if (!src.value && !src.file && !src.fd && !src.env) {
    if (auto v = uri.pin_value()) src.value = *v;
    if (auto s = uri.pin_source(); s && s->rfind("file:", 0) == 0)
      src.file = s->substr(5);
    else if (s && !s->empty() && (*s)[0] == '/')
      src.file = *s;
  }
  if (src.value) {
    std::cerr << "tokenkit: warning: a PIN given on the command line or in a URI can be read by "
                 "other users of this machine; prefer --pin-file, --pin-env or --pin-fd\n";
  }
  return token::read_secret(src, "user PIN for " + session.context());
}

void login(token::Session& session, const PinOptions& pin, const token::Uri& uri) {
  session.login(read_user_pin(session, pin, uri));
}

OpenedToken open_session(const TokenOptions& opts, const PinOptions& pin, Login how,
                         bool read_write) {
  Target t = open_target(opts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id, read_write);
  OpenedToken o{std::move(t), slot, std::move(session), std::nullopt};
  if (how == Login::Always || (how == Login::WhenAsked && pin.login)) {
    o.user_pin = read_user_pin(o.session, pin, o.target.selector.uri);
    o.session.login(*o.user_pin);
  }
  return o;
}

void add_so_pin_options(po::options_description& d) {
  d.add_options()("so-pin-file", po::value<std::string>(),
                  "tokens that write as SO (YubiKey: the PIV management key): read the SO PIN "
                  "from this file")(
      "so-pin-env", po::value<std::string>(),
      "... from this environment variable (default TOKENKIT_SO_PIN when set)");
}

token::PinSource so_pin_source(const po::variables_map& vm) {
  token::PinSource so;
  so.default_env = "TOKENKIT_SO_PIN";
  if (vm.count("so-pin-file")) so.file = vm["so-pin-file"].as<std::string>();
  if (vm.count("so-pin-env")) so.env = vm["so-pin-env"].as<std::string>();
  if (so.file && so.env) {
    throw Error(ErrorKind::Usage, "give the SO PIN one way only: --so-pin-file or --so-pin-env");
  }
  return so;
}

void write_as_profile_wants(OpenedToken& tok, const token::PinSource& so_pin,
                            const std::function<void()>& write) {
  const token::TokenProfile& profile = token::token_profile(tok.session);
  if (!profile.so_login_to_write) {
    write();
    return;
  }
  const token::Secret so = token::read_secret(
      so_pin, std::string(profile.so_secret_name) + " of " + tok.session.context());
  tok.session.logout();
  tok.session.login(so, CKU_SO);
  auto back_to_user = [&tok] {
    tok.session.logout();
    if (tok.user_pin) tok.session.login(*tok.user_pin);
  };
  try {
    write();
  } catch (...) {
    try {
      back_to_user();
    } catch (const Error&) {  // the first error is the one to report
    }
    throw;
  }
  back_to_user();
}

std::string hex_id(const token::Bytes& id) { return token::to_hex(id); }

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  std::string s;
  for (const auto& p : parts) s += (s.empty() ? "" : sep) + p;
  return s;
}

void print_help(std::ostream& out, const std::string& usage, const std::string& about,
                const std::string& example, const po::options_description& d) {
  out << "Usage: " << usage << "\n\n"
      << about << "\n\nExample:\n  " << example << "\n\n"
      << d
      << "\nExit codes: docs/exit-codes.md (0 ok, 2 usage, 3 not found, 4 ambiguous, 5 wrong PIN,\n"
         "6 PIN locked, 7 token error, 8 module error, 9 file error, 10 bad input).\n";
}

}  // namespace tokenkit
