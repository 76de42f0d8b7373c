// tokenkit smime: sign, verify, encrypt and decrypt S/MIME mail (RFC 8551) with keys that stay
// on the token. Messages stream from --in (or stdin) to --out (or stdout);
// an output file appears only when the command succeeded.
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "certs_common.hpp"
#include "cli.hpp"
#include "commands.hpp"
#include "output.hpp"
#include "token/engine.hpp"
#include "token/smime.hpp"

namespace tokenkit {

namespace {

namespace fs = std::filesystem;
using token::Error;
using token::ErrorKind;

struct BioFree {
  void operator()(BIO* b) const { BIO_free_all(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr open_input(const std::optional<std::string>& path) {
  BIO* b = path ? BIO_new_file(path->c_str(), "rb") : BIO_new_fp(stdin, BIO_NOCLOSE);
  if (b == nullptr) {
    throw Error(ErrorKind::Io, "cannot open " + *path + ": " + std::strerror(errno));
  }
  return BioPtr(b);
}

// A scratch file in the temporary directory, removed when dropped.
class TempFile {
 public:
  TempFile() {
    std::string tmpl = (fs::temp_directory_path() / "tokenkit-XXXXXX").string();
    int fd = mkstemp(tmpl.data());
    if (fd < 0)
      throw Error(ErrorKind::Io,
                  std::string("cannot create a temporary file: ") + std::strerror(errno));
    close(fd);
    path_ = tmpl;
  }
  ~TempFile() { (void)std::remove(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Runs `produce` into --out (under a temporary name, renamed on success) or
// straight into stdout, which mail pipelines read as it comes.
template <class F>
void write_result(const std::optional<std::string>& target, F produce) {
  if (!target) {
    BioPtr o(BIO_new_fp(stdout, BIO_NOCLOSE));
    produce(o.get());
    return;
  }
  Output o(target);
  produce(o.bio());
  o.commit();
}

std::optional<std::string> opt(const po::variables_map& vm, const char* name) {
  if (!vm.count(name)) return std::nullopt;
  return vm[name].as<std::string>();
}

// The recipients' certificates, resolved before anything is written, with
// the raw pointers OpenSSL takes; what each argument became goes to stderr.
struct Certificates {
  std::vector<Recipient> recipients;
  std::vector<X509*> pointers;
};

void print_log(const std::string& text, const std::string& command) {
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    std::cerr << "tokenkit " << command << ": " << line << "\n";
}

void choose_cipher(const Certificates& c, token::smime::EncryptOptions& eo,
                   const po::variables_map& vm, const std::string& command) {
  std::ostringstream log;
  choose_content_cipher(c.recipients, eo, vm, log);
  print_log(log.str(), command);
}

void add_recipients(Certificates& c, const po::variables_map& vm, const char* option,
                    RecipientKind kind, const std::string& command) {
  if (!vm.count(option)) return;
  std::ostringstream log;
  auto r = resolve_recipients(vm[option].as<std::vector<std::string>>(), kind, vm, log);
  print_log(log.str(), command);
  for (auto& one : r) {
    c.pointers.push_back(one.cert.get());
    c.recipients.push_back(std::move(one));
  }
}

// The key a command works with, logged in; the caller's session stays open
// for the key's lifetime (the login belongs to the token and this process).
struct OpenKey {
  std::unique_ptr<token::Session> session;
  token::TokenKey key;
};

OpenKey open_key(const po::variables_map& vm, const std::string& action) {
  if (!vm.count("key")) throw Error(ErrorKind::Usage, "smime " + action + " needs --key URI");
  TokenOptions topts = token_options(vm);
  topts.uri = vm["key"].as<std::string>();
  PinOptions pin = pin_options(vm);
  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  auto session = std::make_unique<token::Session>(t.module, slot.id);
  login(*session, pin, t.selector.uri);
  token::KeyOptions ko;
  ko.context_pin = [src = pin.source, ctx = session->context()] {
    return token::read_secret(src, "PIN for the key on " + ctx);
  };
  token::TokenKey key = token::open_private_key(*session, t.selector.uri, ko);
  return OpenKey{std::move(session), std::move(key)};
}

int sign(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")(
      "key", po::value<std::string>(),
      "pkcs11: URI of the signing key (its certificate has the same id)")(
      "in", po::value<std::string>(), "the MIME entity to sign (default: standard input)")(
      "out", po::value<std::string>(),
      "where to write the signed message (default: standard output)")(
      "opaque", "write application/pkcs7-mime signed-data instead of multipart/signed")(
      "pss", "RSA-PSS (salt = hash length) instead of PKCS#1 v1.5")(
      "digest", po::value<std::string>()->default_value("SHA256"), "SHA256, SHA384 or SHA512")(
      "encrypt-to", po::value<std::vector<std::string>>(),
      "then encrypt the signed message to this recipient: a certificate file (PEM or DER), "
      "a pkcs11: URI of certificates on a token, or a mail address; repeatable")(
      "cbc", "with --encrypt-to: AES-CBC instead of AES-GCM");
  add_token_options(d);
  add_pin_options(d);
  add_recipient_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out,
               "tokenkit smime sign --key URI [--in F] [--out F] [--opaque] [--pss] "
               "[--encrypt-to CERT|URI|EMAIL]...",
               "Signs a MIME entity (headers, a blank line, the body) with a key on a token and\n"
               "writes an S/MIME message (RFC 8551): multipart/signed by default, with the\n"
               "signed part canonicalised to CRLF. The signer certificate is read from the\n"
               "token (same CKA_ID as the key). RSA PKCS#1 v1.5, RSA-PSS (--pss) or ECDSA.\n"
               "--encrypt-to then encrypts the signed message (as `smime encrypt` does).",
               "tokenkit smime sign --key 'pkcs11:token=mail;id=%01' --pin-file ~/.pin "
               "--in msg.eml --out signed.eml",
               d);
    return kExitOk;
  }
  OpenKey k = open_key(p.vm, "sign");
  const token::TokenKey& key = k.key;
  token::smime::SignOptions so;
  so.opaque = p.vm.count("opaque") != 0;
  so.pss = p.vm.count("pss") != 0;
  so.digest = p.vm["digest"].as<std::string>();
  BioPtr in = open_input(opt(p.vm, "in"));
  token::smime::SignResult result;
  auto warn = [&result] {
    if (!result.encoded.empty()) {
      std::cerr << "tokenkit smime sign: the body had 8-bit bytes and was signed as "
                << result.encoded << " (RFC 8551 section 3.1.2)\n";
    }
    if (!result.eight_bit) return;
    std::cerr << "tokenkit smime sign: warning: the signed part has 8-bit bytes; relays that "
                 "re-encode them break the signature: give it a Content-Transfer-Encoding of "
                 "quoted-printable or base64\n";
  };
  if (!p.vm.count("encrypt-to")) {
    write_result(opt(p.vm, "out"),
                 [&](BIO* o) { result = token::smime::sign(key, in.get(), o, so); });
    warn();
    return kExitOk;
  }
  // Sign, then encrypt the signed message (RFC 8551 section 3.7), through a
  // scratch file so that memory stays flat.
  Certificates certs;
  add_recipients(certs, p.vm, "encrypt-to", RecipientKind::Any, "smime sign");
  TempFile scratch;
  {
    BioPtr s(BIO_new_file(scratch.path().c_str(), "wb"));
    if (!s) throw Error(ErrorKind::Io, "cannot write " + scratch.path());
    result = token::smime::sign(key, in.get(), s.get(), so);
    warn();
    if (BIO_flush(s.get()) != 1) throw Error(ErrorKind::Io, "cannot write " + scratch.path());
  }
  BioPtr signed_msg = open_input(scratch.path());
  token::smime::EncryptOptions eo;
  eo.cbc = p.vm.count("cbc") != 0;
  eo.binary = true;
  choose_cipher(certs, eo, p.vm, "smime sign");
  write_result(opt(p.vm, "out"),
               [&](BIO* o) { token::smime::encrypt(certs.pointers, signed_msg.get(), o, eo); });
  return kExitOk;
}

int verify(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("in", po::value<std::string>(),
                                              "the signed message (default: standard input)")(
      "out", po::value<std::string>(),
      "where to write the signed content (default: standard output)")(
      "ca-file", po::value<std::vector<std::string>>(),
      "trusted CA certificates (PEM); repeatable")(
      "no-system-cas", "trust only --ca-file, not the system's CA certificates")(
      "token", po::value<std::string>(),
      "also trust this token's CA certificates (category authority, or CKA_TRUSTED)")(
      "store-sender-cert",
      "after a good signature, keep the signer's certificate in the certificate store")(
      "db", po::value<std::string>(), "the certificate store file (see tokenkit certs)");
  add_token_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out,
               "tokenkit smime verify [--ca-file F]... [--token URI] [--store-sender-cert] "
               "[--in F] [--out F]",
               "Verifies a signed S/MIME message: the signature over the content, the signer's\n"
               "certificate chain to the trusted CAs (the system's and --ca-file), and that the\n"
               "certificate is for email signing. Says which check failed and exits 1; writes\n"
               "the signed content only when every check passed. --token adds the token's CA\n"
               "certificates to the trusted CAs; --store-sender-cert keeps the signer's\n"
               "certificate (only after every check passed) for `smime encrypt --to`.",
               "tokenkit smime verify --ca-file company-ca.pem --in signed.eml --out msg.eml", d);
    return kExitOk;
  }
  token::smime::VerifyOptions vo;
  if (p.vm.count("ca-file")) vo.ca_files = p.vm["ca-file"].as<std::vector<std::string>>();
  vo.system_cas = p.vm.count("no-system-cas") == 0;
  if (p.vm.count("token") || p.vm.count("module") || p.vm.count("token-label") ||
      p.vm.count("slot") || p.vm.count("serial")) {
    vo.ca_der = token_ca_certificates(p.vm);
  }
  BioPtr in = open_input(opt(p.vm, "in"));
  Output o(opt(p.vm, "out"));
  token::smime::VerifyResult r = token::smime::verify(in.get(), o.bio(), vo);
  if (!r.ok()) {
    std::cerr << "tokenkit smime verify: verification failed: " << check_name(r.failed) << ": "
              << r.reason << "\n";
    return kExitFailure;
  }
  o.commit();
  for (const auto& s : r.signers)
    std::cerr << "tokenkit smime verify: good signature by " << s << "\n";
  if (p.vm.count("store-sender-cert")) store_sender_certificates(r, p.vm, std::cerr);
  return kExitOk;
}

int encrypt(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("recipient", po::value<std::vector<std::string>>(),
                                              "a recipient's certificate file (PEM or DER); "
                                              "repeatable")(
      "to", po::value<std::vector<std::string>>(),
      "a recipient: a mail address (the newest usable certificate for it in the certificate "
      "store, else the directories), a pkcs11: URI (the certificates on a token that match it) "
      "or a certificate file; repeatable")("in", po::value<std::string>(),
                                           "the MIME entity to encrypt (default: standard input)")(
      "out", po::value<std::string>(),
      "where to write the encrypted message (default: standard output)")(
      "cbc", "AES-CBC (EnvelopedData) instead of AES-GCM (AuthEnvelopedData)")(
      "oaep", "RSA recipients: RSAES-OAEP with SHA-256 instead of PKCS#1 v1.5")(
      "module", po::value<std::string>(),
      "pkcs11: recipients: the PKCS#11 module (a path or a p11-kit name) when the URI names none");
  add_recipient_options(d);
  add_pin_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(
        out,
        "tokenkit smime encrypt [--recipient CERT]... [--to EMAIL|URI|CERT]... [--in F] [--out F] "
        "[--cbc] [--oaep]",
        "Encrypts a MIME entity to one or more certificates and writes\n"
        "application/pkcs7-mime: AES-256-GCM AuthEnvelopedData (RFC 5083/5084) by default,\n"
        "AES-CBC with --cbc or when a recipient's client announced no AES-GCM (the\n"
        "SMIMECapabilities kept by smime verify --store-sender-cert, or the\n"
        "certificate's own; stderr says so). RSA recipients get PKCS#1 v1.5 key\n"
        "transport (OAEP SHA-256 with --oaep), EC recipients ECDH ephemeral-static\n"
        "(RFC 5753).\n"
        "--to EMAIL takes the recipient's certificate from the certificate store (see\n"
        "tokenkit certs): the newest one valid now and usable for encryption; when\n"
        "it has none, the directories (--ldap, the directories file) are searched.\n"
        "--to 'pkcs11:token=Work;object=Bob' takes the usable certificates on a token\n"
        "that match the URI; no login unless the token hides its certificates (then the\n"
        "PIN comes from --pin-file, --pin-env, --pin-fd, $TOKENKIT_PIN or a prompt).",
        "tokenkit smime encrypt --to bob@example.org --to 'pkcs11:token=Work;object=me' "
        "--recipient carol.pem < msg.eml > enc.eml",
        d);
    return kExitOk;
  }
  if (!p.vm.count("recipient") && !p.vm.count("to"))
    throw Error(ErrorKind::Usage, "smime encrypt needs --recipient CERT or --to EMAIL|URI|CERT");
  Certificates certs;
  add_recipients(certs, p.vm, "recipient", RecipientKind::File, "smime encrypt");
  add_recipients(certs, p.vm, "to", RecipientKind::Any, "smime encrypt");
  token::smime::EncryptOptions eo;
  eo.cbc = p.vm.count("cbc") != 0;
  eo.oaep = p.vm.count("oaep") != 0;
  choose_cipher(certs, eo, p.vm, "smime encrypt");
  BioPtr in = open_input(opt(p.vm, "in"));
  write_result(opt(p.vm, "out"),
               [&](BIO* o) { token::smime::encrypt(certs.pointers, in.get(), o, eo); });
  return kExitOk;
}

int decrypt(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")(
      "key", po::value<std::string>(),
      "pkcs11: URI of the decryption key (its certificate has the same id)")(
      "in", po::value<std::string>(), "the encrypted message (default: standard input)")(
      "out", po::value<std::string>(), "where to write the content (default: standard output)");
  add_token_options(d);
  add_pin_options(d);
  Parsed p = parse(args, d);
  if (p.help) {
    print_help(out, "tokenkit smime decrypt --key URI [--in F] [--out F]",
               "Decrypts an S/MIME message encrypted to the certificate of a key on a token:\n"
               "RSA PKCS#1 v1.5 or OAEP key transport, or ECDH, done on the token; AES-CBC or\n"
               "AES-GCM content. Nothing is written unless the whole message decrypted (and,\n"
               "with GCM, its authentication tag verified).",
               "tokenkit smime decrypt --key 'pkcs11:token=mail;id=%01' < enc.eml > msg.eml", d);
    return kExitOk;
  }
  OpenKey k = open_key(p.vm, "decrypt");
  BioPtr in = open_input(opt(p.vm, "in"));
  // Output writes to a temporary file, renamed onto --out or copied to
  // stdout only after decrypt() returned, and removed otherwise: the
  // content may go there as it is decrypted, before the AES-GCM tag is
  // checked at the end of the message.
  Output o(opt(p.vm, "out"));
  token::smime::DecryptOptions dopt;
  dopt.discardable_output = true;
  token::smime::decrypt(k.key, in.get(), o.bio(), dopt);
  o.commit();
  return kExitOk;
}

}  // namespace

int cmd_smime(const Args& args, std::ostream& out) {
  const std::string usage =
      "Usage: tokenkit smime sign|verify|encrypt|decrypt [OPTIONS]\n\n"
      "S/MIME mail with keys that stay on the token. `tokenkit smime ACTION --help`\n"
      "describes each action.\n\nExample:\n"
      "  tokenkit smime sign --key 'pkcs11:token=mail;id=%01' < msg.eml > signed.eml\n\n"
      "Exit codes: docs/exit-codes.md (0 ok, 1 verification failed, 2 usage, ...).\n";
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    out << usage;
    return args.empty() ? kExitUsage : kExitOk;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "sign") return sign(rest, out);
  if (args[0] == "verify") return verify(rest, out);
  if (args[0] == "encrypt") return encrypt(rest, out);
  if (args[0] == "decrypt") return decrypt(rest, out);
  throw Error(ErrorKind::Usage,
              "unknown smime action \"" + args[0] + "\"; use sign, verify, encrypt or decrypt");
}

}  // namespace tokenkit
