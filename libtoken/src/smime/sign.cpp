// tokenkit's S/MIME signing: OpenSSL CMS in the token key's library
// context, streaming, with the signed attributes RFC 8551 asks for.
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>

#include "async_out.hpp"
#include "crlf_bio.hpp"
#include "der_walk.hpp"
#include "seven_bit.hpp"
#include "token/ossl.hpp"
#include "token/smime.hpp"

namespace token::smime {

namespace {

struct CmsFree {
  void operator()(CMS_ContentInfo* c) const { CMS_ContentInfo_free(c); }
};
using CmsPtr = std::unique_ptr<CMS_ContentInfo, CmsFree>;

// RFC 8551 section 2.5.2: what we can decrypt, strongest first. Only what
// tokenkit really supports: AES-GCM and AES-CBC content (no DES, 3DES or
// RC2), and for EC keys the key agreement decrypt() handles (RFC 5753
// dhSinglePass-stdDH-sha256kdf-scheme with AES-256 key wrap).
void add_capabilities(CMS_SignerInfo* si, const TokenKey& key) {
  STACK_OF(X509_ALGOR)* caps = nullptr;
  bool ok = CMS_add_simple_smimecap(&caps, NID_aes_256_gcm, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_128_gcm, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_256_cbc, -1) &&
            CMS_add_simple_smimecap(&caps, NID_aes_128_cbc, -1);
  if (ok && EVP_PKEY_is_a(key.pkey(), "EC")) {
    X509_ALGOR* wrap = X509_ALGOR_new();
    X509_ALGOR* ka = X509_ALGOR_new();
    ok = wrap != nullptr && ka != nullptr &&
         X509_ALGOR_set0(wrap, OBJ_nid2obj(NID_id_aes256_wrap), V_ASN1_UNDEF, nullptr) == 1;
    unsigned char* der = nullptr;
    const int n = ok ? i2d_X509_ALGOR(wrap, &der) : -1;
    ASN1_STRING* param = n > 0 ? ASN1_STRING_new() : nullptr;
    ok = param != nullptr && ASN1_STRING_set(param, der, n) == 1 &&
         X509_ALGOR_set0(ka, OBJ_nid2obj(NID_dhSinglePass_stdDH_sha256kdf_scheme), V_ASN1_SEQUENCE,
                         param) == 1;
    if (!ok) ASN1_STRING_free(param);
    OPENSSL_free(der);
    X509_ALGOR_free(wrap);
    ok = ok && sk_X509_ALGOR_push(caps, ka) > 0;
    if (!ok) X509_ALGOR_free(ka);
  }
  ok = ok && CMS_add_smimecap(si, caps);
  sk_X509_ALGOR_pop_free(caps, X509_ALGOR_free);
  if (!ok) rethrow_engine_error("cannot add SMIMECapabilities", ErrorKind::Internal);
}

// RFC 8551 section 2.5.3: SMIMEEncryptionKeyPreference, the choice
// issuerAndSerialNumber [0] (IMPLICIT, the module's default tagging): which
// certificate to encrypt to. Ours signs and decrypts with the same key.
void add_key_preference(CMS_SignerInfo* si, X509* cert) {
  Bytes body = ossl::der(X509_get_issuer_name(cert), i2d_X509_NAME);
  const Bytes serial = ossl::der(X509_get0_serialNumber(cert), i2d_ASN1_INTEGER);
  if (body.empty() || serial.empty()) throw Error(ErrorKind::Internal, "DER encoding failed");
  body.insert(body.end(), serial.begin(), serial.end());
  const Bytes value = der::der_tlv(0xa0, body);
  if (!CMS_signed_add1_attr_by_NID(si, NID_id_smime_aa_encrypKeyPref, V_ASN1_SEQUENCE, value.data(),
                                   static_cast<int>(value.size()))) {
    rethrow_engine_error("cannot add SMIMEEncryptionKeyPreference", ErrorKind::Internal);
  }
}

void use_pss(CMS_SignerInfo* si, const EVP_MD* md, const TokenKey& key) {
  EVP_PKEY_CTX* pctx = CMS_SignerInfo_get0_pkey_ctx(si);
  if (!EVP_PKEY_is_a(key.pkey(), "RSA")) {
    throw Error(ErrorKind::Usage, "--pss needs an RSA key; " + key.description() + " is not one");
  }
  if (pctx == nullptr || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) <= 0 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) <= 0 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0) {
    rethrow_engine_error("cannot set RSA-PSS for " + key.description());
  }
}

