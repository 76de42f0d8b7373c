// Attribute templates that own their values, and the values read back.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "token/pkcs11.hpp"

namespace token {

using Bytes = std::vector<unsigned char>;

// A template built value by value; data() stays valid until the next add().
class AttributeTemplate {
 public:
  AttributeTemplate() = default;
  // Values may be key material (a private key on its way to a token): they
  // are wiped when the template goes.
  ~AttributeTemplate();
  AttributeTemplate(const AttributeTemplate&) = default;
  AttributeTemplate(AttributeTemplate&&) = default;
  AttributeTemplate& operator=(const AttributeTemplate&) = default;
  AttributeTemplate& operator=(AttributeTemplate&&) = default;

  AttributeTemplate& add(CK_ATTRIBUTE_TYPE type, CK_ULONG value);
  AttributeTemplate& add_bool(CK_ATTRIBUTE_TYPE type, bool value);
  AttributeTemplate& add(CK_ATTRIBUTE_TYPE type, const Bytes& value);
  AttributeTemplate& add(CK_ATTRIBUTE_TYPE type, const std::string& value);
  AttributeTemplate& add(CK_ATTRIBUTE_TYPE type, Bytes&& value);
  // A copy holding only the attributes of `keep`.
  AttributeTemplate only(std::initializer_list<CK_ATTRIBUTE_TYPE> keep) const;
  AttributeTemplate only(std::span<const CK_ATTRIBUTE_TYPE> keep) const;
  bool has(CK_ATTRIBUTE_TYPE type) const;

  CK_ATTRIBUTE* data();
  CK_ULONG size() const { return static_cast<CK_ULONG>(values_.size()); }
  bool empty() const { return values_.empty(); }

 private:
  std::vector<std::pair<CK_ATTRIBUTE_TYPE, Bytes>> values_;
  std::vector<CK_ATTRIBUTE> view_;
};

// What a token gave back: an attribute is absent when the token refused it
// (sensitive, unknown to it, or not set).
class AttributeValues {
 public:
  void set(CK_ATTRIBUTE_TYPE type, Bytes value) { values_[type] = std::move(value); }
  bool has(CK_ATTRIBUTE_TYPE type) const { return values_.count(type) != 0; }
  const Bytes* bytes(CK_ATTRIBUTE_TYPE type) const;
  std::optional<CK_ULONG> ulong_value(CK_ATTRIBUTE_TYPE type) const;
  std::optional<bool> bool_value(CK_ATTRIBUTE_TYPE type) const;
  std::optional<std::string> string_value(CK_ATTRIBUTE_TYPE type) const;

 private:
  std::map<CK_ATTRIBUTE_TYPE, Bytes> values_;
};

std::string to_hex(const Bytes& b);
// Accepts "0a1b", "0A:1B", "%0a%1b"; nullopt if it is not hex.
std::optional<Bytes> from_hex(const std::string& s);

}  // namespace token
