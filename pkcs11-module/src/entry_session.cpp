// Session management (PKCS#11 v2.40 section 5.6).
#include "entry_util.h"

using tk::call;
using tk::Module;
using tk::need;

extern "C" {

CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR, CK_NOTIFY,
                    CK_SESSION_HANDLE_PTR phSession) {
  return call([&](Module& m) {
    need(phSession);
    *phSession = m.open_session(slotID, flags);
  });
}

CK_RV C_CloseSession(CK_SESSION_HANDLE hSession) {
  return call([&](Module& m) { m.close_session(hSession); });
}

CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) {
  return call([&](Module& m) { m.close_all(slotID); });
}

CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
  return call([&](Module& m) {
    need(pInfo);
    m.session_info(hSession, pInfo);
  });
}

CK_RV C_GetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR, CK_ULONG_PTR) {
  return call([&](Module& m) {
    m.session(hSession);
    return CKR_FUNCTION_NOT_SUPPORTED;
  });
}

CK_RV C_SetOperationState(CK_SESSION_HANDLE hSession, CK_BYTE_PTR, CK_ULONG, CK_OBJECT_HANDLE,
                          CK_OBJECT_HANDLE) {
  return call([&](Module& m) {
    m.session(hSession);
    return CKR_FUNCTION_NOT_SUPPORTED;
  });
}

CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin,
              CK_ULONG ulPinLen) {
  return call([&](Module& m) { m.login(hSession, userType, tk::pin_of(pPin, ulPinLen)); });
}

CK_RV C_Logout(CK_SESSION_HANDLE hSession) {
  return call([&](Module& m) { m.logout(hSession); });
}

// 5.13: legacy parallel-function calls.
CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE hSession) {
  return call([&](Module& m) {
    m.session(hSession);
    return CKR_FUNCTION_NOT_PARALLEL;
  });
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE hSession) {
  return call([&](Module& m) {
    m.session(hSession);
    return CKR_FUNCTION_NOT_PARALLEL;
  });
}

}  // extern "C"