CMS_SignerInfo* add_signer(CMS_ContentInfo* cms, const TokenKey& key, const SignOptions& o) {
  // RFC 8419 section 3.1: with Ed25519 "the digestAlgorithm ... MUST be
  // id-sha512"; it hashes the content for messageDigest, and the token signs
  // the signed attributes with pure Ed25519 (engine/eddsa.cpp).
  const bool ed25519 = EVP_PKEY_is_a(key.pkey(), "ED25519");
  if (ed25519 && o.pss) {
    throw Error(ErrorKind::Usage, "--pss needs an RSA key; " + key.description() + " is Ed25519");
  }
  const std::string digest = ed25519 ? "SHA512" : o.digest;
  EVP_MD* md = EVP_MD_fetch(key.libctx(), digest.c_str(), nullptr);
  if (md == nullptr) throw Error(ErrorKind::Usage, "unknown digest \"" + digest + "\"");
  // CMS_CADES adds signingCertificateV2 (RFC 5035); our own capabilities
  // replace OpenSSL's default list, which names DES, 3DES and RC2.
  const unsigned flags = CMS_NOSMIMECAP | CMS_CADES | (o.pss ? CMS_KEY_PARAM : 0);
  CMS_SignerInfo* si = CMS_add1_signer(cms, key.certificate(), key.pkey(), md, flags);
  if (si != nullptr && o.pss) use_pss(si, md, key);
  if (si != nullptr && ed25519) {
    // OpenSSL 3.0 sets the signature algorithm for RSA and EC keys only
    // (cms_sd_asn1_ctrl); RFC 8419 section 3.2: id-Ed25519, parameters
    // absent.
    X509_ALGOR* alg = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &alg);
    if (alg == nullptr ||
        X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ED25519), V_ASN1_UNDEF, nullptr) != 1) {
      EVP_MD_free(md);
      rethrow_engine_error("cannot set the Ed25519 signature algorithm", ErrorKind::Internal);
    }
  }
  EVP_MD_free(md);
  if (si == nullptr) rethrow_engine_error("cannot sign with " + key.description());
  return si;
}

// RFC 8551 section 3.5.5: the micalg parameter's names.
std::string micalg(CMS_SignerInfo* si) {
  X509_ALGOR* alg = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, nullptr, &alg, nullptr);
  switch (alg == nullptr ? NID_undef : OBJ_obj2nid(alg->algorithm)) {
    case NID_sha1:
      return "sha-1";
    case NID_sha224:
      return "sha-224";
    case NID_sha256:
      return "sha-256";
    case NID_sha384:
      return "sha-384";
    case NID_sha512:
      return "sha-512";
    default:
      return "unknown";
  }
}

std::string random_boundary() {
  unsigned char r[16];
  if (RAND_bytes(r, sizeof r) != 1) rethrow_engine_error("no random bytes", ErrorKind::Internal);
  static const char hex[] = "0123456789ABCDEF";
  std::string b = "----";
  for (unsigned char c : r) b += {hex[c >> 4], hex[c & 15]};
  return b;
}

enum class Written { Ok, Failed, EightBit };

// The content, canonicalised, through CMS's digest BIOs to `out`: one pass
// hashes and writes it (RFC 8551 section 3.5: the signed part is the
// first body part as it appears in the message). With `scan`, stops before
// signing at a block with an 8-bit byte.
Written write_detached(CMS_ContentInfo* cms, BIO* content, BIO* out, bool scan) {
  BIO* chain = CMS_dataInit(cms, out);
  if (chain == nullptr) return Written::Failed;
  Written w = Written::Failed;
  try {
    if (!copy_canonical(content, chain, false, scan)) {
      w = Written::EightBit;
    } else if (BIO_flush(chain) == 1 && CMS_dataFinal(cms, chain) == 1) {
      w = Written::Ok;
    }
  } catch (...) {
    free_filters(chain, out);
    throw;
  }
  free_filters(chain, out);
  return w;
}

// How much of a mapped body sign_mapped() takes at a time: two of the
// writer's blocks, so that at most a few MiB of the mapping are resident
// (the writer gives pages back as it writes them).
constexpr std::size_t kStep = 2 * kAsyncBlock;

