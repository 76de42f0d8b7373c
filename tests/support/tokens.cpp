#include "tokens.hpp"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "process.hpp"
#include "token/module.hpp"
#include "token/session.hpp"

namespace fs = std::filesystem;

namespace tokenkit::test {

namespace {
std::atomic<bool> wrong_pin{false};
}

void note_unexpected_wrong_pin() { wrong_pin = true; }
bool unexpected_wrong_pin_seen() { return wrong_pin; }

std::string make_temp_dir(const std::string& tag) {
  std::string tmpl = (fs::temp_directory_path() / ("tokenkit-" + tag + "-XXXXXX")).string();
  if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return tmpl;
}

void remove_tree(const std::string& dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
  if (!f) throw std::runtime_error("cannot write " + path);
}

namespace {

struct KeysHolder {
  TestKeys keys;
  KeysHolder() {
    TestKeys& k = keys;
    k.dir = make_temp_dir("keys");
    auto p = [&k](const std::string& f) { return k.dir + "/" + f; };
    auto ossl = [](std::vector<std::string> a) {
      a.insert(a.begin(), "openssl");
      run_ok(a);
    };
    ossl({"req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p("rsa.pem"), "-out",
          p("rsa.crt"), "-days", "365", "-subj", "/CN=Alice Example/emailAddress=" + k.rsa_email,
          "-addext", "subjectAltName=email:" + k.rsa_email, "-addext",
          "keyUsage=digitalSignature,keyEncipherment", "-addext",
          "extendedKeyUsage=emailProtection"});
    ossl({"req",
          "-x509",
          "-newkey",
          "ec",
          "-pkeyopt",
          "ec_paramgen_curve:P-256",
          "-nodes",
          "-keyout",
          p("ec.pem"),
          "-out",
          p("ec.crt"),
          "-days",
          "365",
          "-subj",
          "/CN=Bob Example/emailAddress=" + k.ec_email,
          "-addext",
          "subjectAltName=email:" + k.ec_email,
          "-addext",
          "keyUsage=digitalSignature,keyAgreement",
          "-addext",
          "extendedKeyUsage=emailProtection"});
    for (std::string n : {"rsa", "ec"}) {
      ossl({"pkey", "-in", p(n + ".pem"), "-outform", "DER", "-out", p(n + ".key.der")});
      ossl({"pkey", "-in", p(n + ".pem"), "-pubout", "-outform", "DER", "-out", p(n + ".pub.der")});
      ossl({"x509", "-in", p(n + ".crt"), "-outform", "DER", "-out", p(n + ".crt.der")});
    }
    k.rsa_key_der = p("rsa.key.der");
    k.rsa_pub_der = p("rsa.pub.der");
    k.rsa_cert_der = p("rsa.crt.der");
    k.rsa_cert_pem = p("rsa.crt");
    k.ec_key_der = p("ec.key.der");
    k.ec_pub_der = p("ec.pub.der");
    k.ec_cert_der = p("ec.crt.der");
    k.ec_cert_pem = p("ec.crt");
  }
  ~KeysHolder() { remove_tree(keys.dir); }
};

class SoftHsm2 : public TokenProvider {
 public:
  std::string name() const override { return "softhsm2"; }
  std::string module_path() const override {
    return "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so";
  }
  Env create(const std::string& dir, const std::string& label) override {
    const std::string conf = dir + "/softhsm2.conf";
    if (!fs::exists(conf)) {
      fs::create_directories(dir + "/tokens");
      write_file(conf, "directories.tokendir = " + dir +
                           "/tokens\nobjectstore.backend = file\n"
                           "log.level = ERROR\nslots.removable = false\n");
    }
    setenv("SOFTHSM2_CONF", conf.c_str(), 1);
    Env env{{"SOFTHSM2_CONF", conf}};
    run_ok({"softhsm2-util", "--init-token", "--free", "--label", label, "--pin", kUserPin,
            "--so-pin", kSoPin},
           env);
    return env;
  }
};

// tokenkit's own software token: a store directory per test, a low KDF cost
// (for tests only), and the token made through PKCS#11 calls like any client.
class TokenkitModule : public TokenProvider {
 public:
  std::string name() const override { return "tokenkit"; }
  std::string module_path() const override { return TOKENKIT_PKCS11_MODULE; }
  Env create(const std::string& dir, const std::string& label) override {
    const std::string store = dir + "/tokens";
    fs::create_directories(store);
    setenv("TOKENKIT_PKCS11_DIR", store.c_str(), 1);
    setenv("TOKENKIT_KDF_ITERATIONS", "1000", 1);
    Env env{{"TOKENKIT_PKCS11_DIR", store}, {"TOKENKIT_KDF_ITERATIONS", "1000"}};
    auto m = token::Module::load(module_path());
    std::optional<CK_SLOT_ID> free;
    for (const auto& s : m.slots(true)) {
      if (s.has_token && !(s.token.flags & CKF_TOKEN_INITIALIZED)) free = s.id;
    }
    if (!free) throw std::runtime_error("the tokenkit module shows no free slot");
    const CK_SLOT_ID free_slot = *free;
    CK_UTF8CHAR padded[32];
    std::fill(std::begin(padded), std::end(padded), ' ');
    std::copy(label.begin(), label.end(), padded);
    auto* f = m.functions();
    auto so = reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kSoPin));
    auto user = reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(kUserPin));
    m.call("C_InitToken", f->C_InitToken, label, free_slot, so, CK_ULONG(std::strlen(kSoPin)),
           padded);
    token::Session s(m, free_slot, true);
    s.login(token::Secret(kSoPin), CKU_SO);
    m.call("C_InitPIN", f->C_InitPIN, label, s.handle(), user, CK_ULONG(std::strlen(kUserPin)));
    s.logout();
    return env;
  }
};

