#include "kari_x25519.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/objects.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "cms_asn1.hpp"
#include "crlf_bio.hpp"
#include "der_walk.hpp"
#include "token/error.hpp"
#include "token/ossl.hpp"

namespace token::smime::x25519 {

using der::der_tlv;
using der::elements;
using der::Got;
using der::locate;
using der::Path;
using der::slice;

namespace {

// RFC 8418 section 7 (smime-alg 19, 20, 21).
const char* const kHkdfSchemes[] = {"1.2.840.113549.1.9.16.3.19", "1.2.840.113549.1.9.16.3.20",
                                    "1.2.840.113549.1.9.16.3.21"};
const char* const kHkdfDigests[] = {"SHA256", "SHA384", "SHA512"};

std::string oid_text(const ASN1_OBJECT* o) {
  char buf[128] = {};
  OBJ_obj2txt(buf, sizeof buf, o, 1);
  return buf;
}

std::string subject_of(X509* cert) {
  char* name = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
  std::string s = name ? name : "?";
  OPENSSL_free(name);
  return s;
}

// The AlgorithmIdentifier of an AES key wrap with absent parameters (RFC
// 3565 section 2.3.2), as DER.
void set_wrap(X509_ALGOR* a, int nid) {
  X509_ALGOR_set0(a, OBJ_nid2obj(nid), V_ASN1_UNDEF, nullptr);
}

// RFC 8418 section 2: ECC-CMS-SharedInfo with the key wrap algorithm, the
// ukm if any, and the KEK length in bits as a 32-bit big-endian number.
Bytes shared_info(int wrap_nid, const ASN1_OCTET_STRING* ukm, std::size_t kek_len) {
  Item<TK_SHARED_INFO> si(ASN1_ITEM_rptr(TK_SHARED_INFO));
  set_wrap(si->key_info, wrap_nid);
  if (ukm != nullptr) si->entity_u_info = ASN1_OCTET_STRING_dup(ukm);
  const auto bits = static_cast<std::uint32_t>(kek_len * 8);
  const unsigned char be[4] = {
      static_cast<unsigned char>(bits >> 24), static_cast<unsigned char>(bits >> 16),
      static_cast<unsigned char>(bits >> 8), static_cast<unsigned char>(bits)};
  if (ASN1_OCTET_STRING_set(si->supp_pub_info, be, 4) != 1)
    throw Error(ErrorKind::Internal, "out of memory (ASN.1)");
  return si.der();
}

// RFC 8418 section 2: KEK = HKDF(salt absent, IKM = Z, info = SharedInfo).
Bytes hkdf(const char* md, const Bytes& z, const Bytes& info, std::size_t len) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, OSSL_KDF_NAME_HKDF, nullptr);
  EVP_KDF_CTX* ctx = kdf ? EVP_KDF_CTX_new(kdf) : nullptr;
  EVP_KDF_free(kdf);
  std::string digest = md;
  Bytes zz = z, ii = info;
  OSSL_PARAM ps[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest.data(), 0),
                     OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, zz.data(), zz.size()),
                     OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, ii.data(), ii.size()),
                     OSSL_PARAM_construct_end()};
  Bytes out(len);
  const bool ok = ctx != nullptr && EVP_KDF_derive(ctx, out.data(), out.size(), ps) == 1;
  EVP_KDF_CTX_free(ctx);
  OPENSSL_cleanse(zz.data(), zz.size());
  if (!ok) throw Error(ErrorKind::Internal, "HKDF failed: " + ossl::last_error());
  return out;
}

// RecipientInfo CHOICE tags: kari [1], kekri [2], both IMPLICIT SEQUENCEs.
constexpr unsigned char kKariTag = 0xa1, kKekriTag = 0xa2;

Bytes retag(Bytes der, unsigned char tag) {
  der[0] = tag;
  return der;
}

