// tokenkit objects: what is on a token, with the attributes that matter.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "token/session.hpp"

namespace tokenkit {

int cmd_objects(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("json", "print JSON for scripts")(
      "uri", po::value<std::string>(), "pkcs11: URI selecting the token and objects");
  add_token_options(d);
  add_pin_options(d);
  po::positional_options_description pos;
  pos.add("uri", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit objects [URI] [--login] [--pin-file F] [--json]",
               "Lists the objects on one token: class, key type and size, label, id, whether\n"
               "a key is private, sensitive and extractable (and always was), what it may be\n"
               "used for, a certificate's subject, issuer, email and validity, and each\n"
               "object's pkcs11: URI. Private objects need --login (or a PIN source).",
               "tokenkit objects 'pkcs11:token=alice;type=private' --pin-file ~/.tokenkit-pin",
               d);
    return kExitOk;
  }
  TokenOptions topts = token_options(p.vm);
  PinOptions pin = pin_options(p.vm);
  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id);
  if (pin.login) login(session, pin, t.selector.uri);
  auto objects = token::list_objects(session, slot.token, t.selector.uri);
  if (p.vm.count("json")) {
    Json arr = Json::array();
    for (const auto& o : objects) arr.push_back(object_json(o));
    Json j{{"module", t.module.path()}, {"token", token_json(slot)}, {"objects", arr}};
    out << j.dump(2) << "\n";
    return kExitOk;
  }
  out << "Token \"" << token::pkcs11_text(slot.token.label) << "\" (slot " << slot.id
      << ") in module " << t.module.name() << ": " << objects.size() << " object"
      << (objects.size() == 1 ? "" : "s") << (pin.login ? "" : " visible without login") << "\n";
  for (const auto& o : objects) print_object(out, o, "  ");
  return kExitOk;
}

}  // namespace tokenkit
