// Key management (PKCS#11 v2.40 section 5.14) and random numbers (5.15).
#include <openssl/rand.h>

#include "attributes.h"
#include "crypto.h"
#include "entry_util.h"

using tk::call;
using tk::Module;
using tk::need;

extern "C" {

CK_RV C_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_ATTRIBUTE_PTR pTemplate,
                    CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phKey) {
  return call([&](Module& m) {
    need(pMechanism);
    need(phKey);
    *phKey = m.generate_key(h, *pMechanism, tk::parse_template(pTemplate, ulCount));
  });
}
CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism,
                        CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                        CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                        CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) {
  return call([&](Module& m) {
    need(pMechanism);
    need(phPublicKey);
    need(phPrivateKey);
    m.generate_pair(h, *pMechanism,
                    tk::parse_template(pPublicKeyTemplate, ulPublicKeyAttributeCount),
                    tk::parse_template(pPrivateKeyTemplate, ulPrivateKeyAttributeCount),
                    phPublicKey, phPrivateKey);
  });
}

CK_RV C_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hWrappingKey,
                CK_OBJECT_HANDLE hKey, CK_BYTE_PTR pWrappedKey, CK_ULONG_PTR pulWrappedKeyLen) {
  return call([&](Module& m) {
    need(pMechanism);
    m.wrap_key(h, *pMechanism, hWrappingKey, hKey, pWrappedKey, pulWrappedKeyLen);
  });
}

CK_RV C_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hUnwrappingKey,
                  CK_BYTE_PTR pWrappedKey, CK_ULONG ulWrappedKeyLen, CK_ATTRIBUTE_PTR pTemplate,
                  CK_ULONG ulAttributeCount, CK_OBJECT_HANDLE_PTR phKey) {
  return call([&](Module& m) {
    need(pMechanism);
    need(phKey);
    *phKey = m.unwrap_key(h, *pMechanism, hUnwrappingKey, pWrappedKey, ulWrappedKeyLen,
                          tk::parse_template(pTemplate, ulAttributeCount));
  });
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hBaseKey,
                  CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulAttributeCount,
                  CK_OBJECT_HANDLE_PTR phKey) {
  return call([&](Module& m) {
    need(pMechanism);
    need(phKey);
    *phKey =
        m.derive_key(h, *pMechanism, hBaseKey, tk::parse_template(pTemplate, ulAttributeCount));
  });
}

CK_RV C_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR pSeed, CK_ULONG ulSeedLen) {
  return call([&](Module& m) {
    m.session(h);
    tk::require(pSeed != nullptr || ulSeedLen == 0, CKR_ARGUMENTS_BAD);
    // Mixed into OpenSSL's DRBG as extra input; it never replaces its seed.
    RAND_seed(pSeed, static_cast<int>(ulSeedLen));
  });
}

CK_RV C_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR pRandomData, CK_ULONG ulRandomLen) {
  return call([&](Module& m) {
    m.session(h);
    tk::require(pRandomData != nullptr || ulRandomLen == 0, CKR_ARGUMENTS_BAD);
    if (ulRandomLen) tk::crypto::random(pRandomData, ulRandomLen);
  });
}

}  // extern "C"
