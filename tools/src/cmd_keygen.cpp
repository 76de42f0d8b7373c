// tokenkit keygen: a key pair born on the token, never anywhere else.
#include <iostream>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"
#include "token/keygen.hpp"
#include "token/profile.hpp"

namespace tokenkit {

int cmd_keygen(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("token", po::value<std::string>(),
                                              "pkcs11: URI of the token")(
      "type", po::value<std::string>()->default_value("rsa:3072"),
      "rsa:2048|rsa:3072|rsa:4096|ec:p256|ec:p384|ec:p521|ed25519|x25519")(
      "label", po::value<std::string>(), "label of the new key pair (required)")(
      "id", po::value<std::string>(), "CKA_ID in hex (default: SHA-1 of the public key, as NSS)")(
      "piv-slot", po::value<std::string>(), "PIV cards: the slot, 9a|9c|9d|9e (or 82..95)")(
      "json", "print JSON for scripts");
  add_so_pin_options(d);
  add_token_options(d);
  add_pin_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out, "tokenkit keygen --token URI --type rsa:3072|ec:p256|ed25519|x25519 --label L",
               "Generates a key pair on the token: the private key is sensitive and was never\n"
               "extractable, so it has never existed anywhere but on the token. Then make a\n"
               "certificate request for it with `tokenkit csr`, and store the certificate the\n"
               "CA returns with `tokenkit import-cert`. PIV cards (a YubiKey through\n"
               "libykcs11.so) take the key into the slot --piv-slot names, with the management\n"
               "key as SO PIN (--so-pin-file); a slot that holds a key is never overwritten.\n"
               "An x25519 key only agrees keys (S/MIME decryption, RFC 8418): it cannot sign\n"
               "its own request, so a CA certifies it from its public key (openssl x509\n"
               "-force_pubkey) and `tokenkit import-cert` stores the certificate.",
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
  if (p.vm.count("piv-slot")) {
    if (id) throw token::Error(token::ErrorKind::Usage, "give --id or --piv-slot, not both");
    id = token::piv_slot_id(p.vm["piv-slot"].as<std::string>());
    if (!id) {
      throw token::Error(token::ErrorKind::Usage,
                         "--piv-slot takes 9a, 9c, 9d, 9e or a retired slot 82..95");
    }
  }
  const token::PinSource so_pin = so_pin_source(p.vm);
  TokenOptions topts = token_options(p.vm);
  if (p.vm.count("token")) topts.uri = p.vm["token"].as<std::string>();
  PinOptions pin = pin_options(p.vm);
  OpenedToken tok = open_session(topts, pin, Login::Always);
  token::Session& session = tok.session;
  const std::string label = p.vm["label"].as<std::string>();
  token::GeneratedKey key;
  write_as_profile_wants(tok, so_pin,
                         [&] { key = token::generate_key_pair(session, spec, label, id); });
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
