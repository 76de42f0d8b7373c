// tokenkit_bench: one run, one table. Signatures per second through
// tokenkit-pkcs11.so, SoftHSM2 and raw OpenSSL EVP in this process (1 and 2
// threads), and the process CPU time per signature (1 thread), which a busy
// shared machine does not distort; login time, find-by-label lookups per
// second, durable C_CreateObject per second and the first lookup after this
// process or another one wrote an object, on tokens holding 100, 1,000 and
// 10,000 objects. Every token is made fresh in a temporary directory
// and removed afterwards. Not a test: it prints numbers, it asserts nothing
// about them.
//
//   tokenkit_bench [--seconds S] [--objects 100,1000,10000] [--threads 2]
//                  [--module PATH] [--softhsm PATH] [--only tokenkit|softhsm2]
#include <dlfcn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <p11-kit/pkcs11.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "token_harness.hpp"

namespace {

using namespace bench;

struct Options {
  double seconds = 2.0;
  std::vector<int> objects{100, 1000, 10000};
  int threads = 2;
  std::string module = TOKENKIT_MODULE_PATH;
  std::string softhsm = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so";
  std::string only;
};

// ---- signatures ----------------------------------------------------------

enum class Alg { kRsaPkcs, kRsaPss, kEcdsa };
const char* alg_name(Alg a) {
  switch (a) {
    case Alg::kRsaPkcs:
      return "RSA-2048 PKCS#1 v1.5";
    case Alg::kRsaPss:
      return "RSA-2048 PSS";
    default:
      return "ECDSA P-256";
  }
}

// The input each signer gets: a SHA-256 hash (with its DigestInfo for
// CKM_RSA_PKCS, which pads what it is given).
Bytes sign_input(Alg a) {
  Bytes hash(32, 0x5a);
  if (a != Alg::kRsaPkcs) return hash;
  static const unsigned char prefix[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60,
                                           0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                                           0x01, 0x05, 0x00, 0x04, 0x20};
  Bytes di(sizeof prefix + hash.size());
  std::memcpy(di.data(), prefix, sizeof prefix);
  std::memcpy(di.data() + sizeof prefix, hash.data(), hash.size());
  return di;
}

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Runs `body` in `threads` threads until `seconds` have passed; operations
// per second over all threads. `body` returns false to stop early (an error).
// With `cpu_us`, also the CPU time the whole process spent per operation
// (every thread of it: a module's own threads, like tokenkit's audit
// writer, count), which other work on a shared machine does not change.
double per_second(int threads, double seconds, const std::function<std::function<bool()>()>& make,
                  double* cpu_us = nullptr) {
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> total{0};
  std::atomic<bool> broken{false};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, op = make()] {
      while (!go) std::this_thread::yield();
      long n = 0;
      while (!stop) {
        if (!op()) {
          broken = true;
          break;
        }
        ++n;
      }
      total += n;
    });
  }
  auto t0 = Clock::now();
  double cpu0 = process_cpu_seconds();
  go = true;
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& th : pool) th.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  if (broken) throw std::runtime_error("an operation failed during the measurement");
  if (cpu_us != nullptr && total > 0)
    *cpu_us = (process_cpu_seconds() - cpu0) * 1e6 / static_cast<double>(total);
  return static_cast<double>(total) / elapsed;
}

CK_OBJECT_HANDLE token_key(Token& tk, CK_SESSION_HANDLE s, Alg a) {
  CK_OBJECT_HANDLE pub = 0, priv = 0;
  Template pt, kt;
  CK_MECHANISM m{};
  if (a == Alg::kEcdsa) {
    static const unsigned char p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48,
                                         0xce, 0x3d, 0x03, 0x01, 0x07};
    m.mechanism = CKM_EC_KEY_PAIR_GEN;
    pt.add(CKA_EC_PARAMS, p256, sizeof p256);
  } else {
    static const unsigned char e[] = {1, 0, 1};
    m.mechanism = CKM_RSA_PKCS_KEY_PAIR_GEN;
    pt.ulong(CKA_MODULUS_BITS, 2048).add(CKA_PUBLIC_EXPONENT, e, sizeof e);
  }
  std::string label = std::string("bench-") + (a == Alg::kEcdsa ? "ec" : "rsa");
  pt.flag(CKA_TOKEN, true).flag(CKA_VERIFY, true).text(CKA_LABEL, label);
  kt.flag(CKA_TOKEN, true).flag(CKA_PRIVATE, true).flag(CKA_SENSITIVE, true);
  kt.flag(CKA_SIGN, true).text(CKA_LABEL, label);
  ck(tk.f->C_GenerateKeyPair(s, &m, pt.data(), pt.size(), kt.data(), kt.size(), &pub, &priv),
     "C_GenerateKeyPair");
  return priv;
}

