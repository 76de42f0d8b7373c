#include "envelope_reader.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>

#include <cstring>
#include <memory>
#include <vector>

#include "crlf_bio.hpp"
#include "der_walk.hpp"
#include "headers.hpp"
#include "multipart.hpp"
#include "token/error.hpp"

namespace token::smime {

namespace {

[[noreturn]] void bad(const std::string& what) {
  throw Error(ErrorKind::Input, "the encrypted message " + what);
}

// BER (X.690) read from a stream, one element at a time. Only what CMS
// uses: one-byte tags, definite lengths up to 2^56, indefinite lengths on
// constructed elements.
class Ber {
 public:
  // `noun` names the message in errors ("the encrypted message"), `part`
  // its content ("encrypted content").
  Ber(BIO* in, std::size_t limit, const char* noun = "the encrypted message",
      const char* part = "encrypted content")
      : in_(in), limit_(limit), noun_(noun), part_(part) {}
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::Input, std::string(noun_) + " " + what);
  }
  struct Header {
    unsigned char tag = 0;
    bool indefinite = false;
    std::uint64_t length = 0;
    std::uint64_t end = 0;  // position after the content (definite)
    Bytes raw;              // the identifier and length octets
    bool constructed() const { return (tag & 0x20) != 0; }
    bool eoc() const { return tag == 0 && !indefinite && length == 0; }
  };

  std::uint64_t pos() const { return pos_; }

  Header header() {
    Header h;
    h.tag = byte(h.raw);
    if ((h.tag & 0x1f) == 0x1f) fail("uses a multi-byte tag, which CMS does not");
    const unsigned char first = byte(h.raw);
    if (first == 0x80) {
      if (!h.constructed()) fail("has an indefinite length on a primitive element");
      h.indefinite = true;
    } else if (first & 0x80) {
      const int n = first & 0x7f;
      if (n > 7) fail("has a length over 2^56 bytes");
      for (int i = 0; i < n; ++i) h.length = (h.length << 8) | byte(h.raw);
    } else {
      h.length = first;
    }
    h.end = pos_ + h.length;
    return h;
  }

  // The rest of an element whose header was read, appended to `out`
  // (header included), within the size limit.
  void rest(const Header& h, Bytes& out) {
    out.insert(out.end(), h.raw.begin(), h.raw.end());
    if (!h.indefinite) {
      take(h.length, out);
      return;
    }
    for (int guard = 0;; ++guard) {
      if (guard > 100000) fail("has too many elements");
      Header c = header();
      if (c.eoc()) {
        out.insert(out.end(), c.raw.begin(), c.raw.end());
        return;
      }
      nest(+1);
      rest(c, out);
      nest(-1);
    }
  }
  Bytes element() {
    Bytes out;
    rest(header(), out);
    return out;
  }

  // Octets of an OCTET STRING, primitive or constructed (X.690 section
  // 8.7), the content of `h`, to `out` in chunks.
  std::uint64_t octets(const Header& h, OctetSink& out) {
    if (!h.constructed()) {
      copy(h.length, out);
      return h.length;
    }
    std::uint64_t total = 0;
    while (h.indefinite || pos_ < h.end) {
      Header c = header();
      if (c.eoc()) {
        if (!h.indefinite) fail("has an end-of-contents inside a definite length");
        return total;
      }
      if ((c.tag & 0x1f) != 0x04) fail(std::string("has a non-OCTET STRING piece in its ") + part_);
      nest(+1);
      total += octets(c, out);
      nest(-1);
    }
    if (pos_ != h.end) fail(std::string("has its ") + part_ + " longer than its length");
    return total;
  }

  void expect_eoc() {
    Header c = header();
    if (!c.eoc()) fail("is missing an end-of-contents marker");
  }

