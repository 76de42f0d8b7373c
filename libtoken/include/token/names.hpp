// Symbolic names of PKCS#11 constants, from tables generated from pkcs11.h.
#pragma once

#include <string>

#include "token/pkcs11.hpp"

namespace token {

// "CKR_PIN_INCORRECT"; unknown values come back as hex ("0x80000001").
std::string rv_name(CK_RV rv);
std::string mechanism_name(CK_MECHANISM_TYPE m);
std::string attribute_name(CK_ATTRIBUTE_TYPE a);
std::string class_name(CK_OBJECT_CLASS c);
std::string key_type_name(CK_KEY_TYPE k);
std::string certificate_type_name(CK_CERTIFICATE_TYPE c);

// Reverse look-ups for command-line input: "CKM_RSA_PKCS" or "RSA_PKCS".
bool mechanism_from_name(const std::string& name, CK_MECHANISM_TYPE& out);

}  // namespace token