// The emulated YubiKey of ../shared/emulators, started once by the piv ctest
// fixture (tests/piv/lab-up.sh). A fresh token is the card reset as a real
// YubiKey is (tests/piv/fresh-card.sh): PIN 123456, PUK 12345678, the
// default management key (kPivManagementKey), no keys. One card serves both
// modules, so a test can write through ykcs11 and read through OpenSC.
class PivCard : public TokenProvider {
 public:
  PivCard(std::string name, std::string module, std::string label)
      : name_(std::move(name)), module_(std::move(module)), label_(std::move(label)) {}
  std::string name() const override { return name_; }
  std::string module_path() const override { return module_; }
  bool available() const override {
    return std::getenv("TOKENKIT_PIV_LAB") != nullptr && TokenProvider::available();
  }
  Env create(const std::string&, const std::string&) override {
    run_ok({TOKENKIT_PIV_FRESH_CARD});
    return {};
  }
  std::string label_of(const std::string&) const override { return label_; }

 private:
  std::string name_, module_, label_;
};

// The emulated TPM 2.0 token of ../shared/emulators, started once by the tpm
// ctest fixture (tests/tpm/lab-up.sh, which sets TOKENKIT_TPM_LAB and the
// resource manager's D-Bus address). A fresh token is a new tpm2-pkcs11
// store in the test's directory, under the lab's persistent primary key (a
// new primary per test would fill the TPM's few persistent handles).
class TpmToken : public TokenProvider {
 public:
  std::string name() const override { return "tpm"; }
  std::string module_path() const override { return kTpmModule; }
  bool available() const override {
    return std::getenv("TOKENKIT_TPM_LAB") != nullptr && TokenProvider::available();
  }
  Env create(const std::string& dir, const std::string& label) override {
    const char* lab = std::getenv("TOKENKIT_TPM_LAB");
    if (lab == nullptr)
      throw std::runtime_error("the tpm provider runs only inside the tpm ctest fixture");
    const std::string store = dir + "/tpm2-store";
    // What tpm-up.sh writes to $LAB/env: tpm2-abrmd on the lab's private
    // session bus, for the module and for tpm2_ptool.
    Env env{{"TPM2_PKCS11_STORE", store},
            {"TPM2_PKCS11_TCTI", "tabrmd:bus_type=session"},
            {"TPM2TOOLS_TCTI", "tabrmd:bus_type=session"},
            {"DBUS_SESSION_BUS_ADDRESS", "unix:path=" + std::string(lab) + "/run/dbus.sock"}};
    if (!fs::exists(store)) {
      std::string primary = read_file(std::string(lab) + "/primary-handle");
      primary.erase(primary.find_last_not_of(" \n") + 1);
      fs::create_directories(store);
      run_ok({"tpm2_ptool", "init", "--primary-handle=" + primary}, env);
    }
    run_ok({"tpm2_ptool", "addtoken", "--pid=1", "--label=" + label,
            std::string("--sopin=") + kSoPin, std::string("--userpin=") + kUserPin},
           env);
    for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
    return env;
  }
};

}  // namespace

