// tokenkit import-cert: the certificate a CA returned, next to its key.
#include <fstream>
#include <iostream>
#include <sstream>

#include <openssl/pem.h>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"
#include "token/keygen.hpp"
#include "token/ossl.hpp"

namespace tokenkit {

namespace {
// PEM or DER, as CAs hand them out.
token::Bytes read_certificate(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw token::Error(token::ErrorKind::Io, "cannot open " + path);
  std::stringstream s;
  s << f.rdbuf();
  const std::string data = s.str();
  if (data.find("-----BEGIN") == std::string::npos) return token::Bytes(data.begin(), data.end());
  token::ossl::Bio bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  token::ossl::X509Ptr x(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!x) throw token::Error(token::ErrorKind::Input, path + " holds no PEM certificate");
  int n = i2d_X509(x.get(), nullptr);
  token::Bytes der(static_cast<std::size_t>(n));
  unsigned char* p = der.data();
  i2d_X509(x.get(), &p);
  return der;
}
}  // namespace

int cmd_import_cert(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("file", po::value<std::string>(),
                                              "certificate (PEM or DER)")(
      "token", po::value<std::string>(), "pkcs11: URI of the token")(
      "label", po::value<std::string>(), "label (default: the key's)")("json", "print JSON");
  add_token_options(d);
  add_pin_options(d);
  po::positional_options_description pos;
  pos.add("file", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit import-cert FILE --token URI",
               "Stores a certificate on the token next to the key it certifies, found by\n"
               "public key: same CKA_ID, the key's label, subject, issuer and serial set, so\n"
               "that NSS and Thunderbird pair them.",
               "tokenkit import-cert alice.crt --token 'pkcs11:token=mail' --pin-file ~/.pin", d);
    return kExitOk;
  }
  if (!p.vm.count("file"))
    throw token::Error(token::ErrorKind::Usage, "which certificate file? see --help");
  const std::string file = p.vm["file"].as<std::string>();
  token::Bytes der = read_certificate(file);
  TokenOptions topts = token_options(p.vm);
  if (p.vm.count("token")) topts.uri = p.vm["token"].as<std::string>();
  PinOptions pin = pin_options(p.vm);
  OpenedToken tok = open_session(topts, pin, Login::WhenAsked);
  token::Session& session = tok.session;
  std::optional<std::string> label;
  if (p.vm.count("label")) label = p.vm["label"].as<std::string>();
  token::StoredCertificate c = token::import_certificate(session, der, label, file);
  if (p.vm.count("json")) {
    out << Json{{"label", c.label}, {"id", hex_id(c.id)}, {"already_present", c.already_present}}
               .dump(2)
        << "\n";
  } else {
    out << (c.already_present ? "Already on " : "Stored on ") << session.context()
        << ": certificate \"" << c.label << "\" with id " << hex_id(c.id)
        << ", paired to its key.\n";
  }
  return kExitOk;
}

}  // namespace tokenkit
