// S/MIME verification in three checks, each reported on its own: the
// signature (OpenSSL CMS, the signer's certificate not yet judged), the
// chain to the trust store, and the certificate's use for email signing.
#include <openssl/cms.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

#include "async_out.hpp"
#include "crlf_bio.hpp"
#include "der_walk.hpp"
#include "envelope_reader.hpp"
#include "headers.hpp"
#include "multipart.hpp"
#include "token/ossl.hpp"
#include "token/smime.hpp"

namespace token::smime {

namespace {

using ossl::Free;
using CmsPtr = std::unique_ptr<CMS_ContentInfo, Free<CMS_ContentInfo, CMS_ContentInfo_free>>;
using StorePtr = std::unique_ptr<X509_STORE, Free<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Free<X509_STORE_CTX, X509_STORE_CTX_free>>;
using BioPtr = ossl::Bio;
struct CertsFree {
  void operator()(STACK_OF(X509) * s) const { sk_X509_pop_free(s, X509_free); }
};
using CertsPtr = std::unique_ptr<STACK_OF(X509), CertsFree>;

std::string openssl_reason() {
  unsigned long code = ERR_peek_last_error();
  const char* r = code ? ERR_reason_error_string(code) : nullptr;
  std::string s = r ? r : "unknown OpenSSL error";
  ERR_clear_error();
  return s;
}

StorePtr trust_store(const VerifyOptions& o) {
  StorePtr store(X509_STORE_new());
  if (o.system_cas && X509_STORE_set_default_paths(store.get()) != 1) ERR_clear_error();
  for (const auto& f : o.ca_files) {
    if (X509_STORE_load_file(store.get(), f.c_str()) != 1) {
      ERR_clear_error();
      throw Error(ErrorKind::Io, "cannot read CA certificates from " + f);
    }
  }
  for (const auto& der : o.ca_der) {
    const auto* p = reinterpret_cast<const unsigned char*>(der.data());
    std::unique_ptr<X509, Free<X509, X509_free>> x(
        d2i_X509(nullptr, &p, static_cast<long>(der.size())));
    // A duplicate of a system CA is not an error.
    if (!x || X509_STORE_add_cert(store.get(), x.get()) != 1) ERR_clear_error();
  }
  return store;
}

std::string describe_signer(X509* cert) {
  char* name = X509_NAME_oneline(X509_get_subject_name(cert), nullptr, 0);
  std::string s = name ? name : "?";
  OPENSSL_free(name);
  if (STACK_OF(OPENSSL_STRING)* emails = X509_get1_email(cert)) {
    if (sk_OPENSSL_STRING_num(emails) > 0)
      s += " <" + std::string(sk_OPENSSL_STRING_value(emails, 0)) + ">";
    X509_email_free(emails);
  }
  return s;
}

// Why CMS_verify failed, in the terms of the signature check.
std::string signature_reason() {
  unsigned long code = ERR_peek_last_error();
  const int reason = ERR_GET_LIB(code) == ERR_LIB_CMS ? ERR_GET_REASON(code) : 0;
  std::string generic = openssl_reason();
  switch (reason) {
    case CMS_R_CONTENT_VERIFY_ERROR:
      return "the content does not match its signature: it was changed after signing";
    case CMS_R_VERIFICATION_FAILURE:
      return "the signature does not verify with the signer's certificate";
    case CMS_R_SIGNER_CERTIFICATE_NOT_FOUND:
      return "the signer's certificate is not in the message";
    default:
      return generic;
  }
}

std::string chain_error(X509_STORE* store, X509* cert, STACK_OF(X509) * untrusted) {
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!ctx || X509_STORE_CTX_init(ctx.get(), store, cert, untrusted) != 1) {
    return "cannot set up certificate verification";
  }
  if (X509_verify_cert(ctx.get()) == 1) return {};
  const int err = X509_STORE_CTX_get_error(ctx.get());
  ERR_clear_error();
  return X509_verify_cert_error_string(err);
}

}  // namespace