// C_Sign per second with `key` (made by token_key), each thread in its own
// session of the logged-in application.
double module_signs(Token& tk, CK_OBJECT_HANDLE key, Alg a, int threads, double seconds,
                    double* cpu_us) {
  Bytes in = sign_input(a);
  std::vector<CK_SESSION_HANDLE> sessions;
  double rate = per_second(
      threads, seconds,
      [&] {
        CK_SESSION_HANDLE own = tk.open();
        sessions.push_back(own);
        return [&tk, own, key, a, &in]() {
          CK_RSA_PKCS_PSS_PARAMS pss{CKM_SHA256, CKG_MGF1_SHA256, 32};
          CK_MECHANISM m{CKM_RSA_PKCS, nullptr, 0};
          if (a == Alg::kRsaPss) m = {CKM_RSA_PKCS_PSS, &pss, sizeof pss};
          if (a == Alg::kEcdsa) m = {CKM_ECDSA, nullptr, 0};
          unsigned char sig[512];
          CK_ULONG len = sizeof sig;
          if (tk.f->C_SignInit(own, &m, key) != CKR_OK) return false;
          return tk.f->C_Sign(own, const_cast<unsigned char*>(in.data()), in.size(), sig, &len) ==
                 CKR_OK;
        };
      },
      cpu_us);
  for (auto own : sessions) tk.f->C_CloseSession(own);
  return rate;
}

EVP_PKEY* openssl_key(Alg a) {
  EVP_PKEY* k = a == Alg::kEcdsa ? EVP_EC_gen("P-256") : EVP_RSA_gen(2048);
  if (!k) throw std::runtime_error("OpenSSL key generation failed");
  return k;
}

double openssl_signs(EVP_PKEY* key, Alg a, int threads, double seconds, double* cpu_us) {
  Bytes in = sign_input(Alg::kEcdsa);  // the bare hash: EVP pads and encodes
  return per_second(
      threads, seconds,
      [&] {
        return [key, a, &in]() {
          EVP_PKEY_CTX* c = EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr);
          bool ok = c && EVP_PKEY_sign_init(c) == 1;
          if (ok && a != Alg::kEcdsa) {
            ok = EVP_PKEY_CTX_set_rsa_padding(
                     c, a == Alg::kRsaPss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1;
            if (ok && a == Alg::kRsaPss)
              ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(c, 32) == 1 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1;
          }
          unsigned char sig[512];
          size_t len = sizeof sig;
          ok = ok && EVP_PKEY_sign(c, sig, &len, in.data(), in.size()) == 1;
          EVP_PKEY_CTX_free(c);
          return ok;
        };
      },
      cpu_us);
}

// ---- objects ---------------------------------------------------------------

struct ObjectRow {
  int objects;
  double creates, login_ms, lookups;
  // The first lookup after one object was written by this process, and by
  // another process (medians, ms).
  double after_own_ms = 0, after_other_ms = 0;
};

std::string obj_label(int i) {
  char b[32];
  std::snprintf(b, sizeof b, "obj-%06d", i);
  return b;
}

