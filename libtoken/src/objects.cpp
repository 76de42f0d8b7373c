#include "token/objects.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <array>
#include <cstdio>
#include <memory>

#include "token/names.hpp"

namespace token {

namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string bio_string(BIO* b) {
  char* data = nullptr;
  long n = BIO_get_mem_data(b, &data);
  return n > 0 ? std::string(data, static_cast<std::size_t>(n)) : std::string();
}

std::string name_string(const X509_NAME* name) {
  BioPtr b(BIO_new(BIO_s_mem()));
  X509_NAME_print_ex(b.get(), name, 0, XN_FLAG_RFC2253);
  return bio_string(b.get());
}

std::string time_string(const ASN1_TIME* t) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return {};
  // ISO 8601 needs four year digits, which strftime's %Y does not pad to
  // (year 216 came out as "216-11-24T..."; found by fuzz_certificate).
  char buf[32];
  const int n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ",
                              tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                              tm.tm_min, tm.tm_sec);
  if (n <= 0 || static_cast<std::size_t>(n) >= sizeof buf) return {};
  return buf;
}

void add_curve(const Bytes& params, ObjectInfo& o) {
  const unsigned char* p = params.data();
  ASN1_OBJECT* oid = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(params.size()));
  if (oid == nullptr) return;
  int nid = OBJ_obj2nid(oid);
  ASN1_OBJECT_free(oid);
  if (nid == NID_undef) return;
  o.curve = OBJ_nid2sn(nid);
  if (nid == NID_ED25519) {
    o.key_bits = 255;
  } else if (nid == NID_ED448) {
    o.key_bits = 448;
  } else if (EC_GROUP* g = EC_GROUP_new_by_curve_name(nid)) {
    o.key_bits = static_cast<unsigned>(EC_GROUP_get_degree(g));
    EC_GROUP_free(g);
  }
}

constexpr std::array kAttrs = {
    CKA_CLASS,      CKA_KEY_TYPE,        CKA_LABEL,       CKA_ID,
    CKA_PRIVATE,    CKA_SENSITIVE,       CKA_EXTRACTABLE, CKA_ALWAYS_SENSITIVE,
    CKA_NEVER_EXTRACTABLE, CKA_SIGN,     CKA_DECRYPT,     CKA_UNWRAP,
    CKA_DERIVE,     CKA_VERIFY,          CKA_ENCRYPT,     CKA_MODULUS_BITS,
    CKA_MODULUS,    CKA_EC_PARAMS,       CKA_VALUE_LEN,   CKA_CERTIFICATE_TYPE};

}  // namespace

std::optional<CertificateDetails> parse_certificate(const Bytes& der) {
  const unsigned char* p = der.data();
  X509Ptr x(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
  if (!x) return std::nullopt;
  CertificateDetails c;
  c.subject = name_string(X509_get_subject_name(x.get()));
  c.issuer = name_string(X509_get_issuer_name(x.get()));
  if (BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x.get()), nullptr)) {
    if (char* hex = BN_bn2hex(bn)) {
      c.serial = hex;
      OPENSSL_free(hex);
    }
    BN_free(bn);
  }
  if (STACK_OF(OPENSSL_STRING)* emails = X509_get1_email(x.get())) {
    for (int i = 0; i < sk_OPENSSL_STRING_num(emails); ++i) {
      c.emails.emplace_back(sk_OPENSSL_STRING_value(emails, i));
    }
    X509_email_free(emails);
  }
  c.not_before = time_string(X509_get0_notBefore(x.get()));
  c.not_after = time_string(X509_get0_notAfter(x.get()));
  return c;
}

std::string class_label(CK_OBJECT_CLASS c) {
  switch (c) {
    case CKO_DATA: return "data";
    case CKO_CERTIFICATE: return "certificate";
    case CKO_PUBLIC_KEY: return "public key";
    case CKO_PRIVATE_KEY: return "private key";
    case CKO_SECRET_KEY: return "secret key";
    case CKO_PROFILE: return "profile";
    default: return class_name(c);
  }
}

ObjectInfo describe_object(const Session& session, const CK_TOKEN_INFO& token,
                           CK_OBJECT_HANDLE handle) {
  AttributeValues v = session.read(handle, kAttrs);
  ObjectInfo o;
  o.handle = handle;
  o.cls = v.ulong_value(CKA_CLASS).value_or(CKO_DATA);
  o.label = v.string_value(CKA_LABEL).value_or("");
  if (const Bytes* id = v.bytes(CKA_ID)) o.id = *id;
  o.is_private = v.bool_value(CKA_PRIVATE);
  const bool is_key = o.cls == CKO_PRIVATE_KEY || o.cls == CKO_PUBLIC_KEY || o.cls == CKO_SECRET_KEY;
  if (is_key) {
    o.key_type = v.ulong_value(CKA_KEY_TYPE);
    if (auto bits = v.ulong_value(CKA_MODULUS_BITS)) {
      o.key_bits = static_cast<unsigned>(*bits);
    } else if (const Bytes* n = v.bytes(CKA_MODULUS); n && !n->empty()) {
      o.key_bits = static_cast<unsigned>(n->size() * 8);
    } else if (auto len = v.ulong_value(CKA_VALUE_LEN)) {
      o.key_bits = static_cast<unsigned>(*len * 8);
    }
    if (const Bytes* ec = v.bytes(CKA_EC_PARAMS)) add_curve(*ec, o);
    o.can_sign = v.bool_value(CKA_SIGN);
    o.can_decrypt = v.bool_value(CKA_DECRYPT);
    o.can_unwrap = v.bool_value(CKA_UNWRAP);
    o.can_derive = v.bool_value(CKA_DERIVE);
    o.can_verify = v.bool_value(CKA_VERIFY);
    o.can_encrypt = v.bool_value(CKA_ENCRYPT);
  }
  if (o.cls == CKO_PRIVATE_KEY || o.cls == CKO_SECRET_KEY) {
    o.sensitive = v.bool_value(CKA_SENSITIVE);
    o.extractable = v.bool_value(CKA_EXTRACTABLE);
    o.always_sensitive = v.bool_value(CKA_ALWAYS_SENSITIVE);
    o.never_extractable = v.bool_value(CKA_NEVER_EXTRACTABLE);
  }
  if (o.cls == CKO_CERTIFICATE && v.ulong_value(CKA_CERTIFICATE_TYPE).value_or(CKC_X_509) == CKC_X_509) {
    constexpr CK_ATTRIBUTE_TYPE value_attr[] = {CKA_VALUE};
    AttributeValues cert = session.read(handle, value_attr);
    if (const Bytes* der = cert.bytes(CKA_VALUE)) o.certificate = parse_certificate(*der);
  }
  o.uri = Uri::for_object(token, o.cls, o.label, o.id);
  return o;
}

std::vector<ObjectInfo> list_objects(const Session& session, const CK_TOKEN_INFO& token,
                                     const Uri& filter) {
  AttributeTemplate match = filter.object_template();
  std::vector<ObjectInfo> out;
  for (CK_OBJECT_HANDLE h : session.find(match)) out.push_back(describe_object(session, token, h));
  return out;
}

}  // namespace token
