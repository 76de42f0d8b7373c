// RFC 7512 pkcs11: URIs, parsed and printed by p11-kit's URI code.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "token/attributes.hpp"
#include "token/pkcs11.hpp"

typedef struct p11_kit_uri P11KitUri;

namespace token {

class Uri {
 public:
  Uri();  // matches anything
  // Throws Error(Input) naming the URI and what is wrong with it.
  static Uri parse(const std::string& text);

  bool matches_module(const CK_INFO& info) const;
  bool matches_slot(CK_SLOT_ID id, const CK_SLOT_INFO& info) const;
  bool matches_token(const CK_TOKEN_INFO& info) const;
  // Whether the URI names any token attribute (token, serial, model, ...).
  bool names_token() const;

  std::optional<std::string> module_name() const;
  std::optional<std::string> module_path() const;
  std::optional<std::string> pin_value() const;
  std::optional<std::string> pin_source() const;

  // The object part (type, id, object) as a find template.
  AttributeTemplate object_template() const;
  bool names_object() const;

  std::string str() const;

  static std::string for_token(const CK_TOKEN_INFO& token);
  // Empty for classes RFC 7512 has no type for (profiles, vendor classes).
  static std::string for_object(const CK_TOKEN_INFO& token, CK_OBJECT_CLASS cls,
                                const std::string& label, const Bytes& id);

 private:
  struct Free {
    void operator()(P11KitUri* u) const;
  };
  std::shared_ptr<P11KitUri> uri_;
};

}  // namespace token