// Adds objects [from, to): data objects, every other one private, each
// durable when C_CreateObject returns. Creates per second.
double fill(Token& tk, CK_SESSION_HANDLE s, int from, int to) {
  std::string value(64, 'v');
  auto t0 = Clock::now();
  for (int i = from; i < to; ++i) {
    Template t;
    t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).flag(CKA_PRIVATE, i % 2 == 1);
    t.text(CKA_LABEL, obj_label(i)).text(CKA_APPLICATION, "bench").text(CKA_VALUE, value);
    CK_OBJECT_HANDLE o = 0;
    ck(tk.f->C_CreateObject(s, t.data(), t.size(), &o), "C_CreateObject");
    if (to - from >= 1000 && (i - from) % 1000 == 999)
      std::fprintf(stderr, "  %s: %d/%d objects\r", tk.name().c_str(), i + 1, to);
  }
  double secs = std::chrono::duration<double>(Clock::now() - t0).count();
  return (to - from) / secs;
}

bool lookup(Token& tk, CK_SESSION_HANDLE s, int i) {
  Template t;
  t.text(CKA_LABEL, obj_label(i));
  if (tk.f->C_FindObjectsInit(s, t.data(), t.size()) != CKR_OK) return false;
  CK_OBJECT_HANDLE found[2];
  CK_ULONG n = 0;
  CK_RV rv = tk.f->C_FindObjects(s, found, 2, &n);
  tk.f->C_FindObjectsFinal(s);
  return rv == CKR_OK && n == 1;
}

// Another process using the same token: forked from this one (the module
// is initialised again in it, as after any fork), it writes one public data
// object each time it is asked, and says when that write has returned.
class Writer {
 public:
  explicit Writer(Token& tk) {
    std::signal(SIGPIPE, SIG_IGN);  // a writer that died is reported, below
    int ask[2], told[2];
    if (pipe(ask) != 0 || pipe(told) != 0) throw std::runtime_error("pipe failed");
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      close(ask[1]);
      close(told[0]);
      _exit(serve(tk, ask[0], told[1]));
    }
    close(ask[0]);
    close(told[1]);
    ask_ = ask[1];
    told_ = told[0];
  }
  ~Writer() {
    if (write(ask_, "q", 1) != 1) kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    close(ask_);
    close(told_);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  // Returns when the other process's C_CreateObject has returned.
  void write_one() {
    char c = 0;
    if (write(ask_, "w", 1) != 1 || read(told_, &c, 1) != 1 || c != 'k') {
      int status = 0;
      waitpid(pid_, &status, 0);
      throw std::runtime_error("the writer process failed (exit status " +
                               std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")");
    }
  }

 private:
  static int serve(Token& tk, int ask, int told) {
    CK_RV rv = tk.f->C_Initialize(nullptr);
    if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      tk.f->C_Finalize(nullptr);
      rv = tk.f->C_Initialize(nullptr);
    }
    // The token by its label, as after any C_Initialize (SoftHSM2 knows
    // slot ids only once C_GetSlotList has run).
    CK_SLOT_ID slot = tk.slot();
    CK_ULONG n = 0;
    if (rv == CKR_OK) rv = tk.f->C_GetSlotList(CK_TRUE, nullptr, &n);
    std::vector<CK_SLOT_ID> slots(n);
    if (rv == CKR_OK) rv = tk.f->C_GetSlotList(CK_TRUE, slots.data(), &n);
    for (CK_ULONG i = 0; rv == CKR_OK && i < n; ++i) {
      CK_TOKEN_INFO ti;
      if (tk.f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && std::memcmp(ti.label, "bench ", 6) == 0)
        slot = slots[i];
    }
    CK_SESSION_HANDLE s = 0;
    if (rv == CKR_OK)
      rv = tk.f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
    if (rv != CKR_OK) {
      std::fprintf(stderr, "writer process: C_Initialize/C_OpenSession: 0x%lx\n",
                   static_cast<unsigned long>(rv));
      return 1;
    }
    char c = 0;
    for (int i = 0; read(ask, &c, 1) == 1 && c == 'w'; ++i) {
      Template t;
      t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).flag(CKA_PRIVATE, false);
      t.text(CKA_LABEL, "other-" + std::to_string(getpid()) + "-" + std::to_string(i));
      CK_OBJECT_HANDLE o = 0;
      if (tk.f->C_CreateObject(s, t.data(), t.size(), &o) != CKR_OK) return 2;
      if (write(told, "k", 1) != 1) return 3;
    }
    return 0;
  }
  pid_t pid_ = -1;
  int ask_ = -1, told_ = -1;
};

