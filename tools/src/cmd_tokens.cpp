// tokenkit tokens: slots and tokens of one module.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "token/names.hpp"

namespace tokenkit {

namespace {
Json mechanisms_json(const std::vector<token::MechanismInfo>& mechs) {
  Json a = Json::array();
  for (const auto& m : mechs) {
    a.push_back({{"name", token::mechanism_name(m.type)},
                 {"min_key", m.info.ulMinKeySize},
                 {"max_key", m.info.ulMaxKeySize},
                 {"flags", mechanism_flags(m.info.flags)}});
  }
  return a;
}

void print_mechanisms(std::ostream& out, const std::vector<token::MechanismInfo>& mechs) {
  out << "  mechanisms (" << mechs.size() << "):\n";
  for (const auto& m : mechs) {
    out << "    " << token::mechanism_name(m.type);
    if (m.info.ulMaxKeySize) out << "  keys " << m.info.ulMinKeySize << ".." << m.info.ulMaxKeySize;
    out << "  " << join(mechanism_flags(m.info.flags), ", ") << "\n";
  }
}
}  // namespace

int cmd_tokens(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("json", "print JSON for scripts")(
      "mechanisms,M", "list each token's mechanisms")("all-slots", "show empty slots too")(
      "uri", po::value<std::string>(), "pkcs11: URI selecting the module or token");
  add_token_options(d);
  po::positional_options_description pos;
  pos.add("uri", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit tokens [URI] [--module M] [--token-label L] [--mechanisms] [--json]",
               "Shows the slots and tokens of a module (the embedded default token unless\n"
               "--module or a URI names another): label, maker, serial, flags, PIN state\n"
               "(count low, final try, locked) and the token's URI.",
               "tokenkit tokens --module /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so -M", d);
    return kExitOk;
  }
  TokenOptions topts = token_options(p.vm);
  Target t = open_target(topts);
  const bool json = p.vm.count("json") != 0;
  const bool mechs = p.vm.count("mechanisms") != 0;
  std::vector<token::SlotInfo> slots;
  if (t.selector.any()) {
    slots.push_back(token::select_token(t.module, t.selector));
  } else {
    slots = t.module.slots(p.vm.count("all-slots") == 0);
  }
  CK_INFO info = t.module.info();
  Json j{{"module", {{"name", t.module.name()},
                     {"path", t.module.path()},
                     {"manufacturer", token::pkcs11_text(info.manufacturerID)},
                     {"description", token::pkcs11_text(info.libraryDescription)}}}};
  Json arr = Json::array();
  if (!json) {
    out << "Module " << t.module.name() << " (" << t.module.path() << "): "
        << token::pkcs11_text(info.libraryDescription) << "\n";
  }
  for (const auto& s : slots) {
    Json sj = token_json(s);
    if (!json) print_token(out, s, "");
    if (mechs && s.has_token) {
      auto list = t.module.mechanisms(s.id);
      sj["mechanisms"] = mechanisms_json(list);
      if (!json) print_mechanisms(out, list);
    }
    arr.push_back(sj);
  }
  j["slots"] = arr;
  if (json) out << j.dump(2) << "\n";
  return kExitOk;
}

}  // namespace tokenkit
