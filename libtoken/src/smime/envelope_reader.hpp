// A one-pass reader for S/MIME encrypted messages. OpenSSL 3.0 parses a CMS
// message whole (the 100 MB of ciphertext with it) before it decrypts
// anything; this reader walks the BER as it is base64-decoded and hands the
// encrypted content to a sink as it comes, keeping the rest, so that the
// content can be decrypted while the message is read (envelope.cpp).
#pragma once

#include <openssl/bio.h>

#include <string>

#include "token/attributes.hpp"

namespace token::smime {

// Takes the octets of a message's content as a split_*() reader reads them.
class OctetSink {
 public:
  virtual ~OctetSink() = default;
  // The next octets of the content.
  virtual void write(const unsigned char* p, std::size_t n) = 0;
};

// Takes the encrypted content of a message as split_envelope() reads it.
class CiphertextSink : public OctetSink {
 public:
  // The encrypted content begins. `head` is the ContentInfo in DER with
  // what came before the content (version, originatorInfo, recipientInfos,
  // the content type and encryption algorithm), the encryptedContent left
  // out (RFC 5652 section 6.1: "supplied by other means") and nothing after
  // it but, for AuthEnvelopedData (RFC 5083), a stand-in mac of 16 zero
  // bytes: the real mac comes after the content (SplitEnvelope::mac).
  // Not called for a message without encryptedContent.
  virtual void begin(const Bytes& head, bool authenticated) = 0;
};

struct SplitEnvelope {
  // The ContentInfo (EnvelopedData or AuthEnvelopedData) in DER, with the
  // encryptedContent left out: the whole structure but for the content.
  Bytes der;
  bool authenticated = false;  // AuthEnvelopedData
  bool has_content = false;    // encryptedContent was there (begin() was called)
  std::uint64_t ciphertext_bytes = 0;
  // AuthEnvelopedData: the mac (the OCTET STRING element, as it was read)
  // and whether authAttrs (RFC 5083 section 2.1) came with it.
  Bytes mac;
  bool auth_attrs = false;
};

// Reads an encrypted S/MIME message from `in`: the top-level header block
// (Content-Type application/pkcs7-mime, base64 or binary), then the CMS,
// handing the encrypted content's octets to `ciphertext`. Throws
// Error(Input) naming what is wrong: not MIME, not an encrypted message, BER
// it cannot follow, a structure cut short; and what the sink throws.
// Structures other than the ciphertext are limited to `limit` bytes.
SplitEnvelope split_envelope(BIO* in, CiphertextSink& ciphertext,
                             std::size_t limit = std::size_t{4} << 20);

struct SplitSigned {
  // The ContentInfo (SignedData) in DER with the eContent left out: a
  // detached SignedData (RFC 5652 section 5.2) whose content is what went
  // to the sink, for CMS_verify() as its detached content.
  Bytes der;
  bool has_content = false;  // eContent was there
  std::uint64_t content_bytes = 0;
};

// Reads the body of an opaque signed S/MIME message (application/pkcs7-mime,
// smime-type=signed-data) from `in`, whose header block `headers` was read
// already: the CMS, base64 or binary as Content-Transfer-Encoding says,
// handing the octets of the encapsulated content to `content` as they come.
// OpenSSL 3.0 would read the whole message (content and all) into memory
// first. Throws Error(Input) naming what is wrong: not signed data (naming
// the CMS type it is), BER it cannot follow, a structure cut short; and
// what the sink throws. Structures other than the content are limited to
// `limit` bytes.
SplitSigned split_signed(BIO* in, const std::string& headers, OctetSink& content,
                         std::size_t limit = std::size_t{4} << 20);

}  // namespace token::smime
