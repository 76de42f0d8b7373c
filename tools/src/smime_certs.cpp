// Where smime meets the certificate store: recipients by address, senders'
// certificates kept after verification, a token's CA certificates as trust
// anchors.
#include <ctime>
#include <ostream>

#include <openssl/err.h>

#include <algorithm>
#include <filesystem>
#include <memory>

#include "certs_common.hpp"
#include "directories.hpp"
#include "token/certstore.hpp"
#include "token/error.hpp"
#include "token/objects.hpp"
#include "token/select.hpp"
#include "token/session.hpp"
#include "token/smime.hpp"

namespace tokenkit {

using token::Error;
using token::ErrorKind;
namespace certs = token::certs;

namespace {

struct StoreFree {
  void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

// The newest accepted certificate for `email` from the configured
// directories (the directories file, or --ldap); adds to `why` otherwise.
token::ossl::X509Ptr from_directories(const std::string& email, const po::variables_map& vm,
                                      std::string& why, std::ostream& log) {
  Directories dirs = directories_from(vm);
  if (dirs.list.empty()) {
    why += "; no directory is configured (" + default_directories_file() + ")";
    return nullptr;
  }
  std::unique_ptr<X509_STORE, StoreFree> trust(trust_store(dirs));
  for (const auto& c : dirs.list) {
    DirectoryAnswer a = ask_directory(c, email, trust.get());
    if (!a.judgement.accepted.empty()) {
      const auto& j = a.judgement.accepted.front();
      log << "to " << email << ": " << j.description << " (from " << c.uri << ")\n";
      return token::ossl::X509Ptr(X509_dup(j.cert.get()));
    }
    if (!a.error.empty()) {
      why += "; " + a.error;
    } else if (a.judgement.rejected.empty()) {
      why += "; directory " + c.uri + " has none";
    }
    for (const auto& r : a.judgement.rejected) {
      why += "; in " + c.uri + ": " + r.description + ": " + join(r.problems, "; ");
    }
  }
  return nullptr;
}

}  // namespace

namespace {

// The certificate for one address: the newest usable one in the local
// store, else from the configured directories.
token::ossl::X509Ptr certificate_for(const std::string& a, certs::Store& store,
                                     const po::variables_map& vm, std::ostream& log) {
  const std::time_t now = std::time(nullptr);
  certs::Choice c = store.choose(a, now);
  if (c.chosen) {
    log << "to " << a << ": " << c.chosen->subject << " " << c.chosen->fingerprint.substr(0, 16)
        << " (from the certificate store)\n";
    return c.chosen->certificate();
  }
  std::string why =
      c.rejections.empty()
          ? "the certificate store " + store.path() + " has none for it"
          : "in the certificate store " + store.path() + ": " + join(c.rejections, "; ");
  if (auto x = from_directories(a, vm, why, log)) return x;
  throw Error(ErrorKind::NotFound, "no usable certificate for " + a + ": " + why);
}

// The value of the URI's `type` path attribute ("cert", "private", ...),
// empty when it has none. RFC 7512 section 2.3: path attributes are
// separated by ';' and end at '?'.
std::string uri_type(const std::string& uri) {
  const std::string path =
      uri.substr(7, uri.find('?') == std::string::npos ? std::string::npos : uri.find('?') - 7);
  std::size_t at = 0;
  while (at <= path.size()) {
    const std::size_t end = std::min(path.find(';', at), path.size());
    const std::string attr = path.substr(at, end - at);
    if (attr.rfind("type=", 0) == 0) return attr.substr(5);
    at = end + 1;
  }
  return {};
}

std::string class_words(const std::string& type) {
  if (type == "private") return "a private key";
  if (type == "public") return "a public key";
  if (type == "secret-key") return "a secret key";
  return "a " + type + " object";
}

// Whether a certificate could be hidden from a session that is not logged
// in: the token wants a login and this application has not logged in.
// (A CKP_PUBLIC_CERTIFICATES_TOKEN profile is not taken as proof: it says
// NSS may list certificates before a login, not that none is private.)
bool login_may_show_more(const token::Session& s, const token::SlotInfo& slot) {
  if ((slot.token.flags & CKF_LOGIN_REQUIRED) == 0) return false;
  const CK_STATE state = s.info().state;
  return state == CKS_RO_PUBLIC_SESSION || state == CKS_RW_PUBLIC_SESSION;
}

std::string object_names(const token::Session& s, const std::vector<CK_OBJECT_HANDLE>& handles) {
  static constexpr CK_ATTRIBUTE_TYPE kWant[] = {CKA_CLASS, CKA_LABEL, CKA_ID};
  // Sorted, so the message is the same whatever order the token returns
  // handles in (SoftHSM2's varies); the first 8 of at most 64 read.
  std::vector<std::string> names;
  for (CK_OBJECT_HANDLE h : handles) {
    if (names.size() == 64) break;
    token::AttributeValues v = s.read(h, kWant);
    std::string n = token::class_label(v.ulong_value(CKA_CLASS).value_or(~CK_ULONG{0}));
    if (auto l = v.string_value(CKA_LABEL); l && !l->empty()) n += " \"" + *l + "\"";
    if (const auto* id = v.bytes(CKA_ID); id && !id->empty()) n += " (id " + hex_id(*id) + ")";
    names.push_back(n);
  }
  std::sort(names.begin(), names.end());
  if (handles.size() > 8) {
    names.resize(8);
    names.emplace_back("...");
  }
  return join(names, ", ");
}

// Why a certificate on a token cannot receive mail (the checks of the
// certificate store, without the address: a URI names no address).
std::vector<std::string> token_certificate_problems(X509* cert, const token::AttributeValues& v) {
  if (v.ulong_value(CKA_CERTIFICATE_CATEGORY).value_or(0) == 2) {
    return {"it is a CA certificate (CKA_CERTIFICATE_CATEGORY authority)"};
  }
  const auto addrs = certs::emails(cert);
  std::vector<std::string> p =
      certs::encryption_problems(cert, addrs.empty() ? "" : addrs.front(), std::time(nullptr));
  std::erase_if(p, [](const std::string& s) { return s.rfind("it is not for ", 0) == 0; });
  return p;
}

// Every usable certificate on the token that matches the URI. No login
// when the certificates are public; a login (the usual PIN sources) when
// none matched and the token may hide them.
std::vector<Recipient> from_token(const std::string& text, const po::variables_map& vm,
                                  std::ostream& log) {
  if (const std::string type = uri_type(text); !type.empty() && type != "cert") {
    throw Error(ErrorKind::Input, text + " names " + class_words(type) +
                                      ", not a certificate: a recipient is a certificate "
                                      "(use type=cert, or leave type out)");
  }
  TokenOptions topts;
  if (vm.count("module")) topts.module = vm["module"].as<std::string>();
  topts.uri = text;
  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id);
  auto find = [&] {
    token::AttributeTemplate m = t.selector.uri.object_template();
    if (!m.has(CKA_CLASS)) m.add(CKA_CLASS, CK_ULONG{CKO_CERTIFICATE});
    m.add(CKA_CERTIFICATE_TYPE, CK_ULONG{CKC_X_509});
    return session.find(m);
  };
  std::vector<CK_OBJECT_HANDLE> handles = find();
  std::string no_login;  // why the private objects were not looked at
  if (handles.empty() && login_may_show_more(session, slot)) {
    try {
      login(session, pin_options(vm), t.selector.uri);
      handles = find();
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Usage) throw;
      no_login = "; private certificates were not searched (" + std::string(e.what()) + ")";
    }
  }
  if (handles.empty()) {
    std::string why;
    if (t.selector.uri.names_object()) {
      token::AttributeTemplate any = t.selector.uri.object_template();
      if (auto others = session.find(any); !others.empty())
        why = "; it names " + object_names(session, others);
    }
    token::AttributeTemplate all;
    all.add(CKA_CLASS, CK_ULONG{CKO_CERTIFICATE});
    auto certs_there = session.find(all);
    why += certs_there.empty() ? "; the token shows no certificates"
                               : "; its certificates: " + object_names(session, certs_there);
    why += no_login;
    throw Error(ErrorKind::NotFound,
                "no certificate on " + session.context() + " matches " + text + why);
  }
  std::vector<Recipient> out;
  std::vector<std::string> refused;
  static constexpr CK_ATTRIBUTE_TYPE kWant[] = {CKA_VALUE, CKA_LABEL, CKA_CERTIFICATE_CATEGORY};
  for (CK_OBJECT_HANDLE h : handles) {
    token::AttributeValues v = session.read(h, kWant);
    const std::string label = v.string_value(CKA_LABEL).value_or("");
    const token::Bytes* der = v.bytes(CKA_VALUE);
    const unsigned char* p = der ? der->data() : nullptr;
    token::ossl::X509Ptr x(der ? d2i_X509(nullptr, &p, static_cast<long>(der->size())) : nullptr);
    if (!x) {
      ERR_clear_error();
      refused.push_back("certificate \"" + label + "\": its value is not an X.509 certificate");
      continue;
    }
    const std::string who =
        certs::subject(x.get()) + " [" + certs::fingerprint(x.get()).substr(0, 16) + "]";
    if (auto problems = token_certificate_problems(x.get(), v); !problems.empty()) {
      refused.push_back("certificate \"" + label + "\" " + who + ": " + join(problems, "; "));
      continue;
    }
    log << "to " << text << ": " << who << " (certificate \"" << label << "\" on "
        << session.context() << ")\n";
    out.push_back(Recipient{std::move(x), "certificate \"" + label + "\" on " + session.context()});
  }
  if (out.empty()) {
    throw Error(ErrorKind::NotFound,
                "no usable certificate for " + text + ": " + join(refused, "; "));
  }
  for (const auto& r : refused) log << "not to " << text << ": " << r << "\n";
  return out;
}

bool looks_like_address(const std::string& s) {
  const auto at = s.find('@');
  return at != std::string::npos && at > 0 && at + 1 < s.size() &&
         s.find('@', at + 1) == std::string::npos && s.find_first_of("/ \t") == std::string::npos;
}

}  // namespace

