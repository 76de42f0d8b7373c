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
void sign(const TokenKey& key, BIO* in, BIO* out, const SignOptions& options);

struct VerifyOptions {
  std::vector<std::string> ca_files;  // PEM trust anchors
  bool system_cas = true;             // OpenSSL's default verify paths
};

// Which check failed, in the words the user sees.
enum class Check { None, Signature, Chain, EmailProtection };

struct VerifyResult {
  Check failed = Check::None;
  std::string reason;                // why, when a check failed
  std::vector<std::string> signers;  // subject (and email) of each signer
  bool ok() const { return failed == Check::None; }
};

// Verifies the S/MIME message read from `in` and writes the signed content
// (the MIME entity) to `content`, which the caller must discard unless the
// result is ok(). Checks, in order: the signature over the content, the
// signer's certificate chain to the trust store, and the certificate's use
// for email signing (keyUsage, extendedKeyUsage emailProtection). Throws
// Error(Input) for input that is not an S/MIME signed message.
VerifyResult verify(BIO* in, BIO* content, const VerifyOptions& options);

std::string check_name(Check c);  // "signature", "chain", "email protection"

}  // namespace token::smime
