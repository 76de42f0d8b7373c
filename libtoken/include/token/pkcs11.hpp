// The PKCS#11 C header tokenkit builds against (p11-kit's v2.40 header), plus
// the PKCS#11 3.0 names that header lacks and tokenkit needs.
#pragma once

#include <p11-kit/pkcs11.h>

// PKCS#11 3.0, section 4.13 (profile objects); NSS reads this profile to learn
// that certificates can be listed without a login.
#ifndef CKO_PROFILE
#define CKO_PROFILE (0x9UL)
#endif
#ifndef CKA_PROFILE_ID
#define CKA_PROFILE_ID (0x601UL)
#endif
#ifndef CKP_PUBLIC_CERTIFICATES_TOKEN
#define CKP_PUBLIC_CERTIFICATES_TOKEN (4UL)
#endif
#ifndef CKK_EC_EDWARDS
#define CKK_EC_EDWARDS (0x40UL)
#endif
#ifndef CKM_EC_EDWARDS_KEY_PAIR_GEN
#define CKM_EC_EDWARDS_KEY_PAIR_GEN (0x1055UL)
#endif
#ifndef CKK_EC_MONTGOMERY
#define CKK_EC_MONTGOMERY (0x41UL)
#endif
#ifndef CKM_EC_MONTGOMERY_KEY_PAIR_GEN
#define CKM_EC_MONTGOMERY_KEY_PAIR_GEN (0x1056UL)
#endif
#ifndef CKM_EDDSA
#define CKM_EDDSA (0x1057UL)
#endif
