// Correspondents' certificates: addresses, validity, usability for
// encryption, and reading certificate values from outside with bounds.
#include "token/certcheck.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <set>

#include "token/error.hpp"

namespace token::certs {

namespace {

using ossl::Bio;
using ossl::X509Ptr;

struct GeneralNamesFree {
  void operator()(GENERAL_NAMES* g) const { GENERAL_NAMES_free(g); }
};
struct Pkcs7Free {
  void operator()(PKCS7* p) const { PKCS7_free(p); }
};
struct StoreCtxFree {
  void operator()(X509_STORE_CTX* c) const { X509_STORE_CTX_free(c); }
};

// An ASN.1 string as UTF-8; empty when it holds a NUL (a spoofing trick:
// "alice@example.org\0.evil.com") or cannot be converted.
std::string utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  const int n = ASN1_STRING_to_UTF8(&out, s);
  if (n < 0) {
    ERR_clear_error();
    return {};
  }
  std::string r(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
  OPENSSL_free(out);
  if (r.find('\0') != std::string::npos) return {};
  return r;
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (!s.empty() && std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

std::time_t to_time(const ASN1_TIME* t) {
  struct tm tm {};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) {
    ERR_clear_error();
    return 0;
  }
  return timegm(&tm);
}

std::string key_kind(X509* cert, int& base_id) {
  EVP_PKEY* k = X509_get0_pubkey(cert);
  base_id = k ? EVP_PKEY_get_base_id(k) : NID_undef;
  ERR_clear_error();
  switch (base_id) {
    case EVP_PKEY_RSA:
      return "RSA";
    case EVP_PKEY_EC:
      return "EC";
    case EVP_PKEY_X25519:
      return "X25519";
    default:
      return k ? OBJ_nid2sn(base_id) : "unreadable";
  }
}

std::string describe(X509* cert) {
  return subject(cert) + " [" + fingerprint(cert).substr(0, 16) + "]";
}

}  // namespace

std::string normalise_email(std::string_view address) {
  std::size_t b = 0, e = address.size();
  while (b < e && std::isspace(static_cast<unsigned char>(address[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(address[e - 1]))) --e;
  std::string s(address.substr(b, e - b));
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> emails(X509* cert) {
  std::vector<std::string> out;
  std::unique_ptr<GENERAL_NAMES, GeneralNamesFree> names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  for (int i = 0; names && i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* g = sk_GENERAL_NAME_value(names.get(), i);
    if (g->type == GEN_EMAIL) add_unique(out, normalise_email(utf8(g->d.rfc822Name)));
  }
  X509_NAME* subj = X509_get_subject_name(cert);
  for (int i = -1; (i = X509_NAME_get_index_by_NID(subj, NID_pkcs9_emailAddress, i)) >= 0;) {
    add_unique(out, normalise_email(utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)))));
  }
  ERR_clear_error();
  return out;
}

std::string fingerprint(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (X509_digest(cert, EVP_sha256(), md, &n) != 1) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, "cannot encode the certificate to take its fingerprint");
  }
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (unsigned i = 0; i < n; ++i) {
    s += hex[md[i] >> 4];
    s += hex[md[i] & 15];
  }
  return s;
}

std::string subject(X509* cert) {
  Bio b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), X509_get_subject_name(cert), 0,
                     XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
  char* data = nullptr;
  const long n = BIO_get_mem_data(b.get(), &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string("(empty subject)");
}

std::time_t not_before(X509* cert) { return to_time(X509_get0_notBefore(cert)); }
std::time_t not_after(X509* cert) { return to_time(X509_get0_notAfter(cert)); }

std::string iso_time(std::time_t t) {
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return {};
  return buf;
}