// The first lookup after one object was written (by `write`), median of
// kTimes, in ms.
double lookup_after(Token& tk, CK_SESSION_HANDLE s, int n, std::mt19937& rng,
                    const std::function<void(int)>& write) {
  const int kTimes = 15;
  std::vector<double> ms;
  for (int k = 0; k < kTimes; ++k) {
    write(k);
    auto t0 = Clock::now();
    if (!lookup(tk, s, static_cast<int>(rng() % n)))
      throw std::runtime_error(tk.name() + ": object not found after a write");
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<ObjectRow> object_rows(const std::string& name, const std::string& path,
                                   const Options& o) {
  TempDir dir;
  Token tk(name, path, dir.path);
  CK_SESSION_HANDLE s = tk.open();
  ck(tk.f->C_Login(s, CKU_USER, Token::pin(kUserPin), std::strlen(kUserPin)), "C_Login");
  std::vector<ObjectRow> rows;
  std::unique_ptr<Writer> writer;
  int have = 0;
  std::mt19937 rng(7);
  for (int n : o.objects) {
    ObjectRow r{n, fill(tk, s, have, n), 0, 0};
    have = n;
    // Login as an application sees it: C_Login, then the first lookup of a
    // private object (a module may load lazily). Median of three.
    std::vector<double> ms;
    for (int k = 0; k < 3; ++k) {
      ck(tk.f->C_Logout(s), "C_Logout");
      auto t0 = Clock::now();
      ck(tk.f->C_Login(s, CKU_USER, Token::pin(kUserPin), std::strlen(kUserPin)), "C_Login");
      if (!lookup(tk, s, 1)) throw std::runtime_error(name + ": private object not found");
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    r.login_ms = ms[1];
    r.lookups = per_second(1, o.seconds, [&] {
      return [&tk, s, n, &rng]() { return lookup(tk, s, static_cast<int>(rng() % n)); };
    });
    r.after_own_ms = lookup_after(tk, s, n, rng, [&](int k) {
      Template t;
      t.ulong(CKA_CLASS, CKO_DATA).flag(CKA_TOKEN, true).flag(CKA_PRIVATE, false);
      t.text(CKA_LABEL, "own-" + std::to_string(n) + "-" + std::to_string(k));
      CK_OBJECT_HANDLE h = 0;
      ck(tk.f->C_CreateObject(s, t.data(), t.size(), &h), "C_CreateObject");
    });
    if (!writer) writer = std::make_unique<Writer>(tk);
    r.after_other_ms = lookup_after(tk, s, n, rng, [&](int) { writer->write_one(); });
    rows.push_back(r);
  }
  writer.reset();
  tk.f->C_Logout(s);
  return rows;
}

// ---- output ----------------------------------------------------------------

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, v >= 100 ? "%.0f" : "%.1f", v);
  return b;
}
std::string ratio(double a, double b) {
  if (b <= 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", a / b);
  return buf;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(a + " needs a value");
      return argv[++i];
    };
    if (a == "--seconds") {
      o.seconds = std::stod(next());
    } else if (a == "--objects") {
      o.objects.clear();
      std::stringstream ss(next());
      for (std::string p; std::getline(ss, p, ',');) o.objects.push_back(std::stoi(p));
      std::sort(o.objects.begin(), o.objects.end());
    } else if (a == "--threads") {
      o.threads = std::stoi(next());
    } else if (a == "--module") {
      o.module = next();
    } else if (a == "--softhsm") {
      o.softhsm = next();
    } else if (a == "--only") {
      o.only = next();
    } else {
      std::printf(
          "usage: tokenkit_bench [--seconds S] [--objects 100,1000,10000] [--threads N]\n"
          "                      [--module PATH] [--softhsm PATH] [--only tokenkit|softhsm2]\n"
          "example: tokenkit_bench --seconds 3\n");
      std::exit(a == "--help" || a == "-h" ? 0 : 2);
    }
  }
  return o;
}

