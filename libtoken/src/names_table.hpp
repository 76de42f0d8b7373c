#pragma once
#include <cstddef>

#include "token/pkcs11.hpp"

namespace token::detail {
struct NameEntry {
  unsigned long value;
  const char* name;
};
#define TOKENKIT_TABLE(p)              \
  extern const NameEntry p##_names[];  \
  extern const std::size_t p##_names_count;
TOKENKIT_TABLE(ckr)
TOKENKIT_TABLE(cka)
TOKENKIT_TABLE(ckm)
TOKENKIT_TABLE(cko)
TOKENKIT_TABLE(ckk)
TOKENKIT_TABLE(ckc)
TOKENKIT_TABLE(cku)
TOKENKIT_TABLE(cks)
#undef TOKENKIT_TABLE
}  // namespace token::detail