std::vector<std::string> encryption_problems(X509* cert, const std::string& email, std::time_t now,
                                             X509_STORE* trust, STACK_OF(X509) * untrusted) {
  std::vector<std::string> p;
  const uint32_t flags = X509_get_extension_flags(cert);
  if (flags & EXFLAG_INVALID) p.emplace_back("its extensions are malformed");
  if (X509_cmp_time(X509_get0_notBefore(cert), &now) > 0) {
    p.push_back("not valid before " + iso_time(not_before(cert)));
  }
  if (X509_cmp_time(X509_get0_notAfter(cert), &now) < 0) {
    p.push_back("expired on " + iso_time(not_after(cert)));
  }
  if ((flags & EXFLAG_XKUSAGE) && !(X509_get_extended_key_usage(cert) & XKU_SMIME)) {
    p.emplace_back("extendedKeyUsage lacks emailProtection");
  }
  int base = NID_undef;
  const std::string kind = key_kind(cert, base);
  if (base == EVP_PKEY_RSA) {
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & KU_KEY_ENCIPHERMENT))
      p.emplace_back("keyUsage lacks keyEncipherment (an RSA key must have it to receive mail)");
  } else if (base == EVP_PKEY_EC || base == EVP_PKEY_X25519) {
    if ((flags & EXFLAG_KUSAGE) && !(X509_get_key_usage(cert) & KU_KEY_AGREEMENT))
      p.emplace_back("keyUsage lacks keyAgreement (an " + kind +
                     " key must have it to receive mail)");
  } else {
    p.push_back("its " + kind + " key cannot receive encrypted mail");
  }
  const std::vector<std::string> addrs = emails(cert);
  const std::string want = normalise_email(email);
  if (std::find(addrs.begin(), addrs.end(), want) == addrs.end()) {
    std::string has;
    for (const auto& a : addrs) has += (has.empty() ? "" : ", ") + a;
    p.push_back("it is not for " + want + " (it names " + (has.empty() ? "no address" : has) + ")");
  }
  if (trust != nullptr) {
    std::unique_ptr<X509_STORE_CTX, StoreCtxFree> ctx(X509_STORE_CTX_new());
    if (!ctx || X509_STORE_CTX_init(ctx.get(), trust, cert, untrusted) != 1) {
      p.emplace_back("cannot set up certificate path validation");
    } else {
      X509_STORE_CTX_set_time(ctx.get(), 0, now);
      // Validity and purpose are reported above in our words; the chain
      // check is about the path to a trusted CA.
      X509_STORE_CTX_set_purpose(ctx.get(), X509_PURPOSE_ANY);
      if (X509_verify_cert(ctx.get()) != 1) {
        const int err = X509_STORE_CTX_get_error(ctx.get());
        if (err != X509_V_ERR_CERT_HAS_EXPIRED && err != X509_V_ERR_CERT_NOT_YET_VALID) {
          p.push_back(std::string("it does not chain to a trusted CA: ") +
                      X509_verify_cert_error_string(err));
        }
      }
    }
  }
  ERR_clear_error();
  return p;
}

ParsedValue parse_value(std::string_view value, const ValueLimits& limits) {
  ParsedValue r;
  if (value.size() > limits.max_value_bytes) {
    r.problem = "too large (" + std::to_string(value.size()) + " bytes; the limit is " +
                std::to_string(limits.max_value_bytes) + ")";
    return r;
  }
  if (value.empty()) {
    r.problem = "empty";
    return r;
  }
  const auto* begin = reinterpret_cast<const unsigned char*>(value.data());
  const long len = static_cast<long>(value.size());
  static constexpr std::string_view kPem = "-----BEGIN";
  if (value.substr(0, kPem.size()) == kPem) {
    Bio b(BIO_new_mem_buf(value.data(), static_cast<int>(value.size())));
    while (r.certs.size() < limits.max_certs_per_value) {
      X509* x = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr);
      if (x == nullptr) break;
      r.certs.emplace_back(x);
    }
  } else {
    const unsigned char* p = begin;
    X509Ptr x(d2i_X509(nullptr, &p, len));
    if (x && p == begin + len) {
      r.certs.push_back(std::move(x));
    } else {
      p = begin;
      std::unique_ptr<PKCS7, Pkcs7Free> p7(d2i_PKCS7(nullptr, &p, len));
      if (p7 && PKCS7_type_is_signed(p7.get()) && p7->d.sign != nullptr) {
        STACK_OF(X509)* certs = p7->d.sign->cert;
        for (int i = 0; i < sk_X509_num(certs) && r.certs.size() < limits.max_certs_per_value;
             ++i) {
          X509* c = sk_X509_value(certs, i);
          if (X509_up_ref(c) == 1) r.certs.emplace_back(c);
        }
      }
    }
  }
  ERR_clear_error();
  if (r.certs.empty()) {
    r.problem = "not a certificate (neither DER X.509, nor PKCS#7 with certificates, nor PEM)";
  }
  return r;
}

