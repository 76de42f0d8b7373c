// S/MIME encryption to certificates and decryption with a token key.
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <vector>

#include "crlf_bio.hpp"
#include "envelope_reader.hpp"
#include "kari_x25519.hpp"
#include "multipart.hpp"
#include "token/smime.hpp"

namespace token::smime {

namespace {

struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;

std::string subject(X509* cert) {
  char* name = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
  std::string s = name ? name : "?";
  OPENSSL_free(name);
  return s;
}

// RFC 8551 section 2.3 asks for RSAES-OAEP with SHA-256 where it can;
// RFC 5753/8551 for ECDH with a SHA-256 KDF (OpenSSL's default is SHA-1).
void set_recipient_params(CMS_RecipientInfo* ri, const EncryptOptions& o, X509* cert) {
  EVP_PKEY_CTX* pctx = CMS_RecipientInfo_get0_pkey_ctx(ri);
  bool ok = pctx != nullptr;
  if (ok && CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_TRANS && o.oaep) {
    ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) > 0 &&
         EVP_PKEY_CTX_set_rsa_oaep_md(pctx, EVP_sha256()) > 0 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) > 0;
  } else if (ok && CMS_RecipientInfo_type(ri) == CMS_RECIPINFO_AGREE) {
    ok = EVP_PKEY_CTX_set_ecdh_kdf_md(pctx, EVP_sha256()) > 0;
  }
  if (!ok)
    rethrow_engine_error("cannot set the key transport for " + subject(cert), ErrorKind::Input);
}

CmsPtr envelope(const EncryptOptions& o) {
  EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, cipher_name(o).c_str(), nullptr);
  CmsPtr cms(o.cbc ? CMS_EnvelopedData_create_ex(cipher, nullptr, nullptr)
                   : CMS_AuthEnvelopedData_create_ex(cipher, nullptr, nullptr));
  EVP_CIPHER_free(cipher);
  if (!cms) rethrow_engine_error("cannot start a CMS envelope", ErrorKind::Internal);
  return cms;
}

// The CMS of a split message (envelope_reader.hpp), in the key's library
// context: the recipient infos then create their key contexts there, where
// the token key lives.
CmsPtr parse_envelope(const Bytes& der, OSSL_LIB_CTX* libctx) {
  CMS_ContentInfo* ci = CMS_ContentInfo_new_ex(libctx, nullptr);
  const unsigned char* p = der.data();
  if (ci == nullptr || d2i_CMS_ContentInfo(&ci, &p, static_cast<long>(der.size())) == nullptr) {
    CMS_ContentInfo_free(ci);  // null if OpenSSL already freed it
    const char* r = ERR_reason_error_string(ERR_peek_last_error());
    ERR_clear_error();
    throw Error(ErrorKind::Input,
                std::string("the encrypted message is not valid CMS: ") + (r ? r : "unreadable"));
  }
  return CmsPtr(ci);
}

// A sink that drops the encrypted content: for inspect_encrypted().
class Discard final : public CiphertextSink {
 public:
  void begin(const Bytes&, bool) override {}
  void write(const unsigned char*, std::size_t) override {}
};

}  // namespace

EnvelopeInfo inspect_encrypted(BIO* in) {
  ERR_clear_error();
  Discard sink;
  const SplitEnvelope split = split_envelope(in, sink);
  CmsPtr cms = parse_envelope(split.der, nullptr);
  EnvelopeInfo info;
  info.authenticated = OBJ_obj2nid(CMS_get0_type(cms.get())) == NID_id_smime_ct_authEnvelopedData;
  STACK_OF(CMS_RecipientInfo)* ris = CMS_get0_RecipientInfos(cms.get());
  for (int i = 0; i < sk_CMS_RecipientInfo_num(ris); ++i) {
    info.recipient_types.push_back(CMS_RecipientInfo_type(sk_CMS_RecipientInfo_value(ris, i)));
  }
  info.x25519_recipients = x25519::check_recipients(split.der);
  return info;
}