// The three signers are measured back to back for each row, and each row
// is the best of `kRounds` passes: on a machine shared with other work the
// load drifts, and this keeps a ratio from comparing a quiet moment with a
// busy one.
void sign_table(const Options& o) {
  const int kRounds = 3;
  const Alg algs[] = {Alg::kRsaPkcs, Alg::kRsaPss, Alg::kEcdsa};
  std::map<std::pair<int, int>, double> ours, hsm, raw;  // (alg, threads)
  std::map<int, double> ours_cpu, hsm_cpu, raw_cpu;      // (alg), 1 thread, lowest
  auto lowest = [](std::map<int, double>& m, int k, double v) {
    if (v > 0 && (m[k] == 0 || v < m[k])) m[k] = v;
  };
  std::vector<int> counts{1};
  if (o.threads > 1) counts.push_back(o.threads);
  struct Signer {
    TempDir dir;
    std::unique_ptr<Token> tk;
    CK_SESSION_HANDLE login = 0;
    std::map<int, CK_OBJECT_HANDLE> keys;
  };
  auto signer = [&](const std::string& name, const std::string& path) {
    auto sg = std::make_unique<Signer>();
    sg->tk = std::make_unique<Token>(name, path, sg->dir.path);
    sg->login = sg->tk->open();
    ck(sg->tk->f->C_Login(sg->login, CKU_USER, Token::pin(kUserPin), std::strlen(kUserPin)),
       "C_Login");
    for (Alg a : algs) sg->keys[int(a)] = token_key(*sg->tk, sg->login, a);
    return sg;
  };
  std::unique_ptr<Signer> mine, theirs;
  if (o.only != "softhsm2") mine = signer("tokenkit", o.module);
  if (o.only != "tokenkit") theirs = signer("SoftHSM2", o.softhsm);
  std::map<int, EVP_PKEY*> evp;
  for (Alg a : algs) evp[int(a)] = openssl_key(a);
  for (int round = 0; round < kRounds; ++round) {
    std::fprintf(stderr, "  signatures: pass %d/%d\r", round + 1, kRounds);
    for (Alg a : algs)
      for (int t : counts) {
        std::pair<int, int> k{int(a), t};
        double cpu = 0;
        raw[k] = std::max(raw[k], openssl_signs(evp[int(a)], a, t, o.seconds, &cpu));
        if (t == 1) lowest(raw_cpu, int(a), cpu);
        if (mine) {
          cpu = 0;
          ours[k] =
              std::max(ours[k], module_signs(*mine->tk, mine->keys[int(a)], a, t, o.seconds, &cpu));
          if (t == 1) lowest(ours_cpu, int(a), cpu);
        }
        if (theirs) {
          cpu = 0;
          hsm[k] = std::max(hsm[k],
                            module_signs(*theirs->tk, theirs->keys[int(a)], a, t, o.seconds, &cpu));
          if (t == 1) lowest(hsm_cpu, int(a), cpu);
        }
      }
  }
  for (auto& [alg, key] : evp) EVP_PKEY_free(key);
  mine.reset();
  theirs.reset();
  std::printf(
      "\n### C_Sign per second (SHA-256 hash in, key on the token)\n\n"
      "| operation | threads | tokenkit | SoftHSM2 | OpenSSL EVP | tokenkit / OpenSSL | "
      "SoftHSM2 / OpenSSL |\n|---|---|---|---|---|---|---|\n");
  for (Alg a : algs)
    for (int t : counts) {
      std::pair<int, int> k{int(a), t};
      std::printf("| %s | %d | %s | %s | %s | %s | %s |\n", alg_name(a), t, num(ours[k]).c_str(),
                  num(hsm[k]).c_str(), num(raw[k]).c_str(), ratio(ours[k], raw[k]).c_str(),
                  ratio(hsm[k], raw[k]).c_str());
    }
  // Per signature, the CPU time of the whole process (a ratio of rates when
  // the machine is busy: OpenSSL's CPU time over the module's).
  std::printf(
      "\n### CPU time per signature, 1 thread (microseconds, the whole process)\n\n"
      "| operation | tokenkit | SoftHSM2 | OpenSSL EVP | tokenkit / OpenSSL | "
      "SoftHSM2 / OpenSSL |\n|---|---|---|---|---|---|\n");
  for (Alg a : algs) {
    int k = int(a);
    std::printf("| %s | %s | %s | %s | %s | %s |\n", alg_name(a), num(ours_cpu[k]).c_str(),
                num(hsm_cpu[k]).c_str(), num(raw_cpu[k]).c_str(),
                ratio(raw_cpu[k], ours_cpu[k]).c_str(), ratio(raw_cpu[k], hsm_cpu[k]).c_str());
  }
  if (counts.size() < 2) return;
  std::printf(
      "\n### %d threads / 1 thread\n\n| operation | tokenkit | SoftHSM2 | OpenSSL EVP |\n"
      "|---|---|---|---|\n",
      o.threads);
  for (Alg a : algs) {
    std::pair<int, int> one{int(a), 1}, many{int(a), o.threads};
    std::printf("| %s | %s | %s | %s |\n", alg_name(a), ratio(ours[many], ours[one]).c_str(),
                ratio(hsm[many], hsm[one]).c_str(), ratio(raw[many], raw[one]).c_str());
  }
}

