// Keys born on the token, and the certificates a CA returns for them.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/engine.hpp"
#include "token/session.hpp"
#include "token/uri.hpp"

namespace token {

struct KeySpec {
  enum class Type { Rsa, Ec, Ed25519, X25519 } type = Type::Rsa;
  unsigned rsa_bits = 3072;
  std::string curve = "P-256";  // P-256, P-384, P-521
};

// "rsa:3072", "rsa" (3072), "ec:p256", "ec:P-384", "ed25519", "x25519" (key agreement
// only: S/MIME decryption, RFC 8418). Error(Usage) otherwise.
KeySpec parse_key_spec(const std::string& text);
std::string describe(const KeySpec& spec);

struct GeneratedKey {
  CK_OBJECT_HANDLE private_key = CK_INVALID_HANDLE;
  CK_OBJECT_HANDLE public_key = CK_INVALID_HANDLE;
  Bytes id;
};

// C_GenerateKeyPair: private key sensitive, never extractable, with a usage
// that fits the type; CKA_ID = `id` or, by default, NSS's id (SHA-1 of the
// modulus or of the EC point), set on both halves after generation.
GeneratedKey generate_key_pair(Session& session, const KeySpec& spec, const std::string& label,
                               const std::optional<Bytes>& id);

struct StoredCertificate {
  Bytes id;
  std::string label;
  bool already_present = false;
};

// Stores `cert_der` next to the key pair whose public key it certifies: the
// key's CKA_ID and (unless `label` is given) its label. Error(NotFound) when
// no key on the token matches.
StoredCertificate import_certificate(Session& session, const Bytes& cert_der,
                                     const std::optional<std::string>& label,
                                     const std::string& source);

struct CsrRequest {
  std::string subject;              // "/CN=Alice Example/O=Example Corp"
  std::vector<std::string> emails;  // subjectAltName rfc822Name, and what S/MIME needs
};

// A PKCS#10 request for the key `key_uri` names on the session's token,
// signed on the token (SHA-256; Ed25519 as it is), with subjectAltName,
// keyUsage and extendedKeyUsage=emailProtection for S/MIME. PEM. `options`
// give the PIN a CKA_ALWAYS_AUTHENTICATE key (PIV slot 9c) needs to sign.
std::string make_csr(const Session& session, const Uri& key_uri, const CsrRequest& request,
                     KeyOptions options = {});

}  // namespace token