std::string check_name(Check c) {
  switch (c) {
    case Check::None:
      return "none";
    case Check::Signature:
      return "signature";
    case Check::Chain:
      return "chain";
    case Check::EmailProtection:
      return "email protection";
    case Check::FromAddress:
      return "From address";
  }
  return "?";
}

namespace {

// RFC 8551 section 3.1: the certificate must carry the sender's address; a
// receiving agent checks it against From.
bool has_email(X509* cert, const std::string& address) {
  bool found = false;
  if (STACK_OF(OPENSSL_STRING)* emails = X509_get1_email(cert)) {
    for (int i = 0; i < sk_OPENSSL_STRING_num(emails); ++i) {
      found = found || mail_address(sk_OPENSSL_STRING_value(emails, i)) == address;
    }
    X509_email_free(emails);
  }
  return found;
}

// The three certificate checks for one signer; false when one failed.
bool check_signer(X509* s, const std::optional<std::string>& from, X509_STORE* store,
                  STACK_OF(X509) * certs, VerifyResult& r) {
  r.signers.push_back(describe_signer(s));
  if (std::string e = chain_error(store, s, certs); !e.empty()) {
    r.failed = Check::Chain;
    r.reason = "certificate of " + r.signers.back() + ": " + e;
  } else if (X509_check_purpose(s, X509_PURPOSE_SMIME_SIGN, 0) != 1) {
    r.failed = Check::EmailProtection;
    r.reason = "certificate of " + r.signers.back() +
               " is not for signing email (keyUsage or extendedKeyUsage emailProtection)";
  } else if (from && !has_email(s, mail_address(*from))) {
    r.failed = Check::FromAddress;
    r.reason = "the message is From " + *from + " but is signed by " + r.signers.back();
  }
  return r.ok();
}

bool is_ed25519(CMS_SignerInfo* si) {
  X509_ALGOR* sig = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, nullptr, nullptr, &sig);
  const ASN1_OBJECT* oid = nullptr;
  if (sig != nullptr) X509_ALGOR_get0(&oid, nullptr, nullptr, sig);
  return oid != nullptr && OBJ_obj2nid(oid) == NID_ED25519;
}

// RFC 5652 section 5.4: the signature covers the DER of the signed
// attributes with the SET OF tag (0x31), in the order they came. OpenSSL
// 3.0 re-encodes them the same way for its own algorithms.
Bytes signed_attributes_der(CMS_SignerInfo* si) {
  Bytes body;
  for (int i = 0; i < CMS_signed_get_attr_count(si); ++i) {
    const Bytes der = ossl::der(CMS_signed_get_attr(si, i), i2d_X509_ATTRIBUTE);
    if (der.empty()) throw Error(ErrorKind::Input, "a signed attribute cannot be encoded");
    body.insert(body.end(), der.begin(), der.end());
  }
  return der::der_tlv(0x31, body);
}

// OpenSSL 3.0's CMS cannot verify Ed25519 (RFC 8419): it asks the default
// provider for Ed25519 with the SHA-512 digest, which it refuses. CMS_verify
// still checks the content against messageDigest; this checks the pure
// Ed25519 signature over the signed attributes with the signer's key.
std::string ed25519_error(CMS_SignerInfo* si) {
  if (CMS_signed_get_attr_count(si) <= 0) {
    return "an Ed25519 signature without signed attributes is not supported";
  }
  X509* cert = nullptr;
  CMS_SignerInfo_get0_algs(si, nullptr, &cert, nullptr, nullptr);
  if (cert == nullptr) return "the signer's certificate is not in the message";
  const Bytes tbs = signed_attributes_der(si);
  const ASN1_OCTET_STRING* sig = CMS_SignerInfo_get0_signature(si);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const int ok = ctx != nullptr &&
                 EVP_DigestVerifyInit_ex(ctx, nullptr, nullptr, nullptr, nullptr,
                                         X509_get0_pubkey(cert), nullptr) == 1 &&
                 EVP_DigestVerify(ctx, ASN1_STRING_get0_data(sig),
                                  static_cast<std::size_t>(ASN1_STRING_length(sig)), tbs.data(),
                                  tbs.size()) == 1;
  EVP_MD_CTX_free(ctx);
  ERR_clear_error();
  return ok ? std::string() : "the signature does not verify with the signer's certificate";
}