void encrypt(const std::vector<X509*>& recipients, BIO* in, BIO* out, const EncryptOptions& o) {
  ERR_clear_error();
  if (recipients.empty()) throw Error(ErrorKind::Usage, "no recipient certificate given");
  CmsPtr cms = envelope(o);
  x25519::Recipients x;
  for (X509* cert : recipients) {
    EVP_PKEY* pub = X509_get0_pubkey(cert);
    if (pub != nullptr && EVP_PKEY_is_a(pub, "X448")) {
      throw Error(ErrorKind::Input, "cannot encrypt to " + subject(cert) +
                                        ": X448 key agreement is not supported; X25519 "
                                        "(RFC 8418), RSA and EC are");
    }
    if (pub != nullptr && EVP_PKEY_is_a(pub, "X25519")) {
      // OpenSSL 3.0's CMS makes no KeyAgreeRecipientInfo for X25519 (RFC
      // 8418): kari_x25519.hpp builds it.
      x.add(cms.get(), cert);
      continue;
    }
    CMS_RecipientInfo* ri = CMS_add1_recipient_cert(cms.get(), cert, CMS_KEY_PARAM);
    if (ri == nullptr) {
      rethrow_engine_error("cannot encrypt to " + subject(cert) + " (an RSA or EC key is needed)",
                           ErrorKind::Input);
    }
    set_recipient_params(ri, o, cert);
  }
  // RFC 8551 section 3.3 (and RFC 5083 for AuthEnvelopedData): streamed,
  // canonicalised to CRLF unless the input is canonical already. With X25519
  // recipients the DER passes through the filter that turns their stand-in
  // KEK recipient infos into KeyAgreeRecipientInfos (kari_x25519.hpp).
  const char* type = o.cbc ? "enveloped-data" : "authEnveloped-data";
  const auto mapped = MappedInput::map(in);
  BIO* rewriter = x.empty() ? nullptr : x25519::new_rewriter(x);
  if (!write_pkcs7_mime(out, cms.get(), type, mapped ? mapped->bio() : in, o.binary, rewriter) ||
      BIO_flush(out) != 1) {
    rethrow_engine_error("encryption failed", ErrorKind::Internal);
  }
}

namespace {

// Decrypts the encrypted content as split_envelope() hands it over, in the
// one pass over the message. OpenSSL's CMS does what it does best: it finds
// the recipient info for the key, has the token unwrap or agree the content
// key, and sets up the content cipher (CMS_dataInit, on the ContentInfo
// without its content); the content then goes through that cipher context
// here. For AES-GCM the ContentInfo has a stand-in mac, as the real one
// follows the content: it is set on the context once read, before the final
// step checks it (OpenSSL 3.0's GCM keeps the tag set last before the final
// call, providers/implementations/ciphers/ciphercommon_gcm.c; test_base64.cpp
// GcmTag shows it).
class Decryptor final : public CiphertextSink {
 public:
  Decryptor(const TokenKey& key, BIO* out, bool discardable)
      : key_(key), out_(out), discardable_(discardable) {}
  ~Decryptor() override {
    release_chain();
    OPENSSL_cleanse(buf_.data(), buf_.size());
  }
  Decryptor(const Decryptor&) = delete;
  Decryptor& operator=(const Decryptor&) = delete;

  void begin(const Bytes& head, bool authenticated) override { setup(head, authenticated); }
  void write(const unsigned char* p, std::size_t n) override;
  // The message was read whole: the mac is set, the cipher finished, and
  // the content, if it waited in the spool, copied to `out`.
  void finish(const SplitEnvelope& split);

 private:
  void setup(const Bytes& der, bool authenticated);
  [[noreturn]] void fail();
  void put(const unsigned char* p, std::size_t n);
  void release_chain();