void object_table(const Options& o) {
  std::vector<std::pair<std::string, std::vector<ObjectRow>>> all;
  if (o.only != "softhsm2") all.emplace_back("tokenkit", object_rows("tokenkit", o.module, o));
  if (o.only != "tokenkit") all.emplace_back("SoftHSM2", object_rows("SoftHSM2", o.softhsm, o));
  std::fprintf(stderr, "\n");
  std::printf(
      "\n### Tokens holding N objects (half of them private)\n\n"
      "| module | objects | C_CreateObject/s (durable) | login + first lookup (ms) | "
      "find-by-label/s | lookups/s vs %d objects |\n|---|---|---|---|---|---|\n",
      o.objects.front());
  for (auto& [name, rows] : all)
    for (auto& r : rows)
      std::printf("| %s | %d | %s | %s | %s | %s |\n", name.c_str(), r.objects,
                  num(r.creates).c_str(), num(r.login_ms).c_str(), num(r.lookups).c_str(),
                  ratio(r.lookups, rows.front().lookups).c_str());
  std::printf(
      "\n### The first lookup after a write (ms, median of 15)\n\n"
      "| module | objects | a lookup (no write) | after this process wrote one object | "
      "after another process wrote one object |\n|---|---|---|---|---|\n");
  auto ms = [](double v) {
    char b[32];
    std::snprintf(b, sizeof b, v >= 10 ? "%.0f" : v >= 0.1 ? "%.2f" : "%.3f", v);
    return std::string(b);
  };
  for (auto& [name, rows] : all)
    for (auto& r : rows)
      std::printf("| %s | %d | %s | %s | %s |\n", name.c_str(), r.objects,
                  ms(r.lookups > 0 ? 1000 / r.lookups : 0).c_str(), ms(r.after_own_ms).c_str(),
                  ms(r.after_other_ms).c_str());
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = parse(argc, argv);
    std::printf(
        "tokenkit_bench: %.1f s per measurement (signatures: best of 3 passes), %u CPUs, %s\n",
        o.seconds, std::thread::hardware_concurrency(), OpenSSL_version(OPENSSL_VERSION));
    const char* kdf = std::getenv("TOKENKIT_KDF_ITERATIONS");
    std::printf(
        "tokenkit PIN KDF: %s\n",
        kdf ? (std::string(kdf) + " iterations (lowered by TOKENKIT_KDF_ITERATIONS)").c_str()
            : "default cost");
    sign_table(o);
    object_table(o);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenkit_bench: %s\n", e.what());
    return 1;
  }
}
