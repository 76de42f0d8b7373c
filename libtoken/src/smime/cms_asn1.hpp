// The few RFC 5652 / RFC 5753 structures the X25519 key agreement needs,
// as OpenSSL ASN.1 templates: OpenSSL 3.0 keeps its own CMS structures
// private, so they are declared here with the same template machinery
// (definitions in cms_asn1.cpp).
#pragma once

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/x509.h>

#include <memory>

#include "token/attributes.hpp"
#include "token/error.hpp"

namespace token::smime::x25519 {

struct TK_ISSUER_SERIAL {  // IssuerAndSerialNumber
  X509_NAME* issuer;
  ASN1_INTEGER* serial;
};
struct TK_KEY_ID {  // RecipientKeyIdentifier and KEKIdentifier: the same shape
  ASN1_OCTET_STRING* id;
  ASN1_GENERALIZEDTIME* date;
  ASN1_TYPE* other;
};
struct TK_RID {  // KeyAgreeRecipientIdentifier
  int type;
  union {
    TK_ISSUER_SERIAL* ias;
    TK_KEY_ID* rkey;
  } d;
};
struct TK_REK {  // RecipientEncryptedKey
  TK_RID* rid;
  ASN1_OCTET_STRING* encrypted_key;
};
struct TK_ORIG_KEY {  // OriginatorPublicKey
  X509_ALGOR* algorithm;
  ASN1_BIT_STRING* public_key;
};
struct TK_ORIG {  // OriginatorIdentifierOrKey
  int type;
  union {
    TK_ISSUER_SERIAL* ias;
    ASN1_OCTET_STRING* ski;
    TK_ORIG_KEY* key;
  } d;
};
struct TK_KARI {  // KeyAgreeRecipientInfo
  ASN1_INTEGER* version;
  TK_ORIG* originator;
  ASN1_OCTET_STRING* ukm;
  X509_ALGOR* kea;
  OPENSSL_STACK* reks;  // of TK_REK
};
struct TK_KEKRI {  // KEKRecipientInfo
  ASN1_INTEGER* version;
  TK_KEY_ID* kekid;
  X509_ALGOR* kea;
  ASN1_OCTET_STRING* encrypted_key;
};
struct TK_SHARED_INFO {  // ECC-CMS-SharedInfo (RFC 5753 section 7.2)
  X509_ALGOR* key_info;
  ASN1_OCTET_STRING* entity_u_info;
  ASN1_OCTET_STRING* supp_pub_info;
};

constexpr int kOrigKey = 2;  // originatorKey [1], the third alternative
constexpr int kRidIssuerSerial = 0, kRidKeyId = 1;

// NOLINTBEGIN: OpenSSL's declaration macro
DECLARE_ASN1_ITEM(TK_ISSUER_SERIAL)
DECLARE_ASN1_ITEM(TK_KEY_ID)
DECLARE_ASN1_ITEM(TK_RID)
DECLARE_ASN1_ITEM(TK_REK)
DECLARE_ASN1_ITEM(TK_ORIG_KEY)
DECLARE_ASN1_ITEM(TK_ORIG)
DECLARE_ASN1_ITEM(TK_KARI)
DECLARE_ASN1_ITEM(TK_KEKRI)
DECLARE_ASN1_ITEM(TK_SHARED_INFO)
// NOLINTEND

// An owned value of a template type.
template <class T>
class Item {
 public:
  explicit Item(const ASN1_ITEM* it, T* p = nullptr)
      : it_(it), p_(p ? p : reinterpret_cast<T*>(ASN1_item_new(it))) {
    if (p_ == nullptr) throw Error(ErrorKind::Internal, "out of memory (ASN.1)");
  }
  ~Item() { ASN1_item_free(reinterpret_cast<ASN1_VALUE*>(p_), it_); }
  Item(const Item&) = delete;
  Item& operator=(const Item&) = delete;
  T* operator->() const { return p_; }
  T* get() const { return p_; }
  T* release() {
    T* p = p_;
    p_ = nullptr;
    return p;
  }
  Bytes der() const {
    unsigned char* out = nullptr;
    const int n = ASN1_item_i2d(reinterpret_cast<const ASN1_VALUE*>(p_), &out, it_);
    if (n <= 0) throw Error(ErrorKind::Internal, "cannot encode a CMS structure");
    Bytes b(out, out + n);
    OPENSSL_free(out);
    return b;
  }

 private:
  const ASN1_ITEM* it_;
  T* p_;
};

// The whole of `der` as one `it`, or null.
template <class T>
std::unique_ptr<Item<T>> decode(const ASN1_ITEM* it, const Bytes& der) {
  const unsigned char* p = der.data();
  ASN1_VALUE* v = ASN1_item_d2i(nullptr, &p, static_cast<long>(der.size()), it);
  if (v == nullptr) {
    ERR_clear_error();
    return nullptr;
  }
  auto out = std::make_unique<Item<T>>(it, reinterpret_cast<T*>(v));
  if (p != der.data() + der.size()) return nullptr;
  return out;
}

}  // namespace token::smime::x25519
