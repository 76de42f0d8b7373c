// tokenkit doctor's checks of a token, one finding each: kept apart from the
// command line so that each check reads as what NSS and Thunderbird need.
#pragma once

#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "token/engine.hpp"
#include "token/session.hpp"

namespace tokenkit::doctor {

using token::Bytes;

enum class Severity { Ok, Warning, Error };
const char* severity_name(Severity s);

struct Finding {
  Severity severity;
  std::string check;   // "ids", "label", "key usage", ...
  std::string object;  // what it is about
  std::string message;
  std::string fix;          // empty when nothing is to be done
  bool repairable = false;  // --fix repairs it
};

// One object as the checks see it.
struct Obj {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_OBJECT_CLASS cls = 0;
  Bytes id, pub, der;
  std::string label;
  bool is_private = false;
  std::shared_ptr<X509> cert;
  bool is_ca = false;
  std::string describe() const {
    const char* what = cls == CKO_CERTIFICATE   ? "certificate"
                       : cls == CKO_PRIVATE_KEY ? "private key"
                                                : "public key";
    return std::string(what) + " \"" + label + "\" (id " +
           (id.empty() ? "none" : token::to_hex(id)) + ")";
  }
};

struct Repair {
  CK_OBJECT_HANDLE handle;
  std::string object;
  CK_ATTRIBUTE_TYPE attr;
  Bytes value;
  std::string what;
};

struct Report {
  std::vector<Finding> findings;
  std::vector<Repair> repairs;
  void add(Severity s, std::string check, std::string object, std::string message,
           std::string fix = {}) {
    findings.push_back(
        {s, std::move(check), std::move(object), std::move(message), std::move(fix)});
  }
  // Marks the last finding as one --fix repairs, with its repair.
  void repair(Repair rep) {
    findings.back().repairable = true;
    repairs.push_back(std::move(rep));
  }
  bool has_error(bool repaired) const {
    return std::any_of(findings.begin(), findings.end(), [&](const Finding& f) {
      return f.severity == Severity::Error && !(repaired && f.repairable);
    });
  }
};

// Certificates, private and public keys the session sees.
std::vector<Obj> gather(const token::Session& s);
// The public key of a private key: its own, or that of the public-key object
// with its id (EC private keys often carry no point).
Bytes key_public(const Obj& k, const std::vector<Obj>& all);
// Whether the token says its certificates are public (PKCS#11 3.0 4.13).
bool has_public_certificates_profile(const token::Session& s);

// Key, public key and certificate: one CKA_ID, paired by public key.
void check_pairing(const std::vector<Obj>& objs, Report& r);
// Certificates have non-empty labels (NSS nicknames).
void check_labels(const std::vector<Obj>& objs, Report& r);

struct CheckOptions {
  std::optional<std::string> email;
  std::vector<std::string> ca_files;
};
// Usages, address, validity and chain of one certificate.
void check_certificate(const Obj& c, const std::vector<Obj>& objs, const CheckOptions& o,
                       Report& r);
// A real signature and decryption (or key agreement) with the key.
// ko.context_pin answers the per-operation login of CKA_ALWAYS_AUTHENTICATE
// keys (PIV slot 9c).
void check_key_operations(const token::Session& s, const Obj& c, const Obj& key,
                          const token::KeyOptions& ko, Report& r);

}  // namespace tokenkit::doctor
