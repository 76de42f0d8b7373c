#include "softhsm_token.hpp"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace hygiene {

void run(const std::string& command) {
  const std::string full = command + " 2>&1";
  // The peer tools make and fill the token, by design (CONVENTIONS.md, 10).
  FILE* p = popen(full.c_str(), "r");  // NOLINT(cert-env33-c)
  if (p == nullptr) throw std::runtime_error("cannot run: " + command);
  std::string output;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p) != nullptr) output += buf;
  if (pclose(p) != 0) throw std::runtime_error("failed: " + command + "\n" + output);
}

SoftHsmToken::SoftHsmToken(const std::string& label, const std::string& pin)
    : label_(label), pin_(pin) {
  char tmpl[] = "/tmp/tokenkit-hygiene-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  std::filesystem::create_directory(dir_ / "tokens");
  const auto conf = dir_ / "softhsm2.conf";
  std::ofstream(conf) << "directories.tokendir = " << (dir_ / "tokens").string()
                      << "\nobjectstore.backend = file\nlog.level = ERROR\n";
  setenv("SOFTHSM2_CONF", conf.c_str(), 1);
  run(std::string(SOFTHSM2_UTIL) + " --init-token --free --label '" + label + "' --pin '" + pin +
      "' --so-pin 'so-" + pin + "'");
}

SoftHsmToken::~SoftHsmToken() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

void SoftHsmToken::generate_key_pair(const std::string& key_type, const std::string& id_hex,
                                     const std::string& label) const {
  run(std::string(PKCS11_TOOL) + " --module " + SOFTHSM2_MODULE + " --token-label '" + label_ +
      "' --login --pin '" + pin_ + "' --keypairgen --key-type " + key_type + " --id " + id_hex +
      " --label '" + label + "'");
}

}  // namespace hygiene
