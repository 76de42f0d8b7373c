/* The tokenkit software token's vendor interface.
 *
 * PKCS#11 has no call that deletes a token. tokenkit-pkcs11.so offers one
 * through a vendor interface (PKCS#11 3.0 section 5.4 allows interfaces of
 * any name): C_GetInterface("Vendor tokenkit", NULL, &iface, 0) gives an
 * interface whose pFunctionList points to a TOKENKIT_FUNCTION_LIST. It is
 * given by name only; C_GetInterfaceList lists the standard "PKCS 11"
 * interface alone, so that no client takes it for the standard one. */
#ifndef TOKENKIT_PKCS11_VENDOR_H
#define TOKENKIT_PKCS11_VENDOR_H

#include <p11-kit/pkcs11.h>

#define TOKENKIT_VENDOR_INTERFACE "Vendor tokenkit"

/* PKCS#11 3.0's CK_INTERFACE and C_GetInterface, which p11-kit's 2.40
 * header lacks (same layout), for a client to call the module's
 * C_GetInterface found with dlsym. */
typedef struct TOKENKIT_INTERFACE {
  CK_UTF8CHAR* pInterfaceName;
  void* pFunctionList;
  CK_FLAGS flags;
} TOKENKIT_INTERFACE;
typedef CK_RV (*TOKENKIT_C_GetInterface)(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                                         TOKENKIT_INTERFACE** iface, CK_FLAGS flags);

typedef struct TOKENKIT_FUNCTION_LIST {
  CK_VERSION version; /* {1, 0} */
  /* Deletes the token in `slot`: checks the SO PIN (counted like a
   * C_Login, CKR_PIN_INCORRECT / CKR_PIN_LOCKED and nothing deleted when it
   * fails), then removes every object and the token's store file; the slot
   * is then a free one, and other processes see no token there at their next
   * C_GetSlotList. CKR_SESSION_EXISTS while this process has a session on
   * the token; CKR_TOKEN_NOT_RECOGNIZED for a free slot or a store that is
   * not one of ours (nothing to check the SO PIN against). */
  CK_RV (*C_DeleteToken)(CK_SLOT_ID slot, CK_UTF8CHAR_PTR so_pin, CK_ULONG so_pin_len);
} TOKENKIT_FUNCTION_LIST;

#endif