struct Owned {  // an OPENSSL_malloc'd copy that CMS takes over
  unsigned char* p;
  explicit Owned(const Bytes& b) : p(static_cast<unsigned char*>(OPENSSL_malloc(b.size()))) {
    if (p == nullptr) throw Error(ErrorKind::Internal, "out of memory");
    std::memcpy(p, b.data(), b.size());
  }
};

}  // namespace

// ---- encryption ------------------------------------------------------------

struct Recipients::Entry {
  Bytes kek_id;
  Bytes ephemeral;  // the 32 public bytes
  ossl::X509Ptr cert;
};

Recipients::Recipients() = default;
Recipients::~Recipients() = default;
bool Recipients::empty() const { return entries_.empty(); }

void Recipients::add(CMS_ContentInfo* cms, X509* cert) {
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  const std::string who = subject_of(cert);
  ossl::Pkey eph(EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519"));
  if (!eph) throw Error(ErrorKind::Internal, "cannot make an ephemeral X25519 key");
  // Z = X25519(ephemeral, recipient); OpenSSL refuses an all-zero Z (a
  // small-order public key, RFC 7748 section 6.1).
  ossl::PkeyCtx dctx(EVP_PKEY_CTX_new_from_pkey(nullptr, eph.get(), nullptr));
  Bytes z(32);
  std::size_t zlen = z.size();
  if (!dctx || EVP_PKEY_derive_init(dctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(dctx.get(), pub) != 1 ||
      EVP_PKEY_derive(dctx.get(), z.data(), &zlen) != 1 || zlen != 32) {
    throw Error(ErrorKind::Input, "cannot encrypt to " + who +
                                      ": its X25519 key does not agree a key (" +
                                      ossl::last_error() + ")");
  }
  const int wrap = NID_id_aes256_wrap;  // the content key is AES-256
  Bytes kek = hkdf("SHA256", z, shared_info(wrap, nullptr, 32), 32);
  OPENSSL_cleanse(z.data(), z.size());
  auto e = std::make_unique<Entry>();
  e->ephemeral.resize(32);
  std::size_t plen = 32;
  EVP_PKEY_get_raw_public_key(eph.get(), e->ephemeral.data(), &plen);
  Bytes nonce(8);
  RAND_bytes(nonce.data(), static_cast<int>(nonce.size()));
  const std::string tag = "tokenkit-x25519-" + std::to_string(entries_.size()) + "-";
  e->kek_id.assign(tag.begin(), tag.end());
  e->kek_id.insert(e->kek_id.end(), nonce.begin(), nonce.end());
  X509_up_ref(cert);
  e->cert.reset(cert);
  Owned key(kek), id(e->kek_id);
  OPENSSL_cleanse(kek.data(), kek.size());
  if (CMS_add0_recipient_key(cms, wrap, key.p, 32, id.p, e->kek_id.size(), nullptr, nullptr,
                             nullptr) == nullptr) {
    OPENSSL_clear_free(key.p, 32);
    OPENSSL_free(id.p);
    throw Error(ErrorKind::Internal,
                "cannot add the recipient info for " + who + ": " + ossl::last_error());
  }
  entries_.push_back(std::move(e));
}

Bytes Recipients::rewrite_set(const Bytes& set_content) const {
  Bytes out;
  std::size_t replaced = 0;
  for (const Bytes& ri : elements(set_content)) {
    const Entry* mine = nullptr;
    std::unique_ptr<Item<TK_KEKRI>> kekri;
    if (ri[0] == kKekriTag) {
      kekri = decode<TK_KEKRI>(ASN1_ITEM_rptr(TK_KEKRI), retag(ri, 0x30));
      for (const auto& e : entries_) {
        const ASN1_OCTET_STRING* id = kekri ? kekri->get()->kekid->id : nullptr;
        if (id && static_cast<std::size_t>(ASN1_STRING_length(id)) == e->kek_id.size() &&
            std::memcmp(ASN1_STRING_get0_data(id), e->kek_id.data(), e->kek_id.size()) == 0) {
          mine = e.get();
        }
      }
    }
    if (mine == nullptr) {
      out.insert(out.end(), ri.begin(), ri.end());
      continue;
    }
    // RFC 8418 section 3: version 3, originatorKey id-X25519 (parameters
    // absent) and the ephemeral key, no ukm, the HKDF scheme with the key
    // wrap algorithm as parameter, and the recipient by issuer and serial.
    Item<TK_KARI> kari(ASN1_ITEM_rptr(TK_KARI));
    ASN1_INTEGER_set(kari->version, 3);
    kari->originator->type = kOrigKey;
    kari->originator->d.key =
        reinterpret_cast<TK_ORIG_KEY*>(ASN1_item_new(ASN1_ITEM_rptr(TK_ORIG_KEY)));
    TK_ORIG_KEY* ok = kari->originator->d.key;
    if (ok == nullptr) throw Error(ErrorKind::Internal, "out of memory (ASN.1)");
    X509_ALGOR_set0(ok->algorithm, OBJ_nid2obj(NID_X25519), V_ASN1_UNDEF, nullptr);
    ASN1_BIT_STRING_set(ok->public_key, const_cast<unsigned char*>(mine->ephemeral.data()), 32);
    ok->public_key->flags &= ~0x07L;
    ok->public_key->flags |= ASN1_STRING_FLAG_BITS_LEFT;  // no unused bits
    Item<X509_ALGOR> wrap(ASN1_ITEM_rptr(X509_ALGOR));
    set_wrap(wrap.get(), NID_id_aes256_wrap);
    const Bytes wrap_der = wrap.der();
    ASN1_STRING* params = ASN1_STRING_new();
    ASN1_STRING_set(params, wrap_der.data(), static_cast<int>(wrap_der.size()));
    X509_ALGOR_set0(kari->kea, OBJ_txt2obj(kHkdfSchemes[0], 1), V_ASN1_SEQUENCE, params);
    Item<TK_REK> rek(ASN1_ITEM_rptr(TK_REK));
    rek->rid->type = kRidIssuerSerial;
    rek->rid->d.ias =
        reinterpret_cast<TK_ISSUER_SERIAL*>(ASN1_item_new(ASN1_ITEM_rptr(TK_ISSUER_SERIAL)));
    if (rek->rid->d.ias == nullptr) throw Error(ErrorKind::Internal, "out of memory (ASN.1)");
    X509_NAME_set(&rek->rid->d.ias->issuer, X509_get_issuer_name(mine->cert.get()));
    ASN1_INTEGER_free(rek->rid->d.ias->serial);
    rek->rid->d.ias->serial = ASN1_INTEGER_dup(X509_get0_serialNumber(mine->cert.get()));
    ASN1_STRING_free(rek->encrypted_key);
    rek->encrypted_key = ASN1_OCTET_STRING_dup(kekri->get()->encrypted_key);
    OPENSSL_sk_push(kari->reks, rek.release());
    const Bytes der = retag(kari.der(), kKariTag);
    out.insert(out.end(), der.begin(), der.end());
    ++replaced;
  }
  if (replaced != entries_.size())
    throw Error(ErrorKind::Internal, "an X25519 recipient info went missing while encrypting");
  return out;
}

namespace {

// The rewriting filter's state: the bytes held until the SET is complete.
struct Rewrite {
  const Recipients* r;
  Bytes head;
  bool done = false;
};

int rw_write(BIO* b, const char* data, int len) {
  auto* st = static_cast<Rewrite*>(BIO_get_data(b));
  BIO* next = BIO_next(b);
  if (st == nullptr || next == nullptr || len < 0) return -1;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  if (st->done) return write_fully(next, p, static_cast<std::size_t>(len)) ? len : -1;
  st->head.insert(st->head.end(), p, p + len);
  if (st->head.size() > (std::size_t{4} << 20)) return -1;
  Path path;
  const Got g = locate(st->head, path);
  if (g == Got::More) return len;
  // A streamed CMS has indefinite outer lengths; with definite ones the
  // SET could not change size.
  if (g == Got::Bad || !path.ci.indefinite || !path.e0.indefinite || !path.env.indefinite)
    return -1;
  try {
    const Bytes& h = st->head;
    const Bytes set =
        der_tlv(0x31, st->r->rewrite_set(slice(h, path.set.content(), path.set.end())));
    Bytes out = slice(h, 0, path.set.start);
    out.insert(out.end(), set.begin(), set.end());
    out.insert(out.end(), h.begin() + static_cast<std::ptrdiff_t>(path.set.end()), h.end());
    st->done = true;
    st->head.clear();
    return write_fully(next, out.data(), out.size()) ? len : -1;
  } catch (const std::exception&) {
    return -1;
  }
}

long rw_ctrl(BIO* b, int cmd, long num, void* ptr) {
  auto* st = static_cast<Rewrite*>(BIO_get_data(b));
  BIO* next = BIO_next(b);
  if (next == nullptr) return 0;
  // Flushing before the recipient infos were seen would lose them.
  if (cmd == BIO_CTRL_FLUSH && st != nullptr && !st->done) return 0;
  return BIO_ctrl(next, cmd, num, ptr);
}

int rw_create(BIO* b) {
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 1);
  return 1;
}

int rw_destroy(BIO* b) {
  delete static_cast<Rewrite*>(BIO_get_data(b));
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* rw_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit X25519 recipient infos");
    BIO_meth_set_write(bm, rw_write);
    BIO_meth_set_ctrl(bm, rw_ctrl);
    BIO_meth_set_create(bm, rw_create);
    BIO_meth_set_destroy(bm, rw_destroy);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_rewriter(const Recipients& r) {
  BIO* b = BIO_new(rw_method());
  if (b == nullptr) throw Error(ErrorKind::Internal, "out of memory (BIO)");
  BIO_set_data(b, new Rewrite{&r, {}, false});
  return b;
}

// ---- decryption ------------------------------------------------------------

Prepared::~Prepared() { OPENSSL_cleanse(kek.data(), kek.size()); }

namespace {

bool rid_matches(const TK_RID* rid, X509* cert) {
  if (rid->type == kRidIssuerSerial) {
    return X509_NAME_cmp(rid->d.ias->issuer, X509_get_issuer_name(cert)) == 0 &&
           ASN1_INTEGER_cmp(rid->d.ias->serial, X509_get0_serialNumber(cert)) == 0;
  }
  const ASN1_OCTET_STRING* ski = X509_get0_subject_key_id(cert);
  return rid->type == kRidKeyId && ski != nullptr &&
         ASN1_OCTET_STRING_cmp(rid->d.rkey->id, ski) == 0;
}

// Z = X25519(token key, ephemeral key), on the token.
Bytes agree(const TokenKey& key, const Bytes& ephemeral) {
  ossl::Pkey peer(EVP_PKEY_new_raw_public_key_ex(key.libctx(), "X25519", "provider=default",
                                                 ephemeral.data(), ephemeral.size()));
  ossl::PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(key.libctx(), key.pkey(), nullptr));
  Bytes z(32);
  std::size_t n = z.size();
  if (!peer || !ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer(ctx.get(), peer.get()) != 1 ||
      EVP_PKEY_derive(ctx.get(), z.data(), &n) != 1 || n != 32) {
    rethrow_engine_error("X25519 key agreement with " + key.description() + " failed");
  }
  return z;
}

// What the sender chose in an X25519 KARI, checked (RFC 8418 section 3);
// `what` names the recipient info in errors.
struct Choices {
  const char* md = nullptr;
  int wrap_nid = NID_undef;
  std::size_t kek_len = 0;
  Bytes ephemeral;
};

Choices check_kari(const TK_KARI* kari, const std::string& what) {
  Choices c;
  const ASN1_BIT_STRING* eph = kari->originator->d.key->public_key;
  const int eph_len = ASN1_STRING_length(eph);
  if (eph_len != 32 || (eph->flags & 0x07) != 0) {
    throw Error(ErrorKind::Input, what + " has an ephemeral public key of " +
                                      std::to_string(eph_len) +
                                      " bytes; an X25519 key has 32 (RFC 8410)");
  }
  const std::string scheme = oid_text(kari->kea->algorithm);
  for (std::size_t i = 0; i < 3; ++i)
    if (scheme == kHkdfSchemes[i]) c.md = kHkdfDigests[i];
  if (c.md == nullptr) {
    throw Error(ErrorKind::Input, what + " uses the key agreement algorithm " + scheme +
                                      ", not RFC 8418's dhSinglePass-stdDH-hkdf-sha256/384/512-"
                                      "scheme");
  }
  // Its parameter: the key wrap algorithm (RFC 8418 section 3).
  const ASN1_TYPE* param = kari->kea->parameter;
  if (param != nullptr && param->type == V_ASN1_SEQUENCE) {
    const unsigned char* p = param->value.sequence->data;
    X509_ALGOR* w = d2i_X509_ALGOR(nullptr, &p, param->value.sequence->length);
    if (w != nullptr) c.wrap_nid = OBJ_obj2nid(w->algorithm);
    X509_ALGOR_free(w);
  }
  c.kek_len = c.wrap_nid == NID_id_aes128_wrap   ? 16
              : c.wrap_nid == NID_id_aes192_wrap ? 24
              : c.wrap_nid == NID_id_aes256_wrap ? 32
                                                 : 0;
  if (c.kek_len == 0) {
    ERR_clear_error();
    throw Error(ErrorKind::Input, what +
                                      " names no AES key wrap (id-aes128-wrap, id-aes192-wrap or "
                                      "id-aes256-wrap) for its key-encryption key");
  }
  c.ephemeral.assign(ASN1_STRING_get0_data(eph), ASN1_STRING_get0_data(eph) + 32);
  return c;
}

// The KEK for a KARI addressed to us (RFC 8418 section 2).
Bytes derive_kek(const TokenKey& key, const TK_KARI* kari, const std::string& what, int& wrap_nid) {
  const Choices c = check_kari(kari, what);
  wrap_nid = c.wrap_nid;
  Bytes z = agree(key, c.ephemeral);
  Bytes kek = hkdf(c.md, z, shared_info(c.wrap_nid, kari->ukm, c.kek_len), c.kek_len);
  OPENSSL_cleanse(z.data(), z.size());
  return kek;
}

// The X25519 KARIs of a message (DER as split_envelope gives it).
std::vector<std::unique_ptr<Item<TK_KARI>>> x25519_karis(const Bytes& der, Path& path,
                                                         std::vector<Bytes>& ris) {
  if (locate(der, path) != Got::Ok || path.ci.indefinite || path.e0.indefinite ||
      path.env.indefinite || path.ci.end() != der.size()) {
    throw Error(ErrorKind::Input,
                "the encrypted message is not DER-encoded CMS around its recipient infos");
  }
  ris = elements(slice(der, path.set.content(), path.set.end()));
  std::vector<std::unique_ptr<Item<TK_KARI>>> out;
  for (const Bytes& ri : ris) {
    std::unique_ptr<Item<TK_KARI>> kari;
    if (ri[0] == kKariTag) kari = decode<TK_KARI>(ASN1_ITEM_rptr(TK_KARI), retag(ri, 0x30));
    // Anything else (RSA, P-256, a KARI that is not X25519) is OpenSSL's.
    if (kari && (kari->get()->originator->type != kOrigKey ||
                 OBJ_obj2nid(kari->get()->originator->d.key->algorithm->algorithm) != NID_X25519)) {
      kari.reset();
    }
    out.push_back(std::move(kari));
  }
  return out;
}

}  // namespace

std::optional<Prepared> prepare_decrypt(const Bytes& der, const TokenKey& key) {
  X509* cert = key.certificate();
  if (cert == nullptr || !EVP_PKEY_is_a(key.pkey(), "X25519")) return std::nullopt;
  Path path;
  std::vector<Bytes> ris;
  const auto karis = x25519_karis(der, path, ris);
  for (std::size_t n = 0; n < ris.size(); ++n) {
    if (!karis[n]) continue;
    Bytes& ri = ris[n];
    const TK_KARI* k = karis[n]->get();
    for (int i = 0; i < OPENSSL_sk_num(k->reks); ++i) {
      const auto* rek = static_cast<const TK_REK*>(OPENSSL_sk_value(k->reks, i));
      if (!rid_matches(rek->rid, cert)) continue;
      const std::string what =
          "the encrypted message's X25519 recipient info for " + subject_of(cert);
      int wrap_nid = NID_undef;
      Prepared out;
      out.kek = derive_kek(key, k, what, wrap_nid);
      const std::string id = "tokenkit-x25519";
      out.kek_id.assign(id.begin(), id.end());
      // RFC 5652 6.2.3: version 4, the KEK's id, the wrap algorithm and the
      // sender's wrapped content key, for OpenSSL to unwrap.
      Item<TK_KEKRI> kekri(ASN1_ITEM_rptr(TK_KEKRI));
      ASN1_INTEGER_set(kekri->version, 4);
      ASN1_OCTET_STRING_set(kekri->kekid->id, out.kek_id.data(),
                            static_cast<int>(out.kek_id.size()));
      set_wrap(kekri->kea, wrap_nid);
      ASN1_STRING_free(kekri->encrypted_key);
      kekri->encrypted_key = ASN1_OCTET_STRING_dup(rek->encrypted_key);
      ri = retag(kekri.der(), kKekriTag);
      Bytes set_content;
      for (const Bytes& r : ris) set_content.insert(set_content.end(), r.begin(), r.end());
      // The lengths around the SET change with it (all definite here).
      Bytes env = slice(der, path.env.content(), path.set.start);
      const Bytes set = der_tlv(0x31, set_content);
      env.insert(env.end(), set.begin(), set.end());
      const Bytes after = slice(der, path.set.end(), path.env.end());
      env.insert(env.end(), after.begin(), after.end());
      Bytes e0 = slice(der, path.e0.content(), path.env.start);
      const Bytes env_der = der_tlv(0x30, env);
      e0.insert(e0.end(), env_der.begin(), env_der.end());
      const Bytes e0_after = slice(der, path.env.end(), path.e0.end());
      e0.insert(e0.end(), e0_after.begin(), e0_after.end());
      Bytes ci = slice(der, path.ci.content(), path.e0.start);
      const Bytes e0_der = der_tlv(0xa0, e0);
      ci.insert(ci.end(), e0_der.begin(), e0_der.end());
      const Bytes ci_after = slice(der, path.e0.end(), path.ci.end());
      ci.insert(ci.end(), ci_after.begin(), ci_after.end());
      out.der = der_tlv(0x30, ci);
      return out;
    }
  }
  return std::nullopt;
}

std::size_t check_recipients(const Bytes& der) {
  Path path;
  std::vector<Bytes> ris;
  std::size_t count = 0;
  for (const auto& kari : x25519_karis(der, path, ris)) {
    if (!kari) continue;
    check_kari(kari->get(), "the encrypted message's X25519 recipient info");
    for (int i = 0; i < OPENSSL_sk_num(kari->get()->reks); ++i) {
      const auto* rek = static_cast<const TK_REK*>(OPENSSL_sk_value(kari->get()->reks, i));
      if (rek->rid->type != kRidIssuerSerial && rek->rid->type != kRidKeyId)
        throw Error(ErrorKind::Input, "the encrypted message names an X25519 recipient oddly");
    }
    ++count;
  }
  return count;
}

}  // namespace token::smime::x25519
