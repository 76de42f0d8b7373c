#include "token/select.hpp"

namespace token {

bool TokenSelector::any() const { return slot || label || serial || uri.names_token(); }

std::vector<SlotInfo> matching_tokens(const Module& module, const TokenSelector& sel) {
  std::vector<SlotInfo> out;
  for (const SlotInfo& s : module.slots(true)) {
    if (!s.has_token) continue;
    // An uninitialised token (SoftHSM2's spare slot) is only ever chosen by
    // its slot id: nothing else about it identifies it.
    if (!(s.token.flags & CKF_TOKEN_INITIALIZED) && !sel.slot) continue;
    if (sel.slot && *sel.slot != s.id) continue;
    if (sel.label && *sel.label != pkcs11_text(s.token.label)) continue;
    if (sel.serial && *sel.serial != pkcs11_text(s.token.serialNumber)) continue;
    if (!sel.uri.matches_slot(s.id, s.slot) || !sel.uri.matches_token(s.token)) continue;
    out.push_back(s);
  }
  return out;
}

namespace {
std::string describe(const TokenSelector& sel) {
  std::string d;
  auto add = [&d](const std::string& part) { d += (d.empty() ? "" : ", ") + part; };
  if (sel.label) add("label \"" + *sel.label + "\"");
  if (sel.slot) add("slot " + std::to_string(*sel.slot));
  if (sel.serial) add("serial \"" + *sel.serial + "\"");
  if (sel.uri.names_token()) add("URI " + sel.uri.str());
  return d.empty() ? "any token" : d;
}

std::string candidates(const std::vector<SlotInfo>& tokens) {
  std::string d;
  for (const auto& s : tokens) {
    d += (d.empty() ? "" : ", ") + ("\"" + pkcs11_text(s.token.label) + "\" (slot " +
                                     std::to_string(s.id) + ")");
  }
  return d.empty() ? "none" : d;
}
}  // namespace

SlotInfo select_token(const Module& module, const TokenSelector& sel) {
  auto found = matching_tokens(module, sel);
  if (found.size() == 1) return found.front();
  if (found.empty()) {
    std::vector<SlotInfo> all;
    for (const auto& s : module.slots(true)) {
      if (s.has_token && (s.token.flags & CKF_TOKEN_INITIALIZED)) all.push_back(s);
    }
    throw Error(ErrorKind::NotFound, "no token matches " + describe(sel) + " in module " +
                                         module.name() + " (tokens: " + candidates(all) + ")");
  }
  throw Error(ErrorKind::Ambiguous,
              std::to_string(found.size()) + " tokens match " + describe(sel) + " in module " +
                  module.name() + ": " + candidates(found) +
                  "; choose one with --token-label, --slot or a token URI");
}

Module resolve_module(const std::optional<std::string>& module_option, const Uri& uri,
                      const std::string& fallback) {
  if (module_option) return Module::load(*module_option);
  if (auto p = uri.module_path()) return Module::load(*p);
  if (auto n = uri.module_name()) return Module::load(*n);
  return Module::load(fallback);
}

}  // namespace token
