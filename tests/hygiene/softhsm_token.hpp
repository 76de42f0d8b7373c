// A fresh SoftHSM2 token in a temporary folder, made and filled by the
// peer tools (softhsm2-util, pkcs11-tool), never by the code under test.
#pragma once

#include <filesystem>
#include <string>

namespace hygiene {

class SoftHsmToken {
 public:
  // Sets SOFTHSM2_CONF for this process (before any module is loaded) and
  // initialises a token with this label, user PIN and SO PIN.
  SoftHsmToken(const std::string& label, const std::string& pin);
  ~SoftHsmToken();
  SoftHsmToken(const SoftHsmToken&) = delete;
  SoftHsmToken& operator=(const SoftHsmToken&) = delete;

  // pkcs11-tool --keypairgen with the user PIN; key_type e.g. "EC:prime256v1".
  void generate_key_pair(const std::string& key_type, const std::string& id_hex,
                         const std::string& label) const;

  const std::string& label() const { return label_; }
  const std::string& pin() const { return pin_; }

 private:
  std::filesystem::path dir_;
  std::string label_;
  std::string pin_;
};

// Runs a shell command line; throws with its output when it fails.
void run(const std::string& command);

}  // namespace hygiene
