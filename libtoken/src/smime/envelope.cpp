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

// Reads the decrypting chain to its end: the cipher's final step (the GCM
// tag, the CBC padding) is checked there.
bool copy_plaintext(BIO* cont, BIO* out) {
  std::vector<unsigned char> buf(std::size_t{64} * 1024);
  for (;;) {
    const int n = BIO_read(cont, buf.data(), static_cast<int>(buf.size()));
    if (n < 0) return false;
    if (n == 0) break;
    if (BIO_write(out, buf.data(), n) != n) throw Error(ErrorKind::Io, "cannot write the content");
  }
  const bool ok = BIO_method_type(cont) != BIO_TYPE_CIPHER || BIO_get_cipher_status(cont) > 0;
  OPENSSL_cleanse(buf.data(), buf.size());
  return ok;
}

}  // namespace

EnvelopeInfo inspect_encrypted(BIO* in) {
  ERR_clear_error();
  BIO* sink = BIO_new(BIO_s_null());
  SplitEnvelope split;
  try {
    split = split_envelope(in, sink);
  } catch (...) {
    BIO_free(sink);
    throw;
  }
  BIO_free(sink);
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

void decrypt(const TokenKey& key, BIO* in, BIO* out) {
  clear_engine_error();
  if (key.certificate() == nullptr) {
    throw Error(ErrorKind::NotFound, "no certificate with the CKA_ID of " + key.description() +
                                         " on the token: it names the recipient to decrypt for");
  }
  // One pass over the message: the ciphertext streams to a scratch file,
  // then CMS decrypts it from there as detached content, streaming too.
  std::unique_ptr<BIO, decltype(&BIO_free_all)> spool(scratch_file(), BIO_free_all);
  BIO* buffered = BIO_push(BIO_new(BIO_f_buffer()), spool.get());
  BIO_set_write_buffer_size(buffered, 1 << 16);
  SplitEnvelope split;
  const auto mapped = MappedInput::map(in);
  try {
    split = split_envelope(mapped ? mapped->bio() : in, buffered);
  } catch (...) {
    BIO_pop(buffered);
    BIO_free(buffered);
    throw;
  }
  BIO_pop(buffered);
  BIO_free(buffered);
  if (BIO_seek(spool.get(), 0) != 0) throw Error(ErrorKind::Io, "cannot rewind a scratch file");
  // An X25519 key: its KeyAgreeRecipientInfo becomes a KEK recipient info
  // with the KEK agreed on the token (kari_x25519.hpp).
  std::optional<x25519::Prepared> agreed;
  if (EVP_PKEY_is_a(key.pkey(), "X25519")) {
    agreed = x25519::prepare_decrypt(split.der, key);
    if (!agreed) {
      throw Error(ErrorKind::NotFound, "the message is not encrypted to " +
                                           subject(key.certificate()) + ", the certificate of " +
                                           key.description() +
                                           " (it has no X25519 recipient info for it)");
    }
  }
  CmsPtr cms = parse_envelope(agreed ? agreed->der : split.der, key.libctx());
  const int type = OBJ_obj2nid(CMS_get0_type(cms.get()));
  BIO* reader = BIO_new(BIO_f_buffer());
  BIO_set_read_buffer_size(reader, 1 << 16);
  spool.reset(BIO_push(reader, spool.release()));
  // CMS_decrypt() would do the next steps too, but OpenSSL 3.0 holds the
  // whole plaintext of AES-GCM content in memory until the tag verified;
  // here it streams to `out`, which the caller discards unless this returns
  // (RFC 5083: no plaintext is released before the tag verifies).
  const bool keyed = agreed
                         ? CMS_decrypt_set1_key(cms.get(), agreed->kek.data(), agreed->kek.size(),
                                                agreed->kek_id.data(), agreed->kek_id.size()) == 1
                         : CMS_decrypt_set1_pkey(cms.get(), key.pkey(), key.certificate()) == 1;
  if (agreed && !keyed) {
    ERR_clear_error();
    throw Error(ErrorKind::Input,
                "cannot decrypt the message with " + key.description() +
                    ": its content key does not unwrap under the key agreed with the X25519 "
                    "recipient info (AES key wrap integrity check failed: the message was "
                    "changed, or was not made for this key)");
  }
  if (keyed) {
    if (BIO* cont = CMS_dataInit(cms.get(), spool.get())) {
      const bool ok = copy_plaintext(cont, out);
      // The chain is CMS's filters over our spool: free those only.
      while (cont != nullptr && cont != spool.get()) {
        BIO* next = BIO_pop(cont);
        BIO_free(cont);
        cont = next;
      }
      if (ok) return;
    }
  }
  const unsigned long code = ERR_peek_last_error();
  if (ERR_GET_LIB(code) == ERR_LIB_CMS && ERR_GET_REASON(code) == CMS_R_NO_MATCHING_RECIPIENT) {
    ERR_clear_error();
    throw Error(ErrorKind::NotFound, "the message is not encrypted to " +
                                         subject(key.certificate()) + ", the certificate of " +
                                         key.description());
  }
  std::string what = "cannot decrypt the message with " + key.description();
  if (type == NID_id_smime_ct_authEnvelopedData && !has_engine_error()) {
    // RFC 5083: the content is released only if the MAC verifies; a wrong
    // content key (a message not really for us) fails the same way.
    what += ": its authentication tag does not verify (the message was changed)";
  }
  rethrow_engine_error(what, ErrorKind::Input);
}

}  // namespace token::smime