// Each signer info's signature over its signed attributes, after CMS_verify
// ran with CMS_NO_ATTR_VERIFY: "" when all verify.
std::string attribute_signatures_error(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
    if (is_ed25519(si)) {
      if (std::string e = ed25519_error(si); !e.empty()) return e;
    } else if (CMS_signed_get_attr_count(si) > 0 && CMS_SignerInfo_verify(si) != 1) {
      ERR_clear_error();
      return "the signature does not verify with the signer's certificate";
    }
  }
  return {};
}

bool has_ed25519_signer(CMS_ContentInfo* cms) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    if (is_ed25519(sk_CMS_SignerInfo_value(infos, i))) return true;
  }
  return false;
}

// An opaque (application/pkcs7-mime) message: OpenSSL's reader, which skips
// the top-level headers, so they are put back in front of the message.
CmsPtr read_opaque(BIO* in, std::string headers, BIO** detached) {
  BIO* prefix = BIO_push(new_prefix_filter(std::move(headers)), in);
  CmsPtr cms(SMIME_read_CMS_ex(prefix, 0, detached, nullptr));
  BIO_pop(prefix);
  BIO_free(prefix);
  if (!cms) throw Error(ErrorKind::Input, "not an S/MIME message: " + openssl_reason());
  return cms;
}

// The signature part's CMS: a detached SignedData (or another type, which
// verify() names).
CmsPtr parse_signature(const Bytes& der) {
  const unsigned char* p = der.data();
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(der.size())));
  if (!cms) {
    throw Error(ErrorKind::Input, "the signature part is not a CMS structure: " + openssl_reason());
  }
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) == NID_pkcs7_signed && !CMS_is_detached(cms.get())) {
    throw Error(ErrorKind::Input,
                "the signature part of the multipart/signed message carries "
                "content of its own");
  }
  return cms;
}

std::string multipart_boundary(const std::string& content_type) {
  const auto boundary = header_param(content_type, "boundary");
  if (!boundary) throw Error(ErrorKind::Input, "the multipart/signed message has no boundary");
  return *boundary;
}

// multipart/signed in a mapped file: the parts are ranges of the mapping
// (split_multipart_signed() over memory; its pass gives the pages back
// behind it), nothing is copied.
CmsPtr read_multipart_mapped(MappedInput& m, const std::string& content_type,
                             MultipartSigned& parts) {
  const std::string boundary = multipart_boundary(content_type);
  // Searched in 256 KiB steps, each step's pages given back after it (as
  // MappedInput::release() goes): a few hundred KiB of the file resident.
  parts = split_multipart_signed(
      m.data(), m.size(), boundary, std::size_t{4} << 20, [&m](std::size_t at) { m.release(at); },
      std::size_t{256} * 1024);
  m.reread();
  return parse_signature(parts.signature);
}

// multipart/signed from a pipe (or any BIO that is not a regular file):
// the body is copied as it comes, in 256 KiB blocks, to an unlinked scratch
// file `body`, which is then mapped and split as a regular file is. Null
// when that body is empty or over MappedInput's 1 GiB; `reread` is then a
// FILE BIO over the scratch file from its start, for read_multipart().
std::unique_ptr<MappedInput> spool_body(BIO* in, BioPtr& body, BioPtr& reread) {
  body.reset(scratch_file());
  std::vector<char> buf(std::size_t{256} * 1024);
  for (;;) {
    const int n = BIO_read(in, buf.data(), static_cast<int>(buf.size()));
    if (n == 0 || (n < 0 && BIO_should_retry(in) != 0)) break;
    if (n < 0) throw Error(ErrorKind::Io, "cannot read the message");
    if (!write_fully(body.get(), buf.data(), static_cast<std::size_t>(n))) {
      throw Error(ErrorKind::Io, "cannot write the message to a scratch file");
    }
  }
  int fd = -1;
  if (BIO_get_fd(body.get(), &fd) < 0 || fd < 0) throw Error(ErrorKind::Io, "no scratch file");
  if (auto m = MappedInput::map_fd(fd, 0)) return m;
  const int again = dup(fd);
  std::FILE* f = again < 0 || lseek(again, 0, SEEK_SET) != 0 ? nullptr : fdopen(again, "rb");
  if (f == nullptr) {
    if (again >= 0) (void)close(again);
    throw Error(ErrorKind::Io, "cannot read the scratch file back");
  }
  reread.reset(BIO_new_fp(f, BIO_CLOSE));
  if (!reread) {
    (void)std::fclose(f);
    throw Error(ErrorKind::Io, "cannot read the scratch file back");
  }
  return nullptr;
}