void add_recipient_options(po::options_description& d) {
  d.add_options()("db", po::value<std::string>(),
                  "addresses: the certificate store file (see tokenkit certs)")(
      "ldap", po::value<std::vector<std::string>>(),
      "addresses: a directory to search when the store has no usable certificate; repeatable")(
      "base", po::value<std::string>(), "--ldap: search base DN")(
      "config", po::value<std::string>(),
      "addresses: directories file (see tokenkit certs lookup)")(
      "no-config", "addresses: ignore the directories file")(
      "trust", po::value<std::vector<std::string>>(),
      "addresses: CA certificates a directory's certificates must chain to; repeatable");
}

std::vector<Recipient> resolve_recipients(const std::vector<std::string>& specs, RecipientKind kind,
                                          const po::variables_map& vm, std::ostream& log) {
  std::vector<Recipient> out;
  std::unique_ptr<certs::Store> store;  // opened for the first address
  for (const auto& s : specs) {
    if (kind == RecipientKind::Any && s.rfind("pkcs11:", 0) == 0) {
      for (auto& r : from_token(s, vm, log)) out.push_back(std::move(r));
    } else if (kind == RecipientKind::File || std::filesystem::exists(s)) {
      for (auto& x : certs::read_certificate_file(s)) {
        out.push_back(Recipient{std::move(x), "file " + s});
        break;  // the first certificate of a file is the recipient's; the rest is its chain
      }
    } else if (looks_like_address(s)) {
      if (!store) store = std::make_unique<certs::Store>(store_path(vm));
      out.push_back(Recipient{certificate_for(s, *store, vm, log), s});
    } else {
      throw Error(ErrorKind::Io,
                  "cannot open " + s + ": no such file (nor a pkcs11: URI or a mail address)");
    }
  }
  return out;
}

