// PKCS#12 in, token objects out: plan what will be written, write it as one
// unit (all objects or none), and verify it by using the stored key.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/pkcs12.hpp"
#include "token/profile.hpp"
#include "token/session.hpp"

namespace token {

struct ImportOptions {
  std::optional<Bytes> id;            // --id; default: SHA-1 of the public key (as NSS)
  std::optional<std::string> label;   // --label; default: friendly name, CN, email
  bool chain = true;                  // also store the CA certificates
  bool extractable = false;           // only with --extractable, said in so many words
};

// One object the plan will write (or found already there).
struct PlannedObject {
  CK_OBJECT_CLASS cls = 0;
  std::string label;
  Bytes id;
  std::string what;  // "RSA 2048 private key", "certificate CN=...", "CA certificate ..."
  bool already_present = false;
  AttributeTemplate attrs;  // wiped when dropped (it may hold key material)
};

// A key from the file with its certificate, as it will be on the token.
struct PlannedIdentity {
  std::string label;
  Bytes id;
  std::string subject;
  std::string fingerprint_sha256;  // of the certificate
  std::vector<std::string> usage;  // sign, decrypt, unwrap, derive
  bool already_present = false;
};

struct ImportPlan {
  TokenProfile profile;  // what the token accepts (token/profile.hpp)
  std::vector<PlannedIdentity> identities;
  std::vector<PlannedObject> objects;  // in write order: keys, certificates, CA certificates
  std::vector<std::string> notes;      // what the token's profile left out, and why
};

// Matches keys to certificates by public key, chooses ids, labels and
// attributes, and looks at the token for objects already there. Writes
// nothing. Throws Error(Verification) when a key matches no certificate, and
// Error(Token) or Error(Usage) when the token's profile refuses the import
// (a TPM, OpenSC's PIV driver; a PIV card without a PIV slot id).
ImportPlan plan_import(const P12Contents& p12, const Session& session, const ImportOptions& opts,
                       const std::string& source_name);

struct ImportResult {
  std::vector<CK_OBJECT_HANDLE> created;
  std::vector<std::string> verified;  // "alice: signature", "...: decryption", "...: key agreement"
  std::vector<std::string> untested;  // what the token offers no mechanism to test
};

// Writes the plan's new objects, then verifies each identity (a test
// signature checked with the certificate; a test decryption for encryption
// keys; an ECDH derivation for EC keys that may derive). On any failure it
// destroys what it wrote and rethrows: the token is as before.
//
// Tokens whose profile writes as SO use a different login for writing than
// for using the key; the caller switches them through these hooks (each may
// be empty when one login serves).
struct ImportLogins {
  std::function<void()> to_write;  // before writing, and before a rollback
  std::function<void()> to_use;    // before the verification
  // After C_SignInit/C_DecryptInit with a CKA_ALWAYS_AUTHENTICATE key
  // (PIV slot 9c): a C_Login(CKU_CONTEXT_SPECIFIC) with the user PIN.
  std::function<void()> context_specific;
};
ImportResult apply_import(ImportPlan& plan, Session& session, const ImportLogins& logins = {});

// NSS's id for a key: SHA-1 of the RSA modulus or of the EC point.
Bytes nss_key_id(const EVP_PKEY* key);

}  // namespace token