// multipart/signed over 1 GiB from a pipe: the signed part streams to a
// scratch file as it is read (memory stays flat whatever the size), the
// signature part is kept.
CmsPtr read_multipart(BIO* in, const std::string& content_type, BioPtr& spool) {
  const std::string boundary = multipart_boundary(content_type);
  spool.reset(scratch_file());
  BIO* buffered = BIO_push(BIO_new(BIO_f_buffer()), spool.get());
  BIO_set_write_buffer_size(buffered, 1 << 16);
  Bytes der;
  try {
    der = split_multipart_signed(in, boundary, buffered);
  } catch (...) {
    BIO_pop(buffered);
    BIO_free(buffered);
    throw;
  }
  BIO_pop(buffered);
  BIO_free(buffered);
  if (BIO_seek(spool.get(), 0) != 0) throw Error(ErrorKind::Io, "cannot rewind the scratch file");
  return parse_signature(der);
}

// Writes the content of an opaque signed message to a scratch file as
// split_signed() reads it.
class SpoolSink final : public OctetSink {
 public:
  explicit SpoolSink(BIO* file) : file_(file) {}
  void write(const unsigned char* p, std::size_t n) override {
    if (!write_fully(file_, reinterpret_cast<const char*>(p), n)) {
      throw Error(ErrorKind::Io, "cannot write the signed content to a scratch file");
    }
  }

 private:
  BIO* file_;
};

// An opaque signed message (application/pkcs7-mime signed-data): read in
// one pass (split_signed()), its content spooled to the scratch file
// `spool` (left null when the message carries no content) and the rest
// kept, so that memory stays flat whatever the size; the SignedData comes
// back detached, for CMS_verify() with the spooled content.
CmsPtr read_opaque_streamed(BIO* in, const std::string& headers, BioPtr& spool) {
  BioPtr file(scratch_file());
  SpoolSink sink(file.get());
  const SplitSigned split = split_signed(in, headers, sink);
  if (split.has_content) {
    if (BIO_flush(file.get()) != 1 || BIO_seek(file.get(), 0) != 0) {
      throw Error(ErrorKind::Io, "cannot rewind the scratch file");
    }
    spool = std::move(file);
  }
  const unsigned char* p = split.der.data();
  CmsPtr cms(d2i_CMS_ContentInfo(nullptr, &p, static_cast<long>(split.der.size())));
  if (!cms) throw Error(ErrorKind::Input, "not an S/MIME message: " + openssl_reason());
  return cms;
}

// How much of the signed part SignedContent takes at a time: two of the
// writer's blocks, as sign does (sign.cpp, write_detached_mapped()).
constexpr std::size_t kStep = 2 * kAsyncBlock;

// The signed part of a mapped multipart/signed body as CMS_verify()'s
// detached content, read with CMS_BINARY: it gives the canonical form that
// CMS_verify()'s SMIME_crlf_copy() made of the part before (Canonicalizer;
// a canonical step, the usual case, is given as it lies in the mapping), so
// the digests are over the same bytes. Each step, once CMS has read it
// through its digest BIOs, goes to the asynchronous writer (`out`, or
// nowhere when null) without a copy; the writer gives the step's pages back
// when it has written them and touches the pages of the step after next.
// A C++ exception cannot cross OpenSSL's C frames: it is kept in `error`
// and read() fails.
class SignedContent {
 public:
  // `binary`: the part is given as it is, not in its canonical form (the
  // content of an opaque signed message, which CMS hashes as it is).
  SignedContent(MappedInput& m, std::size_t begin, std::size_t end, BIO* out, bool binary)
      : m_(m), pos_(begin), end_(end), out_(out), bio_(BIO_new(method())), binary_(binary) {
    if (bio_ == nullptr) throw Error(ErrorKind::Internal, "out of memory");
    BIO_set_data(bio_, this);
    BIO_set_init(bio_, 1);
  }
  ~SignedContent() { BIO_free(bio_); }
  SignedContent(const SignedContent&) = delete;
  SignedContent& operator=(const SignedContent&) = delete;
  BIO* bio() const { return bio_; }
  // Rethrows what failed inside read().
  void check() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static SignedContent* of(BIO* b) { return static_cast<SignedContent*>(BIO_get_data(b)); }

