#include "token/attributes.hpp"

#include <algorithm>
#include <cstring>

#include "token/secret.hpp"

namespace token {

AttributeTemplate::~AttributeTemplate() {
  for (auto& [type, value] : values_) wipe(value.data(), value.size());
}

AttributeTemplate& AttributeTemplate::add(CK_ATTRIBUTE_TYPE type, Bytes&& value) {
  values_.emplace_back(type, std::move(value));
  return *this;
}

AttributeTemplate AttributeTemplate::only(std::initializer_list<CK_ATTRIBUTE_TYPE> keep) const {
  return only(std::span<const CK_ATTRIBUTE_TYPE>(keep.begin(), keep.size()));
}

AttributeTemplate AttributeTemplate::only(std::span<const CK_ATTRIBUTE_TYPE> keep) const {
  AttributeTemplate t;
  for (const auto& [type, value] : values_) {
    if (std::find(keep.begin(), keep.end(), type) != keep.end()) t.values_.emplace_back(type, value);
  }
  return t;
}

bool AttributeTemplate::has(CK_ATTRIBUTE_TYPE type) const {
  return std::any_of(values_.begin(), values_.end(), [type](const auto& v) { return v.first == type; });
}

AttributeTemplate& AttributeTemplate::add(CK_ATTRIBUTE_TYPE type, CK_ULONG value) {
  Bytes b(sizeof value);
  std::memcpy(b.data(), &value, sizeof value);
  values_.emplace_back(type, std::move(b));
  return *this;
}

AttributeTemplate& AttributeTemplate::add_bool(CK_ATTRIBUTE_TYPE type, bool value) {
  values_.emplace_back(type, Bytes{static_cast<unsigned char>(value ? CK_TRUE : CK_FALSE)});
  return *this;
}

AttributeTemplate& AttributeTemplate::add(CK_ATTRIBUTE_TYPE type, const Bytes& value) {
  values_.emplace_back(type, value);
  return *this;
}

AttributeTemplate& AttributeTemplate::add(CK_ATTRIBUTE_TYPE type, const std::string& value) {
  values_.emplace_back(type, Bytes(value.begin(), value.end()));
  return *this;
}

CK_ATTRIBUTE* AttributeTemplate::data() {
  view_.clear();
  for (auto& [type, value] : values_) {
    view_.push_back({type, value.empty() ? nullptr : value.data(), static_cast<CK_ULONG>(value.size())});
  }
  return view_.empty() ? nullptr : view_.data();
}

const Bytes* AttributeValues::bytes(CK_ATTRIBUTE_TYPE type) const {
  auto it = values_.find(type);
  return it == values_.end() ? nullptr : &it->second;
}

std::optional<CK_ULONG> AttributeValues::ulong_value(CK_ATTRIBUTE_TYPE type) const {
  const Bytes* b = bytes(type);
  if (b == nullptr || b->size() != sizeof(CK_ULONG)) return std::nullopt;
  CK_ULONG v;
  std::memcpy(&v, b->data(), sizeof v);
  return v;
}

std::optional<bool> AttributeValues::bool_value(CK_ATTRIBUTE_TYPE type) const {
  const Bytes* b = bytes(type);
  if (b == nullptr || b->size() != 1) return std::nullopt;
  return (*b)[0] != CK_FALSE;
}

std::optional<std::string> AttributeValues::string_value(CK_ATTRIBUTE_TYPE type) const {
  const Bytes* b = bytes(type);
  if (b == nullptr) return std::nullopt;
  return std::string(b->begin(), b->end());
}

std::string to_hex(const Bytes& b) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (unsigned char c : b) {
    s += digits[c >> 4];
    s += digits[c & 0xf];
  }
  return s;
}

std::optional<Bytes> from_hex(const std::string& s) {
  std::string digits;
  for (char c : s) {
    if (c == ':' || c == '%' || c == ' ') continue;
    digits += c;
  }
  if (digits.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out;
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    int hi = nibble(digits[i]), lo = nibble(digits[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<unsigned char>(hi << 4 | lo));
  }
  return out;
}

}  // namespace token