void store_sender_certificates(const token::smime::VerifyResult& r, const po::variables_map& vm,
                               std::ostream& log) {
  certs::Store store(store_path(vm));
  const std::time_t now = std::time(nullptr);
  for (std::size_t i = 0; i < r.signer_der.size(); ++i) {
    const std::string& d = r.signer_der[i];
    const auto* p = reinterpret_cast<const unsigned char*>(d.data());
    token::ossl::X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(d.size())));
    if (!x) throw Error(ErrorKind::Internal, "a verified signer certificate does not re-encode");
    const bool added = store.add(x.get(), certs::Source::Verify, now);
    log << "tokenkit smime verify: " << (added ? "stored" : "already stored")
        << " the certificate of " << certs::subject(x.get()) << " in " << store.path() << "\n";
    // The signer's SMIMECapabilities, kept with its certificate: they decide
    // the content cipher of mail encrypted to it (choose_content_cipher).
    if (r.signer_capabilities.size() != r.signer_der.size()) continue;
    const std::string& caps = r.signer_capabilities[i];
    if (caps.empty() || !token::smime::announced_ciphers(caps).readable) continue;
    const std::time_t signed_at = r.signer_times[i] != 0 ? r.signer_times[i] : now;
    if (store.set_capabilities(certs::fingerprint(x.get()), caps, signed_at, now)) {
      log << "tokenkit smime verify: kept the S/MIME capabilities its client announced\n";
    }
  }
}