 private:
  unsigned char byte(Bytes& raw) {
    unsigned char c = 0;
    if (BIO_read(in_, &c, 1) != 1) cut_short();
    ++pos_;
    raw.push_back(c);
    return c;
  }
  void take(std::uint64_t n, Bytes& out) {
    if (out.size() + n > limit_) fail("has a structure over the size limit");
    const std::size_t at = out.size();
    out.resize(at + n);
    read_exactly(out.data() + at, n);
  }
  void read_exactly(unsigned char* p, std::uint64_t n) {
    while (n > 0) {
      const int r = BIO_read(in_, p, static_cast<int>(std::min<std::uint64_t>(n, 1 << 20)));
      if (r <= 0) cut_short();
      p += r;
      n -= static_cast<std::uint64_t>(r);
      pos_ += static_cast<std::uint64_t>(r);
    }
  }
  void copy(std::uint64_t n, OctetSink& out) {
    if (buf_.empty()) buf_.resize(std::size_t{64} * 1024);
    while (n > 0) {
      const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(n, buf_.size()));
      read_exactly(buf_.data(), chunk);
      out.write(buf_.data(), chunk);
      n -= chunk;
    }
  }
  [[noreturn]] void cut_short() {
    // The base64 decoder says -1 at a character outside the alphabet.
    if (BIO_ctrl(in_, BIO_CTRL_EOF, 0, nullptr) < 0) fail("is not valid base64");
    fail("is cut short");
  }
  void nest(int d) {
    depth_ += d;
    if (depth_ > 64) fail("is nested too deeply");
  }

  BIO* in_;
  std::size_t limit_;
  const char* noun_;
  const char* part_;
  std::uint64_t pos_ = 0;
  int depth_ = 0;
  std::vector<unsigned char> buf_;  // the encrypted content on its way
};

// DER of the OIDs (RFC 5652 section 6.1, RFC 5083 section 1).
const Bytes kEnveloped{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03};
const Bytes kAuthEnveloped{0x06, 0x0b, 0x2a, 0x86, 0x48, 0x86, 0xf7,
                           0x0d, 0x01, 0x09, 0x10, 0x01, 0x17};
const Bytes kSigned{0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};

// Whether a definite container whose content ends at `end` (or an
// indefinite one, ended by end-of-contents) has more elements.
struct Container {
  Ber::Header h;
  bool more(Ber& ber, Ber::Header& next) const {
    if (!h.indefinite) {
      if (ber.pos() > h.end) ber.fail("has an element longer than its container");
      if (ber.pos() == h.end) return false;
      next = ber.header();
      return true;
    }
    next = ber.header();
    return !next.eoc();
  }
};

// The ContentInfo of content type `oid` around the (Auth)EnvelopedData
// fields `env`.
Bytes content_info(const Bytes& oid, const Bytes& env) {
  Bytes ci_content = oid;
  const Bytes inner = der::der_tlv(0xa0, der::der_tlv(0x30, env));
  ci_content.insert(ci_content.end(), inner.begin(), inner.end());
  return der::der_tlv(0x30, ci_content);
}

// The CMS of a message body as its Content-Transfer-Encoding gives it: the
// body itself (binary) or its base64 decoding (the default). `noun` names
// the message in the error.
class CmsBody {
 public:
  CmsBody(BIO* in, const std::string& headers, const std::string& noun) : src_(in) {
    const std::string cte =
        lower(trim(header_value(headers, "Content-Transfer-Encoding").value_or("base64")));
    if (cte == "base64") {
      b64_ = new_base64_decoder();
      src_ = BIO_push(b64_, in);
    } else if (cte != "binary") {
      throw Error(ErrorKind::Input, noun + " is in " + cte + ", not base64 or binary");
    }
  }
  ~CmsBody() {
    if (b64_ != nullptr) {
      BIO_pop(b64_);
      BIO_free(b64_);
    }
  }
  CmsBody(const CmsBody&) = delete;
  CmsBody& operator=(const CmsBody&) = delete;
  BIO* bio() const { return src_; }

 private:
  BIO* src_;
  BIO* b64_ = nullptr;
};

