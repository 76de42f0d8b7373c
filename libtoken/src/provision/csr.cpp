// make_csr: a PKCS#10 request signed by a key that never leaves the token.
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "token/engine.hpp"
#include "token/keygen.hpp"
#include "token/ossl.hpp"

namespace token {

namespace {

using ReqPtr = std::unique_ptr<X509_REQ, ossl::Free<X509_REQ, X509_REQ_free>>;
using NamePtr = std::unique_ptr<X509_NAME, ossl::Free<X509_NAME, X509_NAME_free>>;

// "/CN=Alice Example/O=Example Corp" (openssl req's -subj form; "\/" is a
// slash inside a value).
NamePtr parse_subject(const std::string& text) {
  if (text.empty() || text[0] != '/') {
    throw Error(ErrorKind::Usage, "--subject takes the form /CN=Alice Example/O=Example Corp");
  }
  NamePtr name(X509_NAME_new());
  std::string part;
  auto flush = [&]() {
    if (part.empty()) return;
    auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw Error(ErrorKind::Usage, "\"" + part + "\" in --subject is not TYPE=value");
    }
    const std::string type = part.substr(0, eq), value = part.substr(eq + 1);
    if (!X509_NAME_add_entry_by_txt(name.get(), type.c_str(), MBSTRING_UTF8,
                                    reinterpret_cast<const unsigned char*>(value.c_str()), -1, -1,
                                    0)) {
      throw Error(ErrorKind::Usage,
                  "\"" + type + "\" in --subject is not a name attribute OpenSSL knows");
    }
    part.clear();
  };
  for (std::size_t i = 1; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) {
      part += text[++i];
    } else if (text[i] == '/') {
      flush();
    } else {
      part += text[i];
    }
  }
  flush();
  return name;
}

void add_extensions(X509_REQ* req, const EVP_PKEY* key, const std::vector<std::string>& emails) {
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  auto add = [exts](int nid, const std::string& value) {
    X509_EXTENSION* e = X509V3_EXT_conf_nid(nullptr, nullptr, nid, value.c_str());
    if (e == nullptr) throw Error(ErrorKind::Usage, "cannot make the extension " + value);
    sk_X509_EXTENSION_push(exts, e);
  };
  try {
    std::string san;
    for (const auto& e : emails) san += (san.empty() ? "email:" : ",email:") + e;
    if (!san.empty()) add(NID_subject_alt_name, san);
    const int type = EVP_PKEY_get_base_id(key);
    add(NID_key_usage, type == EVP_PKEY_RSA  ? "critical,digitalSignature,keyEncipherment"
                       : type == EVP_PKEY_EC ? "critical,digitalSignature,keyAgreement"
                                             : "critical,digitalSignature");
    add(NID_ext_key_usage, "emailProtection");
    X509_REQ_add_extensions(req, exts);
  } catch (...) {
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    throw;
  }
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
}

}  // namespace

std::string make_csr(const Session& session, const Uri& key_uri, const CsrRequest& request,
                     KeyOptions options) {
  NamePtr subject = parse_subject(request.subject);
  TokenKey key = open_private_key(session, key_uri, std::move(options));
  if (EVP_PKEY_is_a(key.pkey(), "X25519")) {
    throw Error(ErrorKind::Usage,
                key.description() +
                    " is an X25519 key, which cannot sign its own request (RFC 8410): have the "
                    "CA certify its public key directly (openssl x509 -force_pubkey)");
  }
  ReqPtr req(X509_REQ_new_ex(key.libctx(), nullptr));
  X509_REQ_set_version(req.get(), 0);
  X509_REQ_set_subject_name(req.get(), subject.get());
  X509_REQ_set_pubkey(req.get(), key.pkey());
  add_extensions(req.get(), key.pkey(), request.emails);
  const bool eddsa = EVP_PKEY_get_base_id(key.pkey()) == EVP_PKEY_ED25519;
  ossl::MdCtx md(EVP_MD_CTX_new());
  clear_engine_error();
  if (EVP_DigestSignInit_ex(md.get(), nullptr, eddsa ? nullptr : "SHA256", key.libctx(), nullptr,
                            key.pkey(), nullptr) != 1 ||
      X509_REQ_sign_ctx(req.get(), md.get()) <= 0) {
    rethrow_engine_error("signing the certificate request with " + key.description());
  }
  // Checked with a plain copy of the public key (the default provider), as a
  // CA will check it: the token key's own provider only signs.
  const X509_PUBKEY* xpk = X509_REQ_get_X509_PUBKEY(req.get());
  unsigned char* der = nullptr;
  int len = i2d_X509_PUBKEY(xpk, &der);
  const unsigned char* p = der;
  ossl::Pkey plain(len > 0 ? d2i_PUBKEY(nullptr, &p, len) : nullptr);
  OPENSSL_free(der);
  if (!plain || X509_REQ_verify(req.get(), plain.get()) != 1) {
    throw Error(ErrorKind::Verification, "the request signed by " + key.description() +
                                             " does not verify with its public key");
  }
  ossl::Bio out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509_REQ(out.get(), req.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(out.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

}  // namespace token