  static int read(BIO* b, char* buf, int len) {
    SignedContent* c = of(b);
    BIO_clear_retry_flags(b);
    if (len <= 0) return 0;
    try {
      while (c->left_ == 0) {
        if (!c->next_step()) return 0;
      }
    } catch (...) {
      c->error_ = std::current_exception();
      return -1;
    }
    const std::size_t n = std::min(c->left_, static_cast<std::size_t>(len));
    std::memcpy(buf, c->cur_, n);
    c->cur_ += n;
    c->left_ -= n;
    return static_cast<int>(n);
  }

  static long ctrl(BIO* b, int cmd, long, void*) {
    const SignedContent* c = of(b);
    switch (cmd) {
      case BIO_CTRL_EOF:
        return c->pos_ == c->end_ && c->left_ == 0 ? 1 : 0;
      case BIO_CTRL_FLUSH:
        return 1;
      default:
        return 0;
    }
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* m = [] {
      BIO_METHOD* bm =
          BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tokenkit signed part");
      BIO_meth_set_read(bm, read);
      BIO_meth_set_ctrl(bm, ctrl);
      return bm;
    }();
    return m;
  }

  // Writes the step just read and takes the next; false at the end.
  bool next_step() {
    write_step();
    if (pos_ == end_) {
      canonical_.finish();
      return false;
    }
    const std::size_t k = std::min(kStep, end_ - pos_);
    const char* p = m_.data() + pos_;
    pos_ += k;
    step_ = p;
    step_size_ = k;
    if (binary_ || (scan_block(p, k).canonical && canonical_.pass_through(p, k))) {
      direct_ = true;
      cur_ = p;
      left_ = k;
    } else {
      direct_ = false;
      canon_.clear();
      canonical_.feed(p, k, canon_);
      cur_ = canon_.data();
      left_ = canon_.size();
    }
    return true;
  }

  void write_step() {
    if (step_ == nullptr) return;
    const char* p = step_;
    step_ = nullptr;
    const std::size_t upto = pos_;
    if (out_ == nullptr) {
      m_.release(upto);
      return;
    }
    if (!direct_) write_all(out_, canon_);
    MappedInput& m = m_;
    const auto after_write = [&m, upto] {
      m.release(upto);
      const std::size_t from = std::min(upto + kStep, m.size());
      touch_pages(m.data() + from, std::min(kStep, m.size() - from));
    };
    if (!async_out_write_ref(out_, p, direct_ ? step_size_ : 0, after_write)) {
      ERR_clear_error();
      throw Error(ErrorKind::Io, "cannot write the signed content: " + async_out_error(out_));
    }
  }

  MappedInput& m_;
  std::size_t pos_;  // the next byte of the mapping to take
  std::size_t end_;
  BIO* out_;
  BIO* bio_;
  Canonicalizer canonical_;
  std::string canon_;
  const char* cur_ = nullptr;  // what read() gives next
  std::size_t left_ = 0;
  const char* step_ = nullptr;  // the step being read, not yet written
  std::size_t step_size_ = 0;
  bool direct_ = false;  // the step is given from the mapping, not canon_
  bool binary_;
  std::exception_ptr error_;
};

