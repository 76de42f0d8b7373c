// Lists the keys and certificates of every token of a module, by URI, with
// libtoken. Usage: list_keys MODULE [PIN-FILE]
//   list_keys /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so ~/.tokenkit-pin
#include <iostream>

#include "token/error.hpp"
#include "token/module.hpp"
#include "token/objects.hpp"
#include "token/pin.hpp"
#include "token/session.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: list_keys MODULE [PIN-FILE]\n";
    return 2;
  }
  try {
    token::Module module = token::Module::load(argv[1]);
    for (const token::SlotInfo& slot : module.slots(true)) {
      if (!slot.has_token || !(slot.token.flags & CKF_TOKEN_INITIALIZED)) continue;
      std::cout << token::Uri::for_token(slot.token) << "\n";
      token::Session session(module, slot.id);
      if (argc > 2) session.login(token::read_secret_file(argv[2], "user PIN"));
      for (const token::ObjectInfo& o : token::list_objects(session, slot.token, token::Uri())) {
        if (o.cls == CKO_DATA) continue;
        std::cout << "  " << token::class_label(o.cls) << "\t" << o.uri << "\n";
      }
    }
  } catch (const token::Error& e) {
    std::cerr << "list_keys: " << e.what() << "\n";
    return e.exit_code();
  }
  return 0;
}