const TestKeys& test_keys() {
  static KeysHolder holder;
  return holder.keys;
}

bool TokenProvider::available() const { return fs::exists(module_path()); }

std::unique_ptr<TokenProvider> make_provider(const std::string& name) {
  if (name == "softhsm2") return std::make_unique<SoftHsm2>();
  if (name == "tokenkit") return std::make_unique<TokenkitModule>();
  // Until a certificate is in slot 9a, when OpenSC names the token after it.
  if (name == "ykcs11")
    return std::make_unique<PivCard>(name, kYkcs11Module, "YubiKey PIV #1234567");
  if (name == "opensc-piv") return std::make_unique<PivCard>(name, kOpenscModule, "PIV_II");
  if (name == "tpm") return std::make_unique<TpmToken>();
  throw std::runtime_error("unknown token provider " + name);
}

std::vector<std::string> token_providers() {
  std::vector<std::string> out;
  const char* only = std::getenv("TOKENKIT_TEST_PROVIDERS");  // e.g. "softhsm2"
  for (std::string n : {"softhsm2", "tokenkit", "ykcs11", "opensc-piv"}) {
    if (only && std::string(only).find(n) == std::string::npos) continue;
    if (make_provider(n)->available()) out.push_back(n);
  }
  return out;
}

FreshToken::FreshToken(const std::string& provider, const std::string& label)
    : provider_(make_provider(provider)), label_(label), module_(provider_->module_path()) {
  dir_ = make_temp_dir(provider);
  try {
    env_ = provider_->create(dir_, label);
  } catch (...) {
    remove_tree(dir_);  // no destructor runs for a constructor that throws
    throw;
  }
  label_ = provider_->label_of(label);
}

FreshToken::~FreshToken() { remove_tree(dir_); }

void FreshToken::add_token(const std::string& label) { provider_->create(dir_, label); }

void FreshToken::pkcs11_tool(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"pkcs11-tool", "--module", module_, "--token-label", label_};
  argv.insert(argv.end(), args.begin(), args.end());
  run_ok(argv, env_);
}

namespace {
void write_pair(FreshToken& t, const std::string& key, const std::string& pub,
                const std::string& cert, const std::string& id, const std::string& label) {
  const std::vector<std::string> login{"--login", "--pin", kUserPin};
  auto with = [&](std::vector<std::string> a) {
    a.insert(a.end(), login.begin(), login.end());
    t.pkcs11_tool(a);
  };
  with({"--write-object", key, "--type", "privkey", "--id", id, "--label", label, "--usage-sign",
        "--usage-decrypt"});
  with({"--write-object", pub, "--type", "pubkey", "--id", id, "--label", label});
  with({"--write-object", cert, "--type", "cert", "--id", id, "--label", label});
}
}  // namespace

void FreshToken::write_rsa() {
  const auto& k = test_keys();
  write_pair(*this, k.rsa_key_der, k.rsa_pub_der, k.rsa_cert_der, "01", "alice");
}

void FreshToken::write_ec() {
  const auto& k = test_keys();
  write_pair(*this, k.ec_key_der, k.ec_pub_der, k.ec_cert_der, "02", "bob");
}

Env FreshToken::tool_env() const {
  Env env = env_;
  env["TOKENKIT_MODULE"] = module_;
  return env;
}

ProcessResult FreshToken::run_tool(const std::string& binary, std::vector<std::string> args,
                                   const std::string& input, const Env& extra,
                                   bool wrong_pin_expected) const {
  args.insert(args.begin(), binary);
  Env env = tool_env();
  for (const auto& [k, v] : extra) env[k] = v;
  ProcessResult r = run(args, env, input);
  if (r.exit_code == 5 && !wrong_pin_expected) note_unexpected_wrong_pin();
  return r;
}

std::string crlf(const std::string& s) {
  std::string out;
  out.reserve(s.size() + s.size() / 32);
  for (char c : s) {
    if (c == '\n') out += '\r';
    out += c;
  }
  return out;
}

}  // namespace tokenkit::test
