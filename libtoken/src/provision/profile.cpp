// The token profile table: what each kind of token accepts on import.
// Observed with the emulated YubiKey (ykcs11 2.2, OpenSC 0.23; see
// docs/import-p12.md, "Hardware tokens") and the tpm2-pkcs11 notes.
#include "token/profile.hpp"

#include <array>

#include "token/module.hpp"
#include "token/session.hpp"

namespace token {

namespace {

// ykcs11 2.2's check_create_rsa_key/check_create_ec_key/check_create_cert:
// the key as CRT parts (public exponent 65537 only) or EC scalar and curve,
// and a few descriptive attributes it ignores; nothing else.
constexpr CK_ATTRIBUTE_TYPE kYkcs11Key[] = {
    CKA_CLASS,           CKA_KEY_TYPE,    CKA_ID,        CKA_TOKEN,
    CKA_LABEL,           CKA_SUBJECT,     CKA_SENSITIVE, CKA_DERIVE,
    CKA_PUBLIC_EXPONENT, CKA_PRIME_1,     CKA_PRIME_2,   CKA_EXPONENT_1,
    CKA_EXPONENT_2,      CKA_COEFFICIENT, CKA_VALUE,     CKA_EC_PARAMS};
constexpr CK_ATTRIBUTE_TYPE kYkcs11Cert[] = {
    CKA_CLASS,   CKA_ID,           CKA_VALUE,  CKA_TOKEN,
    CKA_LABEL,   CKA_SUBJECT,      CKA_ISSUER, CKA_CERTIFICATE_TYPE,
    CKA_PRIVATE, CKA_SERIAL_NUMBER};

// ykcs11 2.2's check_pubkey_template/check_pvtkey_template: these are taken
// (most of them ignored: a PIV key's usage and sensitivity are the card's);
// CKA_EXTRACTABLE and anything else is CKR_ATTRIBUTE_TYPE_INVALID.
constexpr CK_ATTRIBUTE_TYPE kYkcs11GenPublic[] = {
    CKA_CLASS, CKA_KEY_TYPE, CKA_PUBLIC_EXPONENT, CKA_MODULUS_BITS, CKA_EC_PARAMS, CKA_ID,
    CKA_TOKEN, CKA_ENCRYPT,  CKA_VERIFY,          CKA_WRAP,         CKA_DERIVE,    CKA_PRIVATE,
    CKA_LABEL};
constexpr CK_ATTRIBUTE_TYPE kYkcs11GenPrivate[] = {
    CKA_CLASS, CKA_KEY_TYPE, CKA_ID,    CKA_SENSITIVE, CKA_DECRYPT, CKA_UNWRAP,
    CKA_SIGN,  CKA_PRIVATE,  CKA_TOKEN, CKA_DERIVE,    CKA_LABEL};

constexpr TokenProfile kGeneric{.name = "generic PKCS#11 token"};

constexpr std::array kProfiles{
    // ykcs11: C_CreateObject of keys and certificates needs the SO login
    // with the PIV management key; it takes RSA keys as CRT parts only (a
    // full template is CKR_ATTRIBUTE_TYPE_INVALID), sets key usage and
    // sensitivity itself (a PIV key never leaves the card), and names objects by
    // PIV slot (CKA_ID 1 = 9a ...). It makes the public key object itself,
    // and cannot delete a key before YubiKey firmware 5.7.
    TokenProfile{.name = "YubiKey PIV (ykcs11)",
                 .token_manufacturer = "Yubico",
                 .token_model = "YubiKey",
                 .key_attributes = kYkcs11Key,
                 .cert_attributes = kYkcs11Cert,
                 .so_login_to_write = true,
                 .so_secret_name = "PIV management key (48 hex digits)",
                 .piv_slot_ids = true,
                 .writes_public_key = false,
                 .can_destroy_keys = false,
                 .keygen_public_attributes = kYkcs11GenPublic,
                 .keygen_private_attributes = kYkcs11GenPrivate,
                 .keygen_hint = "a YubiKey generates RSA 2048 and EC P-256/P-384 keys"},
    // OpenSC's PIV driver is a PKCS#15 emulation without a pkcs15-init
    // profile: every C_CreateObject is CKR_FUNCTION_NOT_SUPPORTED.
    TokenProfile{.name = "PIV card (OpenSC)",
                 .token_manufacturer = "piv_II",
                 .import = ImportSupport::NotImplemented,
                 .piv_slot_ids = true,
                 .refusal = "OpenSC's PIV driver cannot write keys or certificates "
                            "(C_CreateObject is not implemented for PIV cards); import through "
                            "Yubico's module (--module libykcs11.so) with --piv-slot and the "
                            "management key in --so-pin-file; OpenSC then sees and uses the key",
                 .keygen_hint = "OpenSC's PIV driver cannot generate keys on a PIV card; "
                                "generate through Yubico's module (--module libykcs11.so) with "
                                "--piv-slot and the management key in --so-pin-file; OpenSC "
                                "then sees and uses the key"},
    // tpm2-pkcs11 refuses imported private keys (CKR_ATTRIBUTE_VALUE_INVALID).
    TokenProfile{.name = "TPM 2.0 (tpm2-pkcs11)",
                 .library_manufacturer = "tpm2-software.github.io",
                 .import = ImportSupport::GeneratedOnly,
                 .refusal = "a TPM token keeps only keys generated on it and refuses imported "
                            "private keys; generate one with `tokenkit keygen`, request a "
                            "certificate with `tokenkit csr` and store it with "
                            "`tokenkit import-cert`",
                 .keygen_hint = "tpm2-pkcs11 generates RSA 2048/3072 and EC P-256/P-384 keys"},
};

bool starts_with(const std::string& field, std::string_view prefix) {
  return field.compare(0, prefix.size(), prefix) == 0;
}

}  // namespace

const TokenProfile& token_profile(const CK_INFO& library, const CK_TOKEN_INFO& token) {
  const std::string lib = pkcs11_text(library.manufacturerID);
  const std::string man = pkcs11_text(token.manufacturerID);
  const std::string model = pkcs11_text(token.model);
  for (const auto& p : kProfiles) {
    if (starts_with(lib, p.library_manufacturer) && starts_with(man, p.token_manufacturer) &&
        starts_with(model, p.token_model)) {
      return p;
    }
  }
  return kGeneric;
}

const TokenProfile& token_profile(const Session& s) {
  return token_profile(s.module().info(), s.module().slot(s.slot()).token);
}

namespace {
// SP 800-73-4 part 1 §3.1: 9a authentication, 9c signature, 9d key
// management, 9e card authentication; 82..95 the retired key-management keys.
constexpr std::array<const char*, 4> kNamed{"9a", "9c", "9d", "9e"};
}  // namespace

std::optional<Bytes> piv_slot_id(std::string_view slot) {
  for (std::size_t i = 0; i < kNamed.size(); ++i) {
    if (slot == kNamed[i]) return Bytes{static_cast<unsigned char>(i + 1)};
  }
  if (slot.size() == 2) {
    auto hex = from_hex(std::string(slot));
    if (hex && hex->size() == 1 && (*hex)[0] >= 0x82 && (*hex)[0] <= 0x95) {
      return Bytes{static_cast<unsigned char>((*hex)[0] - 0x82 + 5)};
    }
  }
  return std::nullopt;
}

std::string piv_slot_name(const Bytes& id) {
  if (id.size() != 1 || id[0] == 0 || id[0] > 24) return {};
  if (id[0] <= 4) return kNamed[id[0] - 1];
  return to_hex(Bytes{static_cast<unsigned char>(id[0] - 5 + 0x82)});
}

}  // namespace token
