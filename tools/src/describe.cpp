#include "describe.hpp"

#include "token/names.hpp"
#include "token/uri.hpp"

namespace tokenkit {

using token::pkcs11_text;

namespace {
struct FlagName {
  CK_FLAGS flag;
  const char* name;
};

std::vector<std::string> names_of(CK_FLAGS f, std::initializer_list<FlagName> table) {
  std::vector<std::string> out;
  for (const auto& e : table) {
    if (f & e.flag) out.emplace_back(e.name);
  }
  return out;
}

Json opt_bool(const std::optional<bool>& b) { return b ? Json(*b) : Json(nullptr); }

std::string yes_no(const std::optional<bool>& b, const char* yes, const char* no) {
  if (!b) return std::string(yes) + "?";
  return *b ? yes : no;
}
std::vector<std::string> key_usage(const token::ObjectInfo& o) {
  std::vector<std::string> use;
  for (const auto& [flag, name] : {std::pair{o.can_sign, "sign"}, {o.can_verify, "verify"},
                                   {o.can_encrypt, "encrypt"}, {o.can_decrypt, "decrypt"},
                                   {o.can_unwrap, "unwrap"}, {o.can_derive, "derive"}}) {
    if (flag.value_or(false)) use.emplace_back(name);
  }
  return use;
}
}  // namespace

std::vector<std::string> token_flags(CK_FLAGS f) {
  return names_of(f, {{CKF_TOKEN_INITIALIZED, "initialized"},
                      {CKF_LOGIN_REQUIRED, "login required"},
                      {CKF_USER_PIN_INITIALIZED, "user PIN initialized"},
                      {CKF_PROTECTED_AUTHENTICATION_PATH, "PIN pad"},
                      {CKF_WRITE_PROTECTED, "write protected"},
                      {CKF_RNG, "rng"},
                      {CKF_CLOCK_ON_TOKEN, "clock"},
                      {CKF_DUAL_CRYPTO_OPERATIONS, "dual crypto"}});
}

std::vector<std::string> mechanism_flags(CK_FLAGS f) {
  return names_of(f, {{CKF_HW, "hw"},
                      {CKF_ENCRYPT, "encrypt"},
                      {CKF_DECRYPT, "decrypt"},
                      {CKF_DIGEST, "digest"},
                      {CKF_SIGN, "sign"},
                      {CKF_SIGN_RECOVER, "sign-recover"},
                      {CKF_VERIFY, "verify"},
                      {CKF_VERIFY_RECOVER, "verify-recover"},
                      {CKF_GENERATE, "generate"},
                      {CKF_GENERATE_KEY_PAIR, "generate-key-pair"},
                      {CKF_WRAP, "wrap"},
                      {CKF_UNWRAP, "unwrap"},
                      {CKF_DERIVE, "derive"}});
}

Json token_json(const token::SlotInfo& s) {
  Json j;
  j["slot"] = s.id;
  j["slot_description"] = pkcs11_text(s.slot.slotDescription);
  j["token_present"] = s.has_token;
  if (!s.has_token) return j;
  const auto& t = s.token;
  j["label"] = pkcs11_text(t.label);
  j["manufacturer"] = pkcs11_text(t.manufacturerID);
  j["model"] = pkcs11_text(t.model);
  j["serial"] = pkcs11_text(t.serialNumber);
  j["flags"] = token_flags(t.flags);
  j["user_pin"] = token::user_pin_state(t.flags);
  j["so_pin"] = token::so_pin_state(t.flags);
  j["pin_length"] = {{"min", t.ulMinPinLen}, {"max", t.ulMaxPinLen}};
  j["uri"] = token::Uri::for_token(t);
  return j;
}

void print_token(std::ostream& out, const token::SlotInfo& s, const std::string& in) {
  out << in << "Slot " << s.id << ": " << pkcs11_text(s.slot.slotDescription) << "\n";
  if (!s.has_token) {
    out << in << "  (no token)\n";
    return;
  }
  const auto& t = s.token;
  out << in << "  token:    \"" << pkcs11_text(t.label) << "\"\n"
      << in << "  maker:    " << pkcs11_text(t.manufacturerID) << ", model "
      << pkcs11_text(t.model) << ", serial " << pkcs11_text(t.serialNumber) << "\n"
      << in << "  flags:    " << join(token_flags(t.flags), ", ") << "\n";
  auto user = token::user_pin_state(t.flags);
  auto so = token::so_pin_state(t.flags);
  out << in << "  user PIN: " << (user.empty() ? "ok" : join(user, ", "))
      << "; SO PIN: " << (so.empty() ? "ok" : join(so, ", ")) << "; length " << t.ulMinPinLen
      << ".." << t.ulMaxPinLen << "\n"
      << in << "  uri:      " << token::Uri::for_token(t) << "\n";
}

Json object_json(const token::ObjectInfo& o) {
  Json j;
  j["class"] = token::class_label(o.cls);
  j["label"] = o.label;
  j["id"] = hex_id(o.id);
  if (o.key_type) j["key_type"] = token::key_type_name(*o.key_type);
  if (o.key_bits) j["bits"] = *o.key_bits;
  if (!o.curve.empty()) j["curve"] = o.curve;
  j["private"] = opt_bool(o.is_private);
  if (o.cls == CKO_PRIVATE_KEY || o.cls == CKO_SECRET_KEY) {
    j["sensitive"] = opt_bool(o.sensitive);
    j["extractable"] = opt_bool(o.extractable);
    j["always_sensitive"] = opt_bool(o.always_sensitive);
    j["never_extractable"] = opt_bool(o.never_extractable);
  }
  if (o.key_type) {
    j["usage"] = key_usage(o);
  }
  if (o.certificate) {
    const auto& c = *o.certificate;
    j["certificate"] = {{"subject", c.subject},       {"issuer", c.issuer},
                        {"serial", c.serial},         {"emails", c.emails},
                        {"not_before", c.not_before}, {"not_after", c.not_after}};
  }
  j["uri"] = o.uri;
  return j;
}

void print_object(std::ostream& out, const token::ObjectInfo& o, const std::string& in) {
  out << in << token::class_label(o.cls);
  if (o.key_type) out << "  " << token::key_type_name(*o.key_type).substr(4);
  if (o.key_bits) out << " " << *o.key_bits;
  if (!o.curve.empty()) out << " (" << o.curve << ")";
  out << "  label \"" << o.label << "\"  id " << (o.id.empty() ? "(none)" : hex_id(o.id)) << "\n";
  if (o.cls == CKO_PRIVATE_KEY || o.cls == CKO_SECRET_KEY) {
    out << in << "  " << yes_no(o.is_private, "private", "PUBLIC") << ", "
        << yes_no(o.sensitive, "sensitive", "NOT SENSITIVE") << ", "
        << yes_no(o.extractable, "EXTRACTABLE", "not extractable") << ", "
        << yes_no(o.always_sensitive, "always sensitive", "not always sensitive") << ", "
        << yes_no(o.never_extractable, "never extractable", "was extractable") << "\n";
  }
  if (o.key_type) {
    auto use = key_usage(o);
    out << in << "  usage: " << (use.empty() ? "none" : join(use, ", ")) << "\n";
  }
  if (o.certificate) {
    const auto& c = *o.certificate;
    out << in << "  subject: " << c.subject << "\n"
        << in << "  issuer:  " << c.issuer << "  serial " << c.serial << "\n";
    if (!c.emails.empty()) out << in << "  email:   " << join(c.emails, ", ") << "\n";
    out << in << "  valid:   " << c.not_before << " to " << c.not_after << "\n";
  }
  out << in << "  uri: " << (o.uri.empty() ? "(none: RFC 7512 has no type for this class)" : o.uri)
      << "\n";
}

}  // namespace tokenkit
