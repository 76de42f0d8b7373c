// Choosing the one token a command works on: by URI, slot, label or serial.
#pragma once

#include <optional>
#include <string>

#include "token/module.hpp"
#include "token/uri.hpp"

namespace token {

struct TokenSelector {
  Uri uri;  // token part of a pkcs11: URI (matches all when it names none)
  std::optional<CK_SLOT_ID> slot;
  std::optional<std::string> label;
  std::optional<std::string> serial;
  bool any() const;
};

// Tokens (present ones) that match; every criterion given must hold.
std::vector<SlotInfo> matching_tokens(const Module& module, const TokenSelector& sel);

// Exactly one token: Error(NotFound) when none matches, Error(Ambiguous)
// when several do, each naming the module and the candidates.
SlotInfo select_token(const Module& module, const TokenSelector& sel);

// The module to use: --module if given, else the URI's module-path or
// module-name, else `fallback`.
Module resolve_module(const std::optional<std::string>& module_option, const Uri& uri,
                      const std::string& fallback);

}  // namespace token
