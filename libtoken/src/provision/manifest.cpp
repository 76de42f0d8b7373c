#include "token/manifest.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <set>

#include "token/error.hpp"

namespace token {

namespace {

constexpr std::size_t kMaxEntries = 100000;
constexpr std::size_t kMaxField = 4096;

using Setter = std::optional<std::string> ManifestEntry::*;
const std::map<std::string, Setter>& fields() {
  static const std::map<std::string, Setter> f = {
      {"p12", &ManifestEntry::p12},
      {"keygen", &ManifestEntry::keygen},
      {"label", &ManifestEntry::label},
      {"password_file", &ManifestEntry::password_file},
      {"password_env", &ManifestEntry::password_env},
      {"module", &ManifestEntry::module},
      {"token", &ManifestEntry::token},
      {"serial", &ManifestEntry::serial},
      {"pin_file", &ManifestEntry::pin_file},
      {"pin_env", &ManifestEntry::pin_env},
      {"new_pin_file", &ManifestEntry::new_pin_file},
      {"new_pin_env", &ManifestEntry::new_pin_env},
  };
  return f;
}

std::string where(const std::string& name, std::size_t line) {
  return name + " line " + std::to_string(line);
}

void set_field(ManifestEntry& e, const std::string& key, const std::string& value,
               const std::string& at) {
  if (value.size() > kMaxField) throw Error(ErrorKind::Input, at + ": field " + key + " is too long");
  if (key == "name") {
    e.name = value;
    return;
  }
  auto it = fields().find(key);
  if (it == fields().end()) {
    std::string known = "name";
    for (const auto& [k, v] : fields()) known += ", " + k;
    throw Error(ErrorKind::Input, at + ": unknown field \"" + key + "\" (known: " + known + ")");
  }
  if (!value.empty()) e.*(it->second) = value;
}

void check(std::vector<ManifestEntry>& entries, const std::string& name) {
  if (entries.empty()) throw Error(ErrorKind::Input, name + " has no entries");
  std::set<std::string> seen;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    ManifestEntry& e = entries[i];
    const std::string at = where(name, e.line);
    if (e.name.empty()) e.name = "entry-" + std::to_string(i + 1);
    if (!seen.insert(e.name).second) throw Error(ErrorKind::Input, at + ": the name \"" + e.name + "\" is used twice");
    if (e.p12.has_value() == e.keygen.has_value()) {
      throw Error(ErrorKind::Input, at + " (" + e.name + "): give exactly one of p12 and keygen");
    }
    if (e.keygen && !e.label) throw Error(ErrorKind::Input, at + " (" + e.name + "): keygen needs a label");
    if (!e.token && !e.serial) {
      throw Error(ErrorKind::Input, at + " (" + e.name + "): name the token with token (a pkcs11: URI) or serial");
    }
    if (!e.pin_file && !e.pin_env) {
      throw Error(ErrorKind::Input, at + " (" + e.name + "): give the token's PIN as pin_file or pin_env");
    }
    if (e.p12 && !e.password_file && !e.password_env) {
      throw Error(ErrorKind::Input, at + " (" + e.name + "): give the p12's password as password_file or password_env");
    }
  }
}

// One CSV record: fields separated by commas, double quotes around fields
// that hold commas or quotes, "" for a quote inside.
std::vector<std::string> csv_fields(const std::string& line, const std::string& at) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        cur += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        cur += c;
      }
    } else if (c == '"' && cur.empty()) {
      quoted = true;
    } else if (c == ',') {
      out.push_back(cur);
      cur.clear();
    } else if (c != '\r') {
      cur += c;
    }
  }
  if (quoted) throw Error(ErrorKind::Input, at + ": a quoted field is not closed");
  out.push_back(cur);
  return out;
}

}  // namespace

std::vector<ManifestEntry> parse_manifest_csv(const std::string& text, const std::string& name) {
  std::vector<ManifestEntry> entries;
  std::vector<std::string> header;
  std::size_t lineno = 0, start = 0;
  while (start <= text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    start = end + 1;
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos || line[0] == '#') continue;
    auto cols = csv_fields(line, where(name, lineno));
    if (header.empty()) {
      header = cols;
      for (auto& h : header) {
        h.erase(h.find_last_not_of(" \t") + 1);
        ManifestEntry probe;
        set_field(probe, h, "", where(name, lineno));  // an unknown column fails here, on its line
      }
      continue;
    }
    if (cols.size() != header.size()) {
      throw Error(ErrorKind::Input, where(name, lineno) + ": " + std::to_string(cols.size()) +
                                        " fields, the header has " + std::to_string(header.size()));
    }
    if (entries.size() >= kMaxEntries) throw Error(ErrorKind::Input, name + " has more than 100000 entries");
    ManifestEntry e;
    e.line = lineno;
    for (std::size_t i = 0; i < cols.size(); ++i) set_field(e, header[i], cols[i], where(name, lineno));
    entries.push_back(std::move(e));
  }
  check(entries, name);
  return entries;
}

std::vector<ManifestEntry> parse_manifest_json(const std::string& text, const std::string& name) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw Error(ErrorKind::Input, name + " is not valid JSON");
  if (j.is_object() && j.contains("entries")) j = j["entries"];
  if (!j.is_array()) throw Error(ErrorKind::Input, name + ": expected an array of entries");
  if (j.size() > kMaxEntries) throw Error(ErrorKind::Input, name + " has more than 100000 entries");
  std::vector<ManifestEntry> entries;
  std::size_t n = 0;
  for (const auto& item : j) {
    ++n;
    const std::string at = name + " entry " + std::to_string(n);
    if (!item.is_object()) throw Error(ErrorKind::Input, at + " is not an object");
    ManifestEntry e;
    e.line = n;
    for (const auto& [key, value] : item.items()) {
      if (!value.is_string()) throw Error(ErrorKind::Input, at + ": field " + key + " is not a string");
      set_field(e, key, value.get<std::string>(), at);
    }
    entries.push_back(std::move(e));
  }
  check(entries, name);
  return entries;
}

std::vector<ManifestEntry> parse_manifest(const std::string& text, const std::string& name) {
  auto first = text.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && (text[first] == '[' || text[first] == '{')) {
    return parse_manifest_json(text, name);
  }
  return parse_manifest_csv(text, name);
}

}  // namespace token
