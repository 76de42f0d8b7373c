// S/MIME (RFC 8551) with keys on tokens: sign with a TokenKey, verify
// against a trust store. Messages stream from a BIO to a BIO, so memory does
// not grow with the message.
#pragma once

#include <openssl/types.h>

#include <string>
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
  // re-encode 8-bit bytes break the signature. An 8-bit body of a one-part
  // entity is given a transfer encoding before it is signed (`encoded` says
  // which: "quoted-printable" for text, "base64" otherwise); 8-bit bytes in a
  // multipart entity are signed as given, and noted here.
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
  bool cbc = false;     // AES-256-CBC EnvelopedData instead of AES-256-GCM AuthEnvelopedData
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

// Decrypts an S/MIME enveloped or authenticated-enveloped message with the
// token key, for the recipient info that matches the key's certificate, and
// writes the content to `out`. With AES-GCM the tag is checked only at the
// end: the caller must discard `out` when this throws. Throws
// Error(NotFound) when the message is not for this key.
void decrypt(const TokenKey& key, BIO* in, BIO* out);

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
