// Fresh tokens for tests, and the test data put on them. Test data is made
// by openssl and written with pkcs11-tool, never by the code under test.
//
// Every suite that touches a token is parameterised by provider name, so a
// new kind of token (the tokenkit module, the emulated PIV card, a TPM) is
// one more TokenProvider and every existing test runs on it.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "process.hpp"

namespace tokenkit::test {

using Env = std::map<std::string, std::string>;

constexpr const char* kUserPin = "123456";
constexpr const char* kSoPin = "12345678";
// The emulated PIV card: its SO "PIN" for ykcs11 is the management key.
constexpr const char* kPivManagementKey = "010203040506070801020304050607080102030405060708";
constexpr const char* kYkcs11Module = "/usr/lib/x86_64-linux-gnu/libykcs11.so";
constexpr const char* kOpenscModule = "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so";
constexpr const char* kTpmModule = "/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so";

// Keys and certificates made once per test process by the openssl CLI.
struct TestKeys {
  std::string dir;
  std::string rsa_key_der, rsa_pub_der, rsa_cert_der, rsa_cert_pem;
  std::string ec_key_der, ec_pub_der, ec_cert_der, ec_cert_pem;
  std::string rsa_email = "alice@example.org";
  std::string ec_email = "bob@example.org";
};
const TestKeys& test_keys();

class TokenProvider {
 public:
  virtual ~TokenProvider() = default;
  virtual std::string name() const = 0;
  virtual std::string module_path() const = 0;
  virtual bool available() const;
  // Creates an initialised token with user and SO PINs set in `dir`, and sets
  // (in this process) and returns (for child processes) the environment the
  // module needs to find it.
  virtual Env create(const std::string& dir, const std::string& label) = 0;
  // The label the module shows for the token create() made: `requested`,
  // unless the token names itself (a PIV card: "YubiKey PIV #1234567").
  virtual std::string label_of(const std::string& requested) const { return requested; }
};

std::unique_ptr<TokenProvider> make_provider(const std::string& name);
// The providers every token suite runs against (those whose module exists;
// the emulated PIV card's "ykcs11" and "opensc-piv" only inside the piv
// ctest fixture, which sets TOKENKIT_PIV_LAB). The emulated TPM ("tpm",
// inside the tpm fixture) is not among them: it refuses imported keys, which
// most suites write; tests/tpm asks for it by name.
std::vector<std::string> token_providers();

// A token in its own temporary directory, removed afterwards.
class FreshToken {
 public:
  explicit FreshToken(const std::string& provider, const std::string& label = "tokenkit-test");
  ~FreshToken();
  FreshToken(const FreshToken&) = delete;
  FreshToken& operator=(const FreshToken&) = delete;

  // A second token beside the first, in the same directory/config.
  void add_token(const std::string& label);
  // Writes test_keys()' RSA key pair and certificate (id 01, label "alice")
  // or EC ones (id 02, label "bob") with pkcs11-tool.
  void write_rsa();
  void write_ec();
  void pkcs11_tool(const std::vector<std::string>& args);

  const std::string& dir() const { return dir_; }
  const std::string& label() const { return label_; }
  const std::string& module() const { return module_; }
  const Env& env() const { return env_; }
  // The environment for running the `tokenkit` command against this token:
  // env() with TOKENKIT_MODULE set to its module.
  Env tool_env() const;
  // Runs the `tokenkit` binary at `binary` with `args` (and `input` on
  // stdin) in tool_env() plus `extra`. Exit status 5 (wrong PIN) is noted
  // as unexpected (note_unexpected_wrong_pin) unless `wrong_pin_expected`.
  ProcessResult run_tool(const std::string& binary, std::vector<std::string> args,
                         const std::string& input = {}, const Env& extra = {},
                         bool wrong_pin_expected = false) const;
  TokenProvider& provider() { return *provider_; }

 private:
  std::unique_ptr<TokenProvider> provider_;
  std::string dir_, label_, module_;
  Env env_;
};

// A test suite that could reach a real card must never lock it: once a
// login fails with CKR_PIN_INCORRECT where no test expected it, every later
// test that needs a token fails at once instead of trying again.
void note_unexpected_wrong_pin();
bool unexpected_wrong_pin_seen();

std::string make_temp_dir(const std::string& tag);
void remove_tree(const std::string& dir);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
// `s` with every LF turned into CRLF (S/MIME's canonical line ends).
std::string crlf(const std::string& s);

}  // namespace tokenkit::test
