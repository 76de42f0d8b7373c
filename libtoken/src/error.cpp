#include "token/error.hpp"

#include <cstdio>

#include "token/names.hpp"

namespace token {

Error::Error(ErrorKind kind, const std::string& message, CK_RV rv, std::string operation)
    : std::runtime_error(message), kind_(kind), rv_(rv), operation_(std::move(operation)) {}

ErrorKind kind_for_rv(CK_RV rv) {
  switch (rv) {
    case CKR_PIN_INCORRECT:
      return ErrorKind::PinIncorrect;
    case CKR_PIN_LOCKED:
      return ErrorKind::PinLocked;
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_INVALID:
    case CKR_ARGUMENTS_BAD:
    case CKR_TEMPLATE_INCONSISTENT:
      return ErrorKind::Input;
    default:
      return ErrorKind::Token;
  }
}

Error Error::from_rv(const std::string& call, CK_RV rv, const std::string& context) {
  char hex[32];
  std::snprintf(hex, sizeof hex, " (0x%lx)", rv);
  std::string msg = call;
  if (!context.empty()) msg += " on " + context;
  msg += ": " + rv_name(rv) + hex;
  return Error(kind_for_rv(rv), msg, rv, call);
}

}  // namespace token