// The ContentInfo (RFC 5652 section 3) around a message's CMS: built, it
// has read the content type; open() goes into its [0] to the SEQUENCE of
// that type (`type` names it in the error); finish() refuses anything
// after it in the [0] or the ContentInfo, which is not CMS.
class ContentInfo {
 public:
  explicit ContentInfo(Ber& ber) : ber_(ber) {
    outer_.h = ber.header();
    if (outer_.h.tag != 0x30) ber.fail("is not a CMS ContentInfo");
    Ber::Header h;
    if (!outer_.more(ber, h) || h.tag != 0x06) ber.fail("has no content type");
    ber.rest(h, oid_);
  }
  // The content type's DER (tag and length included).
  const Bytes& oid() const { return oid_; }
  Container open(const std::string& type) {
    Ber::Header h;
    if (!outer_.more(ber_, h) || h.tag != 0xa0) ber_.fail("has no content");
    explicit0_.h = h;
    Ber::Header e;
    if (!explicit0_.more(ber_, e) || e.tag != 0x30) ber_.fail("has no " + type);
    return Container{e};
  }
  void finish() {
    Ber::Header extra;
    if (explicit0_.more(ber_, extra) || outer_.more(ber_, extra)) {
      ber_.fail("has trailing elements");
    }
  }

 private:
  Ber& ber_;
  Container outer_;
  Container explicit0_;
  Bytes oid_;
};

// The (Auth)EnvelopedData's fields around the encrypted content.
Bytes read_envelope(Ber& ber, const Container& env, const Bytes& oid, CiphertextSink& ciphertext,
                    SplitEnvelope& out) {
  Bytes content;
  Ber::Header h;
  bool eci_seen = false;
  while (env.more(ber, h)) {
    // RFC 5652 section 6.1: version, originatorInfo [0], recipientInfos
    // SET, then encryptedContentInfo, the first SEQUENCE after the SET.
    if (h.tag != 0x30 || eci_seen) {
      const std::size_t at = content.size();
      ber.rest(h, content);
      // RFC 5083 section 2.1: after authEncryptedContentInfo, authAttrs
      // [1], mac OCTET STRING, unauthAttrs [2].
      if (eci_seen && out.authenticated && (h.tag & 0xdf) == 0x04) {
        out.mac.assign(content.begin() + static_cast<std::ptrdiff_t>(at), content.end());
      }
      if (eci_seen && out.authenticated && h.tag == 0xa1) out.auth_attrs = true;
      continue;
    }
    eci_seen = true;
    Container eci{h};
    Bytes fields;
    Ber::Header f;
    if (!eci.more(ber, f) || f.tag != 0x06) bad("has no content type in its encryptedContentInfo");
    ber.rest(f, fields);
    if (!eci.more(ber, f) || f.tag != 0x30) bad("has no content encryption algorithm");
    ber.rest(f, fields);
    if (eci.more(ber, f)) {
      // encryptedContent [0] IMPLICIT OCTET STRING, primitive or constructed.
      if ((f.tag & 0xdf) != 0x80) bad("has an unexpected element in its encryptedContentInfo");
      Bytes head = content;
      const Bytes fields_der = der::der_tlv(0x30, fields);
      head.insert(head.end(), fields_der.begin(), fields_der.end());
      if (out.authenticated) {
        // A stand-in mac: the ContentInfo must be whole for OpenSSL to read.
        const Bytes mac = der::der_tlv(0x04, Bytes(16, 0));
        head.insert(head.end(), mac.begin(), mac.end());
      }
      ciphertext.begin(content_info(oid, head), out.authenticated);
      out.has_content = true;
      out.ciphertext_bytes = ber.octets(f, ciphertext);
      Ber::Header end;
      if (eci.more(ber, end)) bad("has more than the encrypted content in encryptedContentInfo");
    }
    const Bytes eci_der = der::der_tlv(0x30, fields);
    content.insert(content.end(), eci_der.begin(), eci_der.end());
  }
  if (!eci_seen) bad("has no encryptedContentInfo");
  return content;
}

}  // namespace

