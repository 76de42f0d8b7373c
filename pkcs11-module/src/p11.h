// The PKCS#11 v2.40 header from p11-kit, plus the few PKCS#11 3.0 names the
// module needs (NSS reads CKO_PROFILE and calls C_GetInterface).
#pragma once

// The C_* functions declared here are the module's exports: give them
// default visibility while everything else is hidden.
#pragma GCC visibility push(default)
#include <p11-kit/pkcs11.h>

#include "tokenkit/pkcs11-vendor.h"
#pragma GCC visibility pop

#ifndef CKO_PROFILE
#define CKO_PROFILE 0x00000009UL
#endif
#ifndef CKA_PROFILE_ID
#define CKA_PROFILE_ID 0x00000601UL
#endif
#ifndef CKP_PUBLIC_CERTIFICATES_TOKEN
#define CKP_PUBLIC_CERTIFICATES_TOKEN 0x00000004UL
#endif
// PKCS#11 3.0 section 6.3.6-6.3.8: Edwards-curve keys and EdDSA.
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS 0x00000040UL
#endif
#ifndef CKM_EC_EDWARDS_KEY_PAIR_GEN
#define CKM_EC_EDWARDS_KEY_PAIR_GEN 0x00001055UL
#endif
#ifndef CKM_EDDSA
#define CKM_EDDSA 0x00001057UL
#endif
// PKCS#11 3.0 sections 2.3.7 and 6.3.8: Montgomery-curve keys (X25519),
// generated with their own mechanism and used with CKM_ECDH1_DERIVE.
#ifndef CKK_EC_MONTGOMERY
#define CKK_EC_MONTGOMERY 0x00000041UL
#endif
#ifndef CKM_EC_MONTGOMERY_KEY_PAIR_GEN
#define CKM_EC_MONTGOMERY_KEY_PAIR_GEN 0x00001056UL
#endif
#ifndef CKF_INTERFACE_FORK_SAFE
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#endif

extern "C" {
#ifndef CK_INTERFACE_DEFINED
// PKCS#11 3.0 section 3.6: the interface a module offers. The vendor
// header's struct, so that a client calling C_GetInterface through that
// header's type calls it through its exact type (UBSan's function check).
typedef TOKENKIT_INTERFACE CK_INTERFACE;
typedef CK_INTERFACE* CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR* CK_INTERFACE_PTR_PTR;
#endif

#pragma GCC visibility push(default)
CK_RV C_GetInterfaceList(CK_INTERFACE_PTR pInterfacesList, CK_ULONG_PTR pulCount);
CK_RV C_GetInterface(CK_UTF8CHAR_PTR pInterfaceName, CK_VERSION_PTR pVersion,
                     CK_INTERFACE_PTR_PTR ppInterface, CK_FLAGS flags);
#pragma GCC visibility pop
}
