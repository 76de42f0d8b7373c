// tokenkit keygen: a key pair born on the token, never anywhere else.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"
#include "token/keygen.hpp"

namespace tokenkit {

int cmd_keygen(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("token", po::value<std::string>(),
                                              "pkcs11: URI of the token")(
      "type", po::value<std::string>()->default_value("rsa:3072"),
      "rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384|ec:p521|ed25519")(
      "label", po::value<std::string>(), "label of the new key pair (required)")(
      "id", po::value<std::string>(), "CKA_ID in hex (default: SHA-1 of the public key, as NSS)")(
      "json", "print JSON for scripts");
  add_token_options(d);
  add_pin_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out, "tokenkit keygen --token URI --type rsa:3072|ec:p256|ed25519 --label L",
               "Generates a key pair on the token: the private key is sensitive and was never\n"
               "extractable, so it has never existed anywhere but on the token. Then make a\n"
               "certificate request for it with `tokenkit csr`, and store the certificate the\n"
               "CA returns with `tokenkit import-cert`.",
               "tokenkit keygen --token 'pkcs11:token=mail' --type ec:p256 --label 'Alice mail' "
               "--pin-file ~/.pin",
               d);
    return kExitOk;
  }
  if (!p.vm.count("label")) throw token::Error(token::ErrorKind::Usage, "keygen needs --label");
  token::KeySpec spec = token::parse_key_spec(p.vm["type"].as<std::string>());
  std::optional<token::Bytes> id;
  if (p.vm.count("id")) {
    id = token::from_hex(p.vm["id"].as<std::string>());
    if (!id || id->empty())
      throw token::Error(token::ErrorKind::Usage, "--id takes hex digits, e.g. --id 01a2");
  }
  TokenOptions topts = token_options(p.vm);
  if (p.vm.count("token")) topts.uri = p.vm["token"].as<std::string>();
  PinOptions pin = pin_options(p.vm);
  OpenedToken tok = open_session(topts, pin, Login::Always);
  token::Session& session = tok.session;
  const std::string label = p.vm["label"].as<std::string>();
  token::GeneratedKey key = token::generate_key_pair(session, spec, label, id);
  token::ObjectInfo priv = token::describe_object(session, tok.slot.token, key.private_key);
  token::ObjectInfo pub = token::describe_object(session, tok.slot.token, key.public_key);
  if (p.vm.count("json")) {
    out << Json{{"private_key", object_json(priv)}, {"public_key", object_json(pub)}}.dump(2)
        << "\n";
  } else {
    out << "Generated " << token::describe(spec) << " key pair \"" << label << "\" on "
        << session.context() << ":\n";
    print_object(out, priv, "  ");
    print_object(out, pub, "  ");
  }
  return kExitOk;
}

}  // namespace tokenkit
