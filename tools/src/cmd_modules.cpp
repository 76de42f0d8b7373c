// tokenkit modules: what p11-kit has registered, and the tokens in each.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"

namespace tokenkit {

int cmd_modules(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("json", "print JSON for scripts");
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out, "tokenkit modules [--json]",
               "Lists the PKCS#11 modules registered with p11-kit (system and user\n"
               "configuration) and the tokens each one shows. A module that fails to load\n"
               "is listed with its error; the others are still shown.",
               "tokenkit modules --json | jq '.[].tokens[].label'", d);
    return kExitOk;
  }
  const bool json = p.vm.count("json") != 0;
  Json all = Json::array();
  for (const auto& reg : token::registered_modules()) {
    Json m{{"name", reg.name}, {"path", reg.path}};
    if (!json) out << "Module " << reg.name << " (" << reg.path << ")\n";
    try {
      token::Module mod = token::Module::load(reg.path);
      Json tokens = Json::array();
      for (const auto& s : mod.slots(true)) {
        if (!s.has_token) continue;
        tokens.push_back(token_json(s));
        if (!json) print_token(out, s, "  ");
      }
      m["tokens"] = tokens;
    } catch (const token::Error& e) {
      m["error"] = e.what();
      if (!json) out << "  error: " << e.what() << "\n";
    }
    all.push_back(m);
  }
  if (json) {
    out << all.dump(2) << "\n";
  } else if (all.empty()) {
    out << "No modules are registered with p11-kit (see p11-kit list-modules).\n";
  }
  return kExitOk;
}

}  // namespace tokenkit
