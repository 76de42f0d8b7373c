// S/MIME (RFC 8551) with keys on tokens: sign with a TokenKey, verify
// against a trust store. Messages stream from a BIO to a BIO, so memory does
// not grow with the message.
#pragma once

#include <openssl/types.h>

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "token/engine.hpp"

namespace token::smime {

struct SignOptions {
  bool opaque = false;  // application/pkcs7-mime signed-data, not multipart/signed
  bool pss = false;     // RSA-PSS with salt = hash length (RFC 8551 practice)
  std::string digest = "SHA256";
};

// Signs the MIME entity read from `in` (headers, blank line, body) and
// writes the S/MIME message to `out`. The entity is canonicalised to CRLF
// line ends as it is signed; the whole output has CRLF line ends. The signer
// certificate is the one on the token with the key's CKA_ID. Throws
// token::Error naming the key when the token or OpenSSL fails.
struct SignResult {
  // RFC 8551 section 3.1.2: a signed entity must be 7-bit; relays that
  // re-encode 8-bit bytes break the signature. Each 8-bit leaf body, in
  // multipart and message/rfc822 entities too, is given a transfer encoding
  // before it is signed (`encoded` says which: "quoted-printable" for text,
  // "base64" otherwise, or "quoted-printable and base64"); 8-bit bytes no
  // encoding can cover (header fields, preambles) are signed as given, and
  // noted here.
  bool eight_bit = false;
  std::string encoded;
};
SignResult sign(const TokenKey& key, BIO* in, BIO* out, const SignOptions& options);

struct VerifyOptions {
  std::vector<std::string> ca_files;  // PEM trust anchors
  bool system_cas = true;             // OpenSSL's default verify paths
  std::vector<std::string> ca_der;    // more trust anchors, DER (a token's CA certificates)
};

// Which check failed, in the words the user sees.
enum class Check { None, Signature, Chain, EmailProtection, FromAddress };

struct VerifyResult {
  Check failed = Check::None;
  std::string reason;                   // why, when a check failed
  std::vector<std::string> signers;     // subject (and email) of each signer
  std::vector<std::string> signer_der;  // each signer's certificate (DER), when ok()
  // Parallel to signer_der: the SMIMECapabilities the signer announced (the
  // attribute's DER, empty when absent; RFC 8551 section 2.5.2) and its
  // signingTime (0 when absent).
  std::vector<std::string> signer_capabilities;
  std::vector<std::time_t> signer_times;
  bool ok() const { return failed == Check::None; }
};

// Verifies the S/MIME message read from `in` and writes the signed content
// (the MIME entity) to `content`, which the caller must discard unless the
// result is ok(). Checks, in order: the signature over the content, the
// signer's certificate chain to the trust store, and the certificate's use
// for email signing (keyUsage, extendedKeyUsage emailProtection), and when
// the message has a From field, that the certificate carries its address. Throws
// Error(Input) for input that is not an S/MIME signed message.
VerifyResult verify(BIO* in, BIO* content, const VerifyOptions& options);

std::string check_name(Check c);  // "signature", "chain", "email protection", ...

struct EncryptOptions {
  bool cbc = false;     // AES-CBC EnvelopedData instead of AES-GCM AuthEnvelopedData
  bool aes128 = false;  // 128-bit AES instead of 256-bit (a recipient announced no more)
  bool oaep = false;    // RSA recipients: RSAES-OAEP with SHA-256 instead of PKCS#1 v1.5
  bool binary = false;  // the input is canonical already (a signed message): no CRLF pass
};

// Encrypts the MIME entity read from `in` to each recipient certificate
// (RSA: key transport; EC: ECDH ephemeral-static, RFC 5753, X9.63 KDF with
// SHA-256; X25519: RFC 8418, HKDF-SHA256 and AES-256 key wrap) and writes
// application/pkcs7-mime to `out`, streaming, CRLF. Throws Error(Input)
// naming a certificate whose key cannot be used.
void encrypt(const std::vector<X509*>& recipients, BIO* in, BIO* out,
             const EncryptOptions& options);

// "AES-256-GCM", "AES-128-CBC", ...: the content cipher of `options`.
std::string cipher_name(const EncryptOptions& options);

// The content-encryption algorithms, of those tokenkit encrypts with, that
// an SMIMECapabilities value (DER; from a signed message's attribute or a
// certificate's RFC 4262 extension) lists. `readable` is false for anything
// that is not a SEQUENCE OF SMIMECapability (or is over the size limit);
// then nothing is known. Never throws for bad input.
constexpr std::size_t kMaxCapabilitiesBytes = std::size_t{16} * 1024;
struct ContentCiphers {
  bool readable = false;
  bool aes256_gcm = false, aes128_gcm = false, aes256_cbc = false, aes128_cbc = false;
};
ContentCiphers announced_ciphers(std::string_view der);

struct DecryptOptions {
  // `out` is a private temporary file that the caller deletes unless
  // decrypt() returns, so that nothing written to it is ever seen otherwise
  // (tokenkit's Output: a temporary name renamed onto --out on success, or
  // copied to stdout after it). Then the content is written to `out` as it
  // is decrypted, in the one pass over the message, before the AES-GCM tag
  // (which follows the content) is checked. Without it, AES-GCM content
  // goes to an unlinked scratch file first and reaches `out` only once the
  // tag verified (RFC 5083: no plaintext is released before), which costs a
  // second write and read of the content; AES-CBC content, which has no
  // tag, streams to `out` as it is decrypted either way.
  bool discardable_output = false;
};

// Decrypts an S/MIME enveloped or authenticated-enveloped message with the
// token key, for the recipient info that matches the key's certificate, and
// writes the content to `out`, reading the message once (see
// DecryptOptions). When this throws, what is in `out` must be discarded:
// AES-CBC content and, with discardable_output, AES-GCM content may be
// there in part. Throws Error(NotFound) when the message is not for this
// key, Error(Input) for a message that is not whole, not valid, or whose
// tag does not verify, and for AuthEnvelopedData with authAttrs (RFC 5083
// makes them the cipher's associated data, which must come before the
// content, and the message has them after it).
void decrypt(const TokenKey& key, BIO* in, BIO* out, const DecryptOptions& options = {});

// What decrypt() sees of a message before it needs the key: the same
// reading (MIME, base64, CMS) and checks, for the fuzz target of that input
// path. Throws Error(Input) for anything but an enveloped or authenticated-
// enveloped message.
struct EnvelopeInfo {
  bool authenticated = false;         // AuthEnvelopedData (AES-GCM)
  std::vector<int> recipient_types;   // CMS_RECIPINFO_TRANS, _AGREE, ...
  std::size_t x25519_recipients = 0;  // RFC 8418 KARIs among the _AGREE ones, checked
};
EnvelopeInfo inspect_encrypted(BIO* in);

}  // namespace token::smime