  const TokenKey& key_;
  BIO* out_;
  bool discardable_;
  bool authenticated_ = false;
  CmsPtr cms_;
  BIO* detached_ = nullptr;  // the empty content BIO below CMS's cipher filter
  BIO* chain_ = nullptr;     // CMS's filters over `detached_`
  EVP_CIPHER_CTX* ctx_ = nullptr;
  std::unique_ptr<BIO, decltype(&BIO_free_all)> spool_{nullptr, BIO_free_all};
  BIO* dest_ = nullptr;  // `out_` or the spool
  std::vector<unsigned char> buf_ = std::vector<unsigned char>(std::size_t{64} * 1024 + 64);
};

void Decryptor::setup(const Bytes& der, bool authenticated) {
  authenticated_ = authenticated;
  // An X25519 key: its KeyAgreeRecipientInfo becomes a KEK recipient info
  // with the KEK agreed on the token (kari_x25519.hpp).
  std::optional<x25519::Prepared> agreed;
  if (EVP_PKEY_is_a(key_.pkey(), "X25519")) {
    agreed = x25519::prepare_decrypt(der, key_);
    if (!agreed) {
      throw Error(ErrorKind::NotFound, "the message is not encrypted to " +
                                           subject(key_.certificate()) + ", the certificate of " +
                                           key_.description() +
                                           " (it has no X25519 recipient info for it)");
    }
  }
  cms_ = parse_envelope(agreed ? agreed->der : der, key_.libctx());
  const bool keyed = agreed
                         ? CMS_decrypt_set1_key(cms_.get(), agreed->kek.data(), agreed->kek.size(),
                                                agreed->kek_id.data(), agreed->kek_id.size()) == 1
                         : CMS_decrypt_set1_pkey(cms_.get(), key_.pkey(), key_.certificate()) == 1;
  if (agreed && !keyed) {
    ERR_clear_error();
    throw Error(ErrorKind::Input,
                "cannot decrypt the message with " + key_.description() +
                    ": its content key does not unwrap under the key agreed with the X25519 "
                    "recipient info (AES key wrap integrity check failed: the message was "
                    "changed, or was not made for this key)");
  }
  if (!keyed) fail();
  // CMS_decrypt() would do the rest too, but OpenSSL 3.0 reads the whole
  // content first, and holds all the plaintext of AES-GCM content in memory
  // until the tag verified.
  detached_ = BIO_new(BIO_s_mem());
  chain_ = detached_ != nullptr ? CMS_dataInit(cms_.get(), detached_) : nullptr;
  BIO* cipher = chain_ != nullptr ? BIO_find_type(chain_, BIO_TYPE_CIPHER) : nullptr;
  if (cipher == nullptr || BIO_get_cipher_ctx(cipher, &ctx_) != 1 || ctx_ == nullptr) fail();
  // RFC 5083: no AES-GCM plaintext is released before the tag verifies. A
  // private output is discarded by the caller if it does not; anything else
  // gets it only afterwards, from the spool.
  dest_ = out_;
  if (authenticated_ && !discardable_) {
    BIO* file = scratch_file();
    dest_ = BIO_push(BIO_new(BIO_f_buffer()), file);  // `file` alone if the buffer failed
    spool_.reset(dest_);
    BIO_set_write_buffer_size(dest_, 1 << 16);
  }
}

void Decryptor::put(const unsigned char* p, std::size_t n) {
  if (n > 0 && !write_fully(dest_, p, n)) {
    throw Error(ErrorKind::Io,
                spool_ ? "cannot write the content to a scratch file" : "cannot write the content");
  }
}

void Decryptor::write(const unsigned char* p, std::size_t n) {
  const std::size_t step = buf_.size() - 64;  // room for a block more (CBC)
  while (n > 0) {
    const std::size_t k = std::min(n, step);
    int outl = 0;
    if (EVP_DecryptUpdate(ctx_, buf_.data(), &outl, p, static_cast<int>(k)) != 1) fail();
    put(buf_.data(), static_cast<std::size_t>(outl));
    p += k;
    n -= k;
  }
}

void Decryptor::finish(const SplitEnvelope& split) {
  // Without encryptedContent, the content is empty (nothing is detached here).
  if (!split.has_content) setup(split.der, split.authenticated);
  // The structure as a whole, with what followed the content, is CMS.
  (void)parse_envelope(split.der, nullptr);
  if (split.authenticated) {
    if (split.auth_attrs) {
      throw Error(ErrorKind::Input,
                  "cannot decrypt the message with " + key_.description() +
                      ": it has authenticated attributes (authAttrs), which RFC 5083 makes the "
                      "cipher's associated data and which come after its content; tokenkit "
                      "decrypts in one pass and does not support them");
    }
    // The mac as OpenSSL reads it (BER: it may be a constructed string).
    const unsigned char* p = split.mac.data();
    ASN1_OCTET_STRING* mac =
        split.mac.empty() ? nullptr
                          : d2i_ASN1_OCTET_STRING(nullptr, &p, static_cast<long>(split.mac.size()));
    Bytes tag;
    if (mac != nullptr) {
      tag.assign(ASN1_STRING_get0_data(mac), ASN1_STRING_get0_data(mac) + ASN1_STRING_length(mac));
      ASN1_OCTET_STRING_free(mac);
    }
    if (tag.empty() || EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG,
                                           static_cast<int>(tag.size()), tag.data()) != 1) {
      fail();
    }
  }
  int outl = 0;
  if (EVP_DecryptFinal_ex(ctx_, buf_.data(), &outl) != 1) fail();
  put(buf_.data(), static_cast<std::size_t>(outl));
  if (spool_) {
    // Verified: the content may go out now.
    if (BIO_flush(dest_) != 1) throw Error(ErrorKind::Io, "cannot write a scratch file");
    BIO* file = BIO_next(dest_);
    if (BIO_seek(file, 0) != 0) throw Error(ErrorKind::Io, "cannot rewind a scratch file");
    for (;;) {
      const int n = BIO_read(file, buf_.data(), static_cast<int>(buf_.size()));
      if (n < 0) throw Error(ErrorKind::Io, "cannot read a scratch file");
      if (n == 0) break;
      if (!write_fully(out_, buf_.data(), static_cast<std::size_t>(n))) {
        throw Error(ErrorKind::Io, "cannot write the content");
      }
    }
  }
}

