// The module's one error type: a CK_RV thrown inside the module and turned
// back into a return value by the entry shims (entry_util.h).
#pragma once

#include "p11.h"

namespace tk {

struct Error {
  CK_RV rv;
};

[[noreturn]] inline void fail(CK_RV rv) { throw Error{rv}; }

inline void require(bool ok, CK_RV rv) {
  if (!ok) fail(rv);
}

}  // namespace tk