SplitEnvelope split_envelope(BIO* in, CiphertextSink& ciphertext, std::size_t limit) {
  const std::string headers = read_header_block(in, std::size_t{256} * 1024);
  const auto content_type = header_value(headers, "Content-Type");
  const std::string type = media_type(content_type.value_or(""));
  if (type != "application/pkcs7-mime" && type != "application/x-pkcs7-mime") {
    throw Error(ErrorKind::Input, "not an encrypted S/MIME message (its Content-Type is " +
                                      (type.empty() ? std::string("missing") : type) + ")");
  }
  const CmsBody body(in, headers, "the encrypted message");
  SplitEnvelope out;
  Ber ber(body.bio(), limit);
  ContentInfo ci(ber);
  if (ci.oid() != kEnveloped && ci.oid() != kAuthEnveloped) {
    throw Error(ErrorKind::Input, "not an encrypted S/MIME message (it is another CMS type)");
  }
  out.authenticated = ci.oid() == kAuthEnveloped;
  const Bytes env = read_envelope(ber, ci.open("EnvelopedData"), ci.oid(), ciphertext, out);
  ci.finish();
  out.der = content_info(ci.oid(), env);
  return out;
}

namespace {

// The SignedData's fields with the eContent left out, its octets sent to
// `content` (RFC 5652 section 5.1: version, digestAlgorithms SET, then
// encapContentInfo, the first SEQUENCE; certificates [0], crls [1] and
// signerInfos SET after it).
Bytes read_signed_data(Ber& ber, const Container& sd, OctetSink& content, SplitSigned& out) {
  Bytes fields;
  Ber::Header h;
  bool eci_seen = false;
  while (sd.more(ber, h)) {
    if (h.tag != 0x30 || eci_seen) {
      ber.rest(h, fields);
      continue;
    }
    eci_seen = true;
    Container eci{h};
    Bytes eci_fields;
    Ber::Header f;
    if (!eci.more(ber, f) || f.tag != 0x06) ber.fail("has no content type in its encapContentInfo");
    ber.rest(f, eci_fields);
    if (eci.more(ber, f)) {
      // eContent [0] EXPLICIT OCTET STRING, primitive or constructed.
      if (f.tag != 0xa0) ber.fail("has an unexpected element in its encapContentInfo");
      Container explicit0{f};
      Ber::Header o;
      if (!explicit0.more(ber, o) || (o.tag & 0xdf) != 0x04) {
        ber.fail("has no OCTET STRING in its eContent");
      }
      out.has_content = true;
      out.content_bytes = ber.octets(o, content);
      Ber::Header end;
      if (explicit0.more(ber, end) || eci.more(ber, end)) {
        ber.fail("has more than the content in its encapContentInfo");
      }
    }
    const Bytes eci_der = der::der_tlv(0x30, eci_fields);
    fields.insert(fields.end(), eci_der.begin(), eci_der.end());
  }
  if (!eci_seen) ber.fail("has no encapContentInfo");
  return fields;
}

// The long name of the CMS content type whose DER (tag and length
// included) is `oid`.
std::string content_type_name(const Bytes& oid) {
  const unsigned char* p = oid.data();
  ASN1_OBJECT* o = d2i_ASN1_OBJECT(nullptr, &p, static_cast<long>(oid.size()));
  const int nid = o != nullptr ? OBJ_obj2nid(o) : NID_undef;
  ASN1_OBJECT_free(o);
  ERR_clear_error();
  return nid != NID_undef ? OBJ_nid2ln(nid) : "an unknown CMS type";
}

}  // namespace

SplitSigned split_signed(BIO* in, const std::string& headers, OctetSink& content,
                         std::size_t limit) {
  const CmsBody body(in, headers, "the signed message");
  SplitSigned out;
  Ber ber(body.bio(), limit, "the signed message", "content");
  ContentInfo ci(ber);
  if (ci.oid() != kSigned) {
    throw Error(ErrorKind::Input,
                "not a signed S/MIME message (it is " + content_type_name(ci.oid()) + ")");
  }
  const Bytes sd = read_signed_data(ber, ci.open("SignedData"), content, out);
  ci.finish();
  out.der = content_info(kSigned, sd);
  return out;
}

}  // namespace token::smime
