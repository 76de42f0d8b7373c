// Slot and token management (PKCS#11 v2.40 section 5.5).
#include <cstring>

#include "entry_util.h"

using tk::call;
using tk::Module;
using tk::need;

namespace {

// 5.2: the two-call convention for lists (NULL list asks for the count).
template <class T>
CK_RV put_list(const std::vector<T>& items, T* out, CK_ULONG* count) {
  tk::need(count);
  if (out == nullptr) {
    *count = items.size();
    return CKR_OK;
  }
  if (*count < items.size()) {
    *count = items.size();
    return CKR_BUFFER_TOO_SMALL;
  }
  std::copy(items.begin(), items.end(), out);
  *count = items.size();
  return CKR_OK;
}

}  // namespace

extern "C" {

CK_RV C_GetSlotList(CK_BBOOL, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
  // Every slot has a token (the free one an uninitialised token).
  return call([&](Module& m) { return put_list(m.slot_list(), pSlotList, pulCount); });
}

CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
  return call([&](Module& m) {
    need(pInfo);
    m.slot_info(slotID, pInfo);
  });
}

CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
  return call([&](Module& m) {
    need(pInfo);
    m.token_info(slotID, pInfo);
  });
}

CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pMechanismList,
                         CK_ULONG_PTR pulCount) {
  return call([&](Module& m) {
    m.token(slotID);
    return put_list(tk::mechanism_types(), pMechanismList, pulCount);
  });
}

CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
  return call([&](Module& m) {
    need(pInfo);
    m.token(slotID);
    *pInfo = tk::mechanism_info(type);
  });
}

CK_RV C_InitToken(CK_SLOT_ID slotID, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen,
                  CK_UTF8CHAR_PTR pLabel) {
  return call([&](Module& m) {
    need(pLabel);
    m.init_token(slotID, tk::pin_of(pPin, ulPinLen), tk::to_bytes(pLabel, 32));
  });
}

CK_RV C_InitPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
  return call([&](Module& m) { m.init_pin(hSession, tk::pin_of(pPin, ulPinLen)); });
}

CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen,
               CK_UTF8CHAR_PTR pNewPin, CK_ULONG ulNewLen) {
  return call([&](Module& m) {
    m.set_pin(hSession, tk::pin_of(pOldPin, ulOldLen), tk::pin_of(pNewPin, ulNewLen));
  });
}

CK_RV C_WaitForSlotEvent(CK_FLAGS, CK_SLOT_ID_PTR, CK_VOID_PTR) {
  return call([&](Module&) { return CKR_FUNCTION_NOT_SUPPORTED; });
}

}  // extern "C"