void Decryptor::fail() {
  const unsigned long code = ERR_peek_last_error();
  if (ERR_GET_LIB(code) == ERR_LIB_CMS && ERR_GET_REASON(code) == CMS_R_NO_MATCHING_RECIPIENT) {
    ERR_clear_error();
    throw Error(ErrorKind::NotFound, "the message is not encrypted to " +
                                         subject(key_.certificate()) + ", the certificate of " +
                                         key_.description());
  }
  std::string what = "cannot decrypt the message with " + key_.description();
  if (authenticated_ && !has_engine_error()) {
    // RFC 5083: the content is released only if the MAC verifies; a wrong
    // content key (a message not really for us) fails the same way.
    what += ": its authentication tag does not verify (the message was changed)";
  }
  rethrow_engine_error(what, ErrorKind::Input);
}

void Decryptor::release_chain() {
  // The chain is CMS's filters over our empty content BIO.
  BIO* b = chain_;
  while (b != nullptr && b != detached_) {
    BIO* next = BIO_pop(b);
    BIO_free(b);
    b = next;
  }
  BIO_free(detached_);
  chain_ = nullptr;
  detached_ = nullptr;
  ctx_ = nullptr;
}

}  // namespace

void decrypt(const TokenKey& key, BIO* in, BIO* out, const DecryptOptions& options) {
  clear_engine_error();
  if (key.certificate() == nullptr) {
    throw Error(ErrorKind::NotFound, "no certificate with the CKA_ID of " + key.description() +
                                         " on the token: it names the recipient to decrypt for");
  }
  Decryptor d(key, out, options.discardable_output);
  const auto mapped = MappedInput::map(in);
  const SplitEnvelope split = split_envelope(mapped ? mapped->bio() : in, d);
  d.finish(split);
  if (BIO_flush(out) != 1) throw Error(ErrorKind::Io, "cannot write the content");
}

}  // namespace token::smime
