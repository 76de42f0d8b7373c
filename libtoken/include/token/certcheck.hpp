// Correspondents' certificates: what they say (addresses, validity,
// fingerprint) and whether one can be used to encrypt mail to an address.
// Also the one place that turns certificate values from outside (a
// directory's userCertificate;binary and userSMIMECertificate attributes, a
// file) into certificates, with bounds, so the fuzz target covers it.
#pragma once

#include <openssl/x509.h>

#include <cstddef>
#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "token/ossl.hpp"

namespace token {
class Session;
}

namespace token::certs {

// Lower-cased addresses from the subjectAltName rfc822Name entries and the
// subject's emailAddress attributes, without duplicates, in that order.
std::vector<std::string> emails(X509* cert);

// Lower-case hex SHA-256 of the DER encoding.
std::string fingerprint(X509* cert);

// The subject as one line, "CN=Alice, O=Example".
std::string subject(X509* cert);

// notBefore / notAfter as seconds since the epoch (UTC).
std::time_t not_before(X509* cert);
std::time_t not_after(X509* cert);

// "2026-11-28T05:00:00Z".
std::string iso_time(std::time_t t);

// An address compared as mail agents do: trimmed, lower-cased.
std::string normalise_email(std::string_view address);

// The reasons `cert` cannot be used to encrypt mail to `email` at time
// `now`; empty when it can. Checks: valid now; extendedKeyUsage absent or
// containing emailProtection; keyUsage absent or with keyEncipherment (RSA)
// or keyAgreement (EC); the address among emails(). With a trust store, also
// that the certificate chains to it (RFC 5280 path validation, S/MIME
// encryption purpose).
std::vector<std::string> encryption_problems(X509* cert, const std::string& email, std::time_t now,
                                             X509_STORE* trust = nullptr,
                                             STACK_OF(X509) * untrusted = nullptr);

// Bounds on certificate values from the network.
struct ValueLimits {
  std::size_t max_values = 64;                           // values considered; the rest are counted
  std::size_t max_value_bytes = std::size_t{64} * 1024;  // a larger value is refused unread
  std::size_t max_certs_per_value = 16;  // certificates taken from one PKCS#7 bundle
};

// A certificate read from a value, or why the value was refused.
struct ParsedValue {
  std::vector<ossl::X509Ptr> certs;
  std::string problem;  // empty when certs were read
};

// Reads one attribute value: a DER certificate (userCertificate;binary), or
// a DER PKCS#7 SignedData carrying certificates (userSMIMECertificate, RFC
// 2798), or a PEM certificate. Never throws for bad input.
ParsedValue parse_value(std::string_view value, const ValueLimits& limits = {});

// A certificate judged for one address, with the reasons it was refused.
struct Judged {
  ossl::X509Ptr cert;
  std::string description;            // subject, fingerprint prefix
  std::vector<std::string> problems;  // empty: accepted
};

struct Judgement {
  std::vector<Judged> accepted;  // newest (latest notBefore) first
  std::vector<Judged> rejected;
  std::vector<std::string> unreadable;  // "value 3: not a certificate (...)"
  std::size_t values_skipped = 0;       // values past limits.max_values
};

// Turns directory attribute values into certificates and judges each for
// `email` (see encryption_problems()). Duplicate certificates count once.
Judgement judge_values(const std::vector<std::string_view>& values, const std::string& email,
                       std::time_t now, X509_STORE* trust, const ValueLimits& limits = {});

// Judges certificates already read (from the local store).
Judgement judge_certs(std::vector<ossl::X509Ptr> certs, const std::string& email, std::time_t now,
                      X509_STORE* trust);

// A certificate read from a file, PEM or DER: throws Error(Io) when the file
// cannot be read and Error(Input) naming the file when it holds no
// certificate.
std::vector<ossl::X509Ptr> read_certificate_file(const std::string& path);

// The CA certificates on a token, DER: X.509 certificate objects with
// CKA_CERTIFICATE_CATEGORY 2 (authority) or CKA_TRUSTED true. Public
// objects, so no login is needed (FIELD-NOTES: CA certificates get category 2).
std::vector<std::string> token_authorities(const Session& session);

}  // namespace token::certs