namespace {

// What one recipient is known to decrypt, and where that is known from.
struct Known {
  std::string who;
  std::string from;
  token::smime::ContentCiphers ciphers;
};

std::optional<Known> known_ciphers(X509* cert, const certs::Store* store) {
  const std::string who = certs::subject(cert);
  if (store != nullptr) {
    if (auto c = store->capabilities(certs::fingerprint(cert))) {
      auto k = token::smime::announced_ciphers(c->der);
      if (k.readable) {
        return Known{who, "the capabilities in its message signed " + certs::iso_time(c->signed_at),
                     k};
      }
    }
  }
  // RFC 4262: the same list as a certificate extension.
  const int at = X509_get_ext_by_NID(cert, NID_SMIMECapabilities, -1);
  if (at < 0) return std::nullopt;
  const ASN1_OCTET_STRING* v = X509_EXTENSION_get_data(X509_get_ext(cert, at));
  auto k = token::smime::announced_ciphers(
      std::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(v)),
                       static_cast<std::size_t>(ASN1_STRING_length(v))));
  if (!k.readable) return std::nullopt;
  return Known{who, "its certificate's SMIMECapabilities extension", k};
}

bool can_decrypt(const token::smime::ContentCiphers& c, const token::smime::EncryptOptions& o) {
  if (o.cbc && o.aes128) return true;  // RFC 8551 section 2.7: every agent MUST
  if (o.cbc) return c.aes256_cbc;
  return o.aes128 ? c.aes128_gcm : c.aes256_gcm;
}

}  // namespace

void choose_content_cipher(const std::vector<Recipient>& recipients,
                           token::smime::EncryptOptions& eo, const po::variables_map& vm,
                           std::ostream& log) {
  std::unique_ptr<certs::Store> store;
  const std::string path = store_path(vm);
  if (std::filesystem::exists(path)) store = std::make_unique<certs::Store>(path);
  std::vector<Known> known;
  for (const auto& r : recipients) {
    if (auto k = known_ciphers(r.cert.get(), store.get())) known.push_back(std::move(*k));
  }
  // Ours first (GCM before CBC, 256 before 128 bits), the first that every
  // recipient with known capabilities can decrypt.
  std::vector<token::smime::EncryptOptions> order;
  for (bool cbc : {false, true}) {
    if (eo.cbc && !cbc) continue;
    for (bool aes128 : {false, true}) {
      token::smime::EncryptOptions o = eo;
      o.cbc = cbc;
      o.aes128 = aes128;
      order.push_back(o);
    }
  }
  for (const auto& o : order) {
    std::vector<std::string> cannot;
    for (const auto& k : known) {
      if (!can_decrypt(k.ciphers, order.front())) {
        cannot.push_back(k.who + " (" + k.from + ")");
      }
    }
    if (!std::all_of(known.begin(), known.end(),
                     [&](const Known& k) { return can_decrypt(k.ciphers, o); })) {
      continue;
    }
    if (o.cbc != order.front().cbc || o.aes128 != order.front().aes128) {
      log << token::smime::cipher_name(o) << " instead of "
          << token::smime::cipher_name(order.front()) << ": not announced by " << join(cannot, ", ")
          << "\n";
    }
    eo = o;
    return;
  }
}

std::vector<std::string> token_ca_certificates(const po::variables_map& vm) {
  TokenOptions topts = token_options(vm);
  if (vm.count("token")) topts.uri = vm["token"].as<std::string>();
  Target t = open_target(topts);
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  token::Session session(t.module, slot.id);
  return certs::token_authorities(session);
}

}  // namespace tokenkit