// write_detached() for a body in a mapped file, read from the mapping
// directly: each step is scanned once (8-bit bytes and canonical form,
// scan_block()); a canonical step, the usual case, is hashed where it lies
// (EVP_DigestUpdate on the CMS digest BIO's context, not through the BIO)
// and handed to the writer thread without a copy, which writes it while
// the next step is hashed. Other steps are canonicalised into a buffer
// first. The bytes hashed and written are those write_detached() would.
Written write_detached_mapped(CMS_ContentInfo* cms, const std::string& header_block, MappedInput& m,
                              BIO* out, bool scan) {
  if (scan && has_eight_bit(header_block.data(), header_block.size())) return Written::EightBit;
  BIO* chain = CMS_dataInit(cms, out);
  if (chain == nullptr) return Written::Failed;
  EVP_MD_CTX* md = nullptr;
  BIO* digest = BIO_find_type(chain, BIO_TYPE_MD);
  if (digest == nullptr || BIO_get_md_ctx(digest, &md) != 1 || md == nullptr) {
    free_filters(chain, out);
    return Written::Failed;
  }
  Written w = Written::Failed;
  try {
    Canonicalizer c;
    std::string canon;
    const auto hash_and_copy = [&] {
      if (EVP_DigestUpdate(md, canon.data(), canon.size()) != 1) return false;
      write_all(out, canon);
      return true;
    };
    // Once the step ending at `upto` is written, the writer thread gives
    // its pages back and touches those of the step after next: it is idle
    // while this thread hashes, and their page faults (a tenth of the CPU
    // time of a 100 MB sign) are then not taken here.
    const auto queue = [&](const char* p, std::size_t n, std::size_t upto) {
      const auto after_write = [&m, upto] {
        m.release(upto);
        const std::size_t from = std::min(upto + kStep, m.size());
        touch_pages(m.data() + from, std::min(kStep, m.size() - from));
      };
      if (!async_out_write_ref(out, p, n, after_write)) {
        ERR_clear_error();
        throw Error(ErrorKind::Io, "cannot write the output: " + async_out_error(out));
      }
    };
    c.feed(header_block.data(), header_block.size(), canon);
    bool ok = hash_and_copy();
    for (std::size_t pos = 0; ok && pos < m.size();) {
      const std::size_t k = std::min(kStep, m.size() - pos);
      const char* p = m.data() + pos;
      const BlockScan s = scan_block(p, k);
      if (scan && s.eight_bit) {
        w = Written::EightBit;
        break;
      }
      pos += k;
      if (s.canonical && c.pass_through(p, k)) {
        ok = EVP_DigestUpdate(md, p, k) == 1;
        if (ok) queue(p, k, pos);
      } else {
        canon.clear();
        c.feed(p, k, canon);
        ok = hash_and_copy();
        if (ok) queue(p, 0, pos);  // gives the pages back after what came before is written
      }
    }
    c.finish();
    if (ok && w != Written::EightBit && CMS_dataFinal(cms, chain) == 1) w = Written::Ok;
  } catch (...) {
    free_filters(chain, out);
    throw;
  }
  free_filters(chain, out);
  return w;
}

Written write_multipart_signed(CMS_ContentInfo* cms, CMS_SignerInfo* si, SevenBit& body, BIO* out,
                               bool scan) {
  // The layout of OpenSSL's SMIME_write_CMS (what peers have long read),
  // with CRLF line ends.
  const std::string b = random_boundary();
  write_all(out,
            "MIME-Version: 1.0\r\nContent-Type: multipart/signed; "
            "protocol=\"application/pkcs7-signature\"; micalg=\"" +
                micalg(si) + "\"; boundary=\"" + b +
                "\"\r\n\r\nThis is an S/MIME signed message\r\n\r\n--" + b + "\r\n");
  // A mapped body as it is, large enough for the writer thread: read from
  // the mapping; else through the source BIO.
  const bool direct =
      body.mapped && body.header_block && is_async_out(out) && body.mapped->size() >= kStep;
  const Written w = direct ? write_detached_mapped(cms, *body.header_block, *body.mapped, out, scan)
                           : write_detached(cms, body.source.get(), out, scan);
  if (w != Written::Ok) return w;
  write_all(out, "\r\n--" + b +
                     "\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\n"
                     "Content-Transfer-Encoding: base64\r\n"
                     "Content-Disposition: attachment; filename=\"smime.p7s\"\r\n\r\n");
  BIO* b64 = BIO_push(new_base64_filter(), out);
  const bool ok = i2d_CMS_bio(b64, cms) == 1 && BIO_flush(b64) == 1;
  BIO_pop(b64);
  BIO_free(b64);
  if (!ok) throw Error(ErrorKind::Io, "cannot write the signature");
  write_all(out, "\r\n--" + b + "--\r\n\r\n");
  return Written::Ok;
}

