// Object management (PKCS#11 v2.40 section 5.7).
#include "attributes.h"
#include "entry_util.h"

using tk::call;
using tk::Module;
using tk::need;

extern "C" {

CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                     CK_OBJECT_HANDLE_PTR phObject) {
  return call([&](Module& m) {
    need(phObject);
    *phObject = m.create_object(hSession, tk::parse_template(pTemplate, ulCount));
  });
}

CK_RV C_CopyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                   CK_ULONG ulCount, CK_OBJECT_HANDLE_PTR phNewObject) {
  return call([&](Module& m) {
    need(phNewObject);
    *phNewObject = m.copy_object(hSession, hObject, tk::parse_template(pTemplate, ulCount));
  });
}

CK_RV C_DestroyObject(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject) {
  return call([&](Module& m) { m.destroy_object(hSession, hObject); });
}

// 5.7: "If it is not possible to determine the size ... CK_UNAVAILABLE_INFORMATION".
CK_RV C_GetObjectSize(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ULONG_PTR pulSize) {
  return call([&](Module& m) {
    need(pulSize);
    m.object(m.session(hSession), hObject);
    *pulSize = CK_UNAVAILABLE_INFORMATION;
  });
}

CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  return call([&](Module& m) {
    tk::require(pTemplate != nullptr || ulCount == 0, CKR_ARGUMENTS_BAD);
    return m.get_attributes(hSession, hObject, pTemplate, ulCount);
  });
}

CK_RV C_SetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject,
                          CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  return call([&](Module& m) {
    m.set_attributes(hSession, hObject, tk::parse_template(pTemplate, ulCount));
  });
}

CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
  return call([&](Module& m) { m.find_init(hSession, tk::parse_template(pTemplate, ulCount)); });
}

CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject,
                    CK_ULONG ulMaxObjectCount, CK_ULONG_PTR pulObjectCount) {
  return call([&](Module& m) {
    need(phObject);
    need(pulObjectCount);
    *pulObjectCount = m.find(hSession, phObject, ulMaxObjectCount);
  });
}

CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) {
  return call([&](Module& m) { m.find_final(hSession); });
}

}  // extern "C"
