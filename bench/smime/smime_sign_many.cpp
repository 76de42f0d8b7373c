// Signs N small messages in one process with a key on a token, as a mail
// server or a batch job would: one module load, one login, one key, then
// tokenkit's S/MIME signing N times. Prints the per-message time; the
// benchmark script (bench/smime-bench.sh) reads it.
//   smime_sign_many MODULE KEY-URI PIN-FILE MESSAGE N
#include <openssl/bio.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "token/engine.hpp"
#include "token/select.hpp"
#include "token/session.hpp"
#include "token/smime.hpp"

int main(int argc, char** argv) {
  if (argc != 6) {
    std::cerr << "usage: smime_sign_many MODULE KEY-URI PIN-FILE MESSAGE N\n";
    return 2;
  }
  try {
    const token::Uri uri = token::Uri::parse(argv[2]);
    token::Module module = token::Module::load(argv[1]);
    token::TokenSelector sel;
    sel.uri = uri;
    const token::SlotInfo slot = token::select_token(module, sel);
    std::ifstream pin_file(argv[3]);
    std::string pin;
    std::getline(pin_file, pin);
    std::ifstream msg_file(argv[4], std::ios::binary);
    std::stringstream msg;
    msg << msg_file.rdbuf();
    const std::string message = msg.str();
    const int n = std::stoi(argv[5]);

    token::Session session(module, slot.id);
    session.login(token::Secret(pin));
    token::TokenKey key = token::open_private_key(session, uri);
    const auto start = std::chrono::steady_clock::now();
    std::size_t bytes = 0;
    for (int i = 0; i < n; ++i) {
      BIO* in = BIO_new_mem_buf(message.data(), static_cast<int>(message.size()));
      BIO* out = BIO_new(BIO_s_mem());
      token::smime::sign(key, in, out, {});
      bytes += static_cast<std::size_t>(BIO_pending(out));
      BIO_free(in);
      BIO_free(out);
    }
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    std::printf("signed %d messages (%zu bytes of output) in %.3f s: %.3f ms per message\n", n,
                bytes, took.count(), 1000.0 * took.count() / n);
  } catch (const std::exception& e) {
    std::cerr << "smime_sign_many: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