// Where a regular output file is at, so that a signing pass can be undone;
// -1 for anything else (a pipe, a memory BIO).
long rewind_point(BIO* out) {
  FILE* fp = nullptr;
  struct stat st {};
  if (BIO_method_type(out) != BIO_TYPE_FILE || BIO_get_fp(out, &fp) != 1 || fp == nullptr ||
      fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    return -1;
  }
  return BIO_tell(out);
}

void rewind_to(BIO* out, long at) {
  FILE* fp = nullptr;
  if (BIO_flush(out) != 1 || BIO_get_fp(out, &fp) != 1 || ftruncate(fileno(fp), at) != 0 ||
      BIO_seek(out, at) != 0) {
    throw Error(ErrorKind::Io, "cannot rewind the output to start the signing over");
  }
}

SignResult sign_entity(const TokenKey& key, BIO* in, BIO* out, const SignOptions& o,
                       bool optimistic) {
  // The content is canonicalised to CRLF (RFC 8551 section 3.1.1), hashed
  // and written out in one pass (crlf_bio.hpp); the signature is made when
  // it has all been written.
  const unsigned flags = CMS_PARTIAL | CMS_STREAM | (o.opaque ? 0 : CMS_DETACHED);
  CmsPtr cms(CMS_sign_ex(nullptr, nullptr, nullptr, nullptr, flags, key.libctx(), nullptr));
  if (!cms) rethrow_engine_error("cannot start a CMS SignedData", ErrorKind::Internal);
  CMS_SignerInfo* si = add_signer(cms.get(), key, o);
  add_capabilities(si, key);
  add_key_preference(si, key.certificate());
  // One pass where it can be undone: a regular input file (mapped) and a
  // regular output file. The 8-bit check then runs on each block as it is
  // signed; at the first 8-bit byte, before anything is signed, the output
  // is cut back and the entity is read again through the 7-bit rewriter.
  const long in_at =
      optimistic && !o.opaque && BIO_method_type(in) == BIO_TYPE_FILE ? BIO_tell(in) : -1;
  const long out_at = in_at >= 0 ? rewind_point(out) : -1;
  SevenBit body = make_seven_bit(in, out_at >= 0);
  Written wrote = Written::Failed;
  if (o.opaque) {
    // write_pkcs7_mime() has its own asynchronous writer, below base64.
    wrote = write_pkcs7_mime(out, cms.get(), "signed-data", body.source.get(), false)
                ? Written::Ok
                : Written::Failed;
    if (wrote == Written::Ok && BIO_flush(out) != 1) {
      throw Error(ErrorKind::Io, "cannot write the output");
    }
  } else {
    // The kernel's copy of the output overlaps the hashing.
    AsyncOutput async(out);
    wrote = write_multipart_signed(cms.get(), si, body, async.bio(), body.unscanned);
    if (wrote == Written::Ok) {
      async.flush();
    } else {
      async.drain();
    }
  }
  if (wrote == Written::EightBit) {
    body.source.reset();  // reads the mapping: freed first
    body.mapped.reset();
    rewind_to(out, out_at);
    if (BIO_seek(in, in_at) != 0) throw Error(ErrorKind::Io, "cannot rewind the input");
    return sign_entity(key, in, out, o, false);
  }
  // A failure inside the token shows in the error queue; OpenSSL 3.0's
  // streaming does not always pass it back up, so the signature is checked
  // to be there.
  const bool ok = wrote == Written::Ok && !has_engine_error() &&
                  ASN1_STRING_length(CMS_SignerInfo_get0_signature(si)) > 0;
  if (!ok) rethrow_engine_error("signing with " + key.description() + " failed");
  return SignResult{body.eight_bit, body.encoded};
}

}  // namespace

SignResult sign(const TokenKey& key, BIO* in, BIO* out, const SignOptions& o) {
  clear_engine_error();
  if (EVP_PKEY_is_a(key.pkey(), "X25519")) {
    throw Error(ErrorKind::Usage, key.description() +
                                      " is an X25519 key, which only agrees keys (RFC 8410): "
                                      "it decrypts mail but cannot sign it");
  }
  if (key.certificate() == nullptr) {
    throw Error(ErrorKind::NotFound, "no certificate with the CKA_ID of " + key.description() +
                                         " on the token: S/MIME needs the signer's certificate");
  }
  return sign_entity(key, in, out, o, true);
}

}  // namespace token::smime
