// What a kind of token accepts when keys are imported onto it. Tokens take
// different templates and logins for the same key; these differences live in
// one table (libtoken/src/provision/profile.cpp), chosen from what the module
// and token say about themselves, never in branches spread over the code.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "token/attributes.hpp"
#include "token/pkcs11.hpp"

namespace token {

enum class ImportSupport {
  Yes,
  NotImplemented,  // the module has no C_CreateObject for keys (OpenSC's PIV driver)
  GeneratedOnly,   // the token refuses imported keys by design (TPM)
};

struct TokenProfile {
  std::string_view name{};  // "YubiKey PIV (ykcs11)"
  // Matched as prefixes; empty matches anything. The library's manufacturer
  // comes from C_GetInfo, the others from C_GetTokenInfo.
  std::string_view library_manufacturer{};
  std::string_view token_manufacturer{};
  std::string_view token_model{};
  ImportSupport import = ImportSupport::Yes;
  // The only attributes the module takes in a private-key or certificate
  // template (it refuses any other with CKR_ATTRIBUTE_TYPE_INVALID); empty:
  // the full template.
  std::span<const CK_ATTRIBUTE_TYPE> key_attributes{};
  std::span<const CK_ATTRIBUTE_TYPE> cert_attributes{};
  bool so_login_to_write = false;     // keys and certificates need the SO login
  std::string_view so_secret_name{};  // "the PIV management key (48 hex digits)"
  bool piv_slot_ids = false;          // CKA_ID 1..4 = 9a, 9c, 9d, 9e; 5..24 = retired slots 82..95
  bool writes_public_key = true;      // the module makes the public key object itself
  bool can_destroy_keys = true;       // rollback can remove a written private key
  std::string_view refusal{};         // why import is refused, and what to do instead
  // The only attributes the module takes in C_GenerateKeyPair templates
  // (others are CKR_ATTRIBUTE_TYPE_INVALID); empty: any.
  std::span<const CK_ATTRIBUTE_TYPE> keygen_public_attributes{};
  std::span<const CK_ATTRIBUTE_TYPE> keygen_private_attributes{};
  // What to do instead when the module generates no key of the wanted type.
  std::string_view keygen_hint{};
};

// The profile for this module and token; a generic PKCS#11 profile when
// nothing in the table matches.
const TokenProfile& token_profile(const CK_INFO& library, const CK_TOKEN_INFO& token);
class Session;
const TokenProfile& token_profile(const Session& session);

// PIV slot names and the PKCS#11 ids ykcs11 gives them: "9a" -> 1, "9c" -> 2,
// "9d" -> 3, "9e" -> 4, "82".."95" -> 5..24. std::nullopt for anything else.
std::optional<Bytes> piv_slot_id(std::string_view slot);
// The PIV slot an id names ("9a"), or "" when it names none.
std::string piv_slot_name(const Bytes& id);

}  // namespace token
