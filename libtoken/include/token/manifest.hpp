// A provisioning manifest: one entry per token (or per identity) to set up.
// CSV (header row) or JSON (an array, or {"entries": [...]}). Parsing is pure:
// it opens no file an entry names, so it can be fuzzed and tested alone.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace token {

struct ManifestEntry {
  std::string name;                        // unique; default "entry-N"
  std::optional<std::string> p12;          // migrate this PKCS#12 file ...
  std::optional<std::string> keygen;       // ... or generate this key type ("ec:p256")
  std::optional<std::string> label;        // key label (keygen: required)
  std::optional<std::string> password_file, password_env;  // the p12's password
  std::optional<std::string> module;       // path or p11-kit name
  std::optional<std::string> token;        // pkcs11: URI of the token
  std::optional<std::string> serial;       // or its serial number
  std::optional<std::string> pin_file, pin_env;          // the current user PIN
  std::optional<std::string> new_pin_file, new_pin_env;  // set this user PIN afterwards
  std::size_t line = 0;                    // where it was in the file
};

// Throws Error(Input) naming the manifest, the line or entry, and the problem:
// unknown field, missing target, both p12 and keygen, duplicate name, ...
std::vector<ManifestEntry> parse_manifest(const std::string& text, const std::string& name);

// The same, with the format chosen by the first non-blank character.
std::vector<ManifestEntry> parse_manifest_csv(const std::string& text, const std::string& name);
std::vector<ManifestEntry> parse_manifest_json(const std::string& text, const std::string& name);

}  // namespace token
