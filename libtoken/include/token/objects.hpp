// Describing the objects on a token: what a person (or a script) needs to
// know about each, including the attributes that matter for key safety.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "token/session.hpp"
#include "token/uri.hpp"

namespace token {

struct CertificateDetails {
  std::string subject;
  std::string issuer;
  std::string serial;  // hex
  std::vector<std::string> emails;
  std::string not_before;  // ISO 8601, UTC
  std::string not_after;
};

struct ObjectInfo {
  CK_OBJECT_HANDLE handle = CK_INVALID_HANDLE;
  CK_OBJECT_CLASS cls = 0;
  std::optional<CK_KEY_TYPE> key_type;
  std::optional<unsigned> key_bits;
  std::string curve;  // EC keys: "prime256v1", ...
  std::string label;
  Bytes id;
  // The attributes that matter for safety; absent when the token did not say.
  std::optional<bool> is_private, sensitive, extractable, always_sensitive, never_extractable;
  std::optional<bool> can_sign, can_decrypt, can_unwrap, can_derive, can_verify, can_encrypt;
  std::optional<CertificateDetails> certificate;
  std::string uri;
};

// Every object in the session that matches the URI's object part (all
// objects when it names none), described.
std::vector<ObjectInfo> list_objects(const Session& session, const CK_TOKEN_INFO& token,
                                     const Uri& filter);

ObjectInfo describe_object(const Session& session, const CK_TOKEN_INFO& token,
                           CK_OBJECT_HANDLE handle);

// "private key", "certificate", ...
std::string class_label(CK_OBJECT_CLASS c);

// Parses an X.509 DER certificate; nullopt if it is not one.
std::optional<CertificateDetails> parse_certificate(const Bytes& der);

}  // namespace token