// CMS_verify() over the signed part of a mapped multipart/signed body (or,
// `binary`, the spooled content of an opaque signed message), with `flags`;
// the content goes to `content` (may be null). Every check of CMS_verify()
// is made: only the source of its detached content differs.
int verify_mapped(CMS_ContentInfo* cms, X509_STORE* store, MappedInput& m,
                  const MultipartSigned& parts, BIO* content, unsigned flags, bool binary) {
  const std::size_t size = parts.content_end - parts.content_begin;
  // id-ct-asciiTextWithCRLF (RFC 5652 errata, OpenSSL's CMS_ASCIICRLF):
  // CMS_verify() then also drops trailing blanks and blank lines, which the
  // Canonicalizer does not; such a part is given to it as it is.
  if (!binary && OBJ_obj2nid(CMS_get0_eContentType(cms)) == NID_id_ct_asciiTextWithCRLF) {
    BioPtr mem(BIO_new_mem_buf(m.data() + parts.content_begin, static_cast<int>(size)));
    if (!mem) throw Error(ErrorKind::Internal, "out of memory");
    // NOLINTNEXTLINE(readability-suspicious-call-argument): dcont, then out
    return CMS_verify(cms, nullptr, store, mem.get(), content, flags);
  }
  std::optional<AsyncOutput> async;
  if (content != nullptr) async.emplace(content);
  SignedContent signed_part(m, parts.content_begin, parts.content_end,
                            async ? async->bio() : nullptr, binary);
  // out = null: CMS reads the content through its digest BIOs to its end
  // (4 KiB at a time) and writes it nowhere; SignedContent writes it.
  const int ok = CMS_verify(cms, nullptr, store, signed_part.bio(), nullptr, flags | CMS_BINARY);
  signed_part.check();
  if (async) async->drain();
  return ok;
}

// RFC 8551 section 2.5.2: what each signer (with a certificate, in the
// order CMS_get0_signers gives them) announced, so that the certificate
// store can keep it with the certificate.
void signer_announcements(CMS_ContentInfo* cms, VerifyResult& r) {
  STACK_OF(CMS_SignerInfo)* infos = CMS_get0_SignerInfos(cms);
  for (int i = 0; i < sk_CMS_SignerInfo_num(infos); ++i) {
    CMS_SignerInfo* si = sk_CMS_SignerInfo_value(infos, i);
    X509* cert = nullptr;
    CMS_SignerInfo_get0_algs(si, nullptr, &cert, nullptr, nullptr);
    if (cert == nullptr) continue;
    std::string caps;
    const auto* seq = static_cast<const ASN1_STRING*>(
        CMS_signed_get0_data_by_OBJ(si, OBJ_nid2obj(NID_SMIMECapabilities), -3, V_ASN1_SEQUENCE));
    if (seq != nullptr) {
      caps.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(seq)),
                  static_cast<std::size_t>(ASN1_STRING_length(seq)));
    }
    std::time_t when = 0;
    const int at = CMS_signed_get_attr_by_NID(si, NID_pkcs9_signingTime, -1);
    const ASN1_TYPE* t =
        at < 0 ? nullptr : X509_ATTRIBUTE_get0_type(CMS_signed_get_attr(si, at), 0);
    std::tm tm{};
    if (t != nullptr && (t->type == V_ASN1_UTCTIME || t->type == V_ASN1_GENERALIZEDTIME) &&
        ASN1_TIME_to_tm(t->value.utctime, &tm) == 1) {
      when = timegm(&tm);
    }
    r.signer_capabilities.push_back(std::move(caps));
    r.signer_times.push_back(when);
  }
  ERR_clear_error();
}

}  // namespace