namespace {

Judgement judge(std::vector<X509Ptr> certs, const std::string& email, std::time_t now,
                X509_STORE* trust, Judgement j) {
  std::set<std::string> seen;
  for (auto& c : certs) {
    std::string fp;
    try {
      fp = fingerprint(c.get());
    } catch (const Error& e) {
      j.unreadable.emplace_back(e.what());
      continue;
    }
    if (!seen.insert(fp).second) continue;
    Judged one{std::move(c), {}, {}};
    one.description = describe(one.cert.get());
    one.problems = encryption_problems(one.cert.get(), email, now, trust);
    (one.problems.empty() ? j.accepted : j.rejected).push_back(std::move(one));
  }
  std::stable_sort(j.accepted.begin(), j.accepted.end(), [](const Judged& a, const Judged& b) {
    return not_before(a.cert.get()) > not_before(b.cert.get());
  });
  return j;
}

}  // namespace

Judgement judge_values(const std::vector<std::string_view>& values, const std::string& email,
                       std::time_t now, X509_STORE* trust, const ValueLimits& limits) {
  Judgement j;
  std::vector<X509Ptr> certs;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i >= limits.max_values) {
      j.values_skipped = values.size() - limits.max_values;
      break;
    }
    ParsedValue v = parse_value(values[i], limits);
    if (!v.problem.empty())
      j.unreadable.push_back("value " + std::to_string(i + 1) + ": " + v.problem);
    for (auto& c : v.certs) certs.push_back(std::move(c));
  }
  return judge(std::move(certs), email, now, trust, std::move(j));
}

Judgement judge_certs(std::vector<X509Ptr> certs, const std::string& email, std::time_t now,
                      X509_STORE* trust) {
  return judge(std::move(certs), email, now, trust, Judgement{});
}

std::vector<X509Ptr> read_certificate_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::Io, "cannot open " + path + ": " + std::strerror(errno));
  std::string data;
  constexpr std::size_t kMax = std::size_t{1024} * 1024;
  data.resize(kMax + 1);
  f.read(data.data(), static_cast<std::streamsize>(data.size()));
  data.resize(static_cast<std::size_t>(f.gcount()));
  if (data.size() > kMax) {
    throw Error(ErrorKind::Input, path + " is larger than 1 MiB: not a certificate file");
  }
  ValueLimits limits;
  limits.max_value_bytes = kMax;
  limits.max_certs_per_value = 256;
  ParsedValue v = parse_value(data, limits);
  if (!v.problem.empty()) {
    throw Error(ErrorKind::Input, path + " is " + v.problem);
  }
  return std::move(v.certs);
}

}  // namespace token::certs

#include "token/attributes.hpp"
#include "token/session.hpp"

namespace token::certs {

std::vector<std::string> token_authorities(const Session& session) {
  AttributeTemplate match;
  match.add(CKA_CLASS, CK_ULONG{CKO_CERTIFICATE}).add(CKA_CERTIFICATE_TYPE, CK_ULONG{CKC_X_509});
  std::vector<std::string> out;
  static constexpr CK_ATTRIBUTE_TYPE kWant[] = {CKA_VALUE, CKA_CERTIFICATE_CATEGORY, CKA_TRUSTED};
  for (CK_OBJECT_HANDLE h : session.find(match)) {
    AttributeValues v = session.read(h, kWant);
    const bool authority = v.ulong_value(CKA_CERTIFICATE_CATEGORY).value_or(0) == 2;
    const bool trusted = v.bool_value(CKA_TRUSTED).value_or(false);
    const Bytes* der = v.bytes(CKA_VALUE);
    if ((authority || trusted) && der != nullptr && !der->empty()) {
      out.emplace_back(reinterpret_cast<const char*>(der->data()), der->size());
    }
  }
  return out;
}

}  // namespace token::certs