VerifyResult verify(BIO* in, BIO* content, const VerifyOptions& o) {
  ERR_clear_error();
  StorePtr store = trust_store(o);
  std::string headers = read_header_block(in);
  const std::optional<std::string> from = header_value(headers, "From");
  const std::string content_type = header_value(headers, "Content-Type").value_or("");
  BioPtr spool;
  BIO* detached = nullptr;
  // multipart/signed in a regular file: read where it lies (mapped).
  const bool multipart = media_type(content_type) == "multipart/signed";
  // application/pkcs7-mime: read in one pass, its content spooled.
  const bool opaque = media_type(content_type) == "application/pkcs7-mime" ||
                      media_type(content_type) == "application/x-pkcs7-mime";
  std::unique_ptr<MappedInput> mapped = multipart ? MappedInput::map(in) : nullptr;
  // From a pipe: the body spooled whole, then mapped.
  BioPtr body;
  BioPtr reread;
  if (multipart && !mapped) mapped = spool_body(in, body, reread);
  MultipartSigned parts;
  CmsPtr cms = mapped      ? read_multipart_mapped(*mapped, content_type, parts)
               : multipart ? read_multipart(reread.get(), content_type, spool)
               : opaque    ? read_opaque_streamed(in, headers, spool)
                           : read_opaque(in, std::move(headers), &detached);
  BioPtr detached_owner(detached);
  // A part spooled by read_multipart() or read_opaque_streamed() is then
  // read as a mapped file is:
  // the scratch file mapped, the whole of it the signed part.
  int spool_fd = -1;
  if (spool && BIO_get_fd(spool.get(), &spool_fd) > 0 &&
      (mapped = MappedInput::map_fd(spool_fd, 0)) != nullptr) {
    parts.content_begin = 0;
    parts.content_end = mapped->size();
  }
  // Else (an empty part) CMS reads the spooled part through a read buffer:
  // the bare descriptor BIO would be read a byte at a time (2 million
  // read() calls for 2 MB).
  if (spool && !mapped) {
    BIO* buffered = BIO_new(BIO_f_buffer());
    BIO_set_read_buffer_size(buffered, 1 << 16);
    detached = BIO_push(buffered, spool.release());
    spool.reset(detached);
  }
  if (OBJ_obj2nid(CMS_get0_type(cms.get())) != NID_pkcs7_signed) {
    throw Error(ErrorKind::Input,
                "not a signed S/MIME message (it is " +
                    std::string(OBJ_nid2ln(OBJ_obj2nid(CMS_get0_type(cms.get())))) + ")");
  }
  VerifyResult r;
  // CMS_NO_SIGNER_CERT_VERIFY: this step is the signature alone; the chain
  // and the purpose are the next two checks, so each failure is named.
  // The detached content is CMS_verify's `dcont`; `content` is where it writes.
  // With an Ed25519 signer, CMS_verify checks the content digests only and
  // the signatures over the signed attributes are checked after it.
  const bool ed25519 = has_ed25519_signer(cms.get());
  const unsigned flags = CMS_NO_SIGNER_CERT_VERIFY | (ed25519 ? CMS_NO_ATTR_VERIFY : 0);
  const int verified =
      mapped ? verify_mapped(cms.get(), store.get(), *mapped, parts, content, flags, opaque)
             // (an opaque message's content, spooled, is hashed as it is)
             // NOLINTNEXTLINE(readability-suspicious-call-argument): dcont, then out
             : CMS_verify(cms.get(), nullptr, store.get(), detached, content,
                          flags | (opaque ? CMS_BINARY : 0U));
  if (verified != 1) {
    r.failed = Check::Signature;
    r.reason = signature_reason();
    return r;
  }
  if (ed25519) {
    if (std::string e = attribute_signatures_error(cms.get()); !e.empty()) {
      r.failed = Check::Signature;
      r.reason = e;
      return r;
    }
  }
  CertsPtr signers(CMS_get0_signers(cms.get()));
  CertsPtr certs(CMS_get1_certs(cms.get()));
  for (int i = 0; i < sk_X509_num(signers.get()); ++i) {
    if (!check_signer(sk_X509_value(signers.get(), i), from, store.get(), certs.get(), r)) break;
  }
  for (int i = 0; r.ok() && i < sk_X509_num(signers.get()); ++i) {
    const Bytes der = ossl::der(sk_X509_value(signers.get(), i), i2d_X509);
    if (!der.empty()) r.signer_der.emplace_back(der.begin(), der.end());
  }
  if (r.ok()) signer_announcements(cms.get(), r);
  // CMS_get0_signers gives references the CMS keeps: release the stack only.
  sk_X509_free(signers.release());
  return r;
}

}  // namespace token::smime
