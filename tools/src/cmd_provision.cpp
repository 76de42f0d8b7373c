// tokenkit provision MANIFEST: many tokens (or identities) set up from one
// file, each entry on its own: one failing entry never stops the others, and
// a re-run resumes where the last one stopped.
#include <signal.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "describe.hpp"
#include "output.hpp"
#include "token/error.hpp"
#include "token/keygen.hpp"
#include "token/manifest.hpp"
#include "token/provision.hpp"

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;
using token::ManifestEntry;

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(ErrorKind::Io, "cannot open " + path);
  std::ostringstream s;
  s << f.rdbuf();
  if (s.str().size() > (16u << 20)) throw Error(ErrorKind::Input, path + " is larger than 16 MiB");
  return s.str();
}

token::PinSource source(const std::optional<std::string>& file,
                        const std::optional<std::string>& env) {
  token::PinSource s;
  s.file = file;
  s.env = env;
  s.allow_prompt = false;  // a batch never stops to ask
  return s;
}

// What is done, kept in a state file beside the manifest (or --state), so
// that a re-run after a crash or a kill skips it.
class State {
 public:
  explicit State(std::string path) : path_(std::move(path)) {
    std::ifstream f(path_);
    if (!f) return;
    Json j = Json::parse(f, nullptr, false);
    if (j.is_object() && j.contains("done") && j["done"].is_object()) done_ = j["done"];
    if (j.is_object() && j.contains("pin_change_started")) pin_started_ = j["pin_change_started"];
  }
  bool done(const std::string& name) const { return done_.contains(name); }
  const Json& result(const std::string& name) const { return done_[name]; }
  bool pin_change_started(const std::string& name) const {
    return pin_started_.is_array() &&
           std::find(pin_started_.begin(), pin_started_.end(), name) != pin_started_.end();
  }
  void mark_pin_change(const std::string& name) {
    if (!pin_started_.is_array()) pin_started_ = Json::array();
    pin_started_.push_back(name);
    save();
  }
  void mark_done(const std::string& name, const Json& result) {
    done_[name] = result;
    save();
  }

 private:
  void save() {
    Output out(path_);
    const std::string text = Json{{"done", done_}, {"pin_change_started", pin_started_}}.dump(2);
    BIO_write(out.bio(), text.data(), static_cast<int>(text.size()));
    out.commit();
  }
  std::string path_;
  Json done_ = Json::object();
  Json pin_started_ = Json::array();
};

CK_UTF8CHAR_PTR utf8(const token::Secret& s) {
  return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s.data()));
}

// Logs in with the current PIN; after an interrupted PIN change, the new PIN
// may already be the PIN: try it first (at most one failed attempt).
void entry_login(token::Session& s, const ManifestEntry& e, bool pin_change_started) {
  token::Secret pin = token::read_secret(source(e.pin_file, e.pin_env), "PIN of " + e.name);
  if (pin_change_started && (e.new_pin_file || e.new_pin_env)) {
    token::Secret fresh =
        token::read_secret(source(e.new_pin_file, e.new_pin_env), "new PIN of " + e.name);
    try {
      s.login(fresh);
      return;
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::PinIncorrect) throw;
    }
  }
  s.login(pin);
}

Json provision_entry(const ManifestEntry& e, State& state) {
  Json r{{"name", e.name}};
  TokenOptions topts;
  topts.module = e.module;
  topts.uri = e.token;
  topts.serial = e.serial;
  OpenedToken tok = open_session(topts, PinOptions{}, Login::ByCaller);
  token::Session& session = tok.session;
  r["token"] = token::Uri::for_token(tok.slot.token);
  entry_login(session, e, state.pin_change_started(e.name));
  if (e.p12) {
    token::Secret password =
        token::read_secret(source(e.password_file, e.password_env), "password of " + *e.p12);
    token::P12Contents p12 = token::read_pkcs12(*e.p12, password);
    token::ImportOptions opts;
    opts.label = e.label;
    token::ImportPlan plan = token::plan_import(p12, session, opts, *e.p12);
    token::ImportResult res = token::apply_import(plan, session);
    r["action"] = "import";
    Json ids = Json::array(), certs = Json::array();
    for (const auto& i : plan.identities) {
      ids.push_back(hex_id(i.id));
      certs.push_back(i.fingerprint_sha256);
    }
    r["ids"] = ids;
    r["certificate_sha256"] = certs;
    r["written"] = res.created.size();
    r["verified"] = res.verified;
  } else {
    // A key under this label from an interrupted run is reused, not doubled.
    token::AttributeTemplate same;
    same.add(CKA_CLASS, CK_ULONG(CKO_PRIVATE_KEY)).add(CKA_LABEL, *e.label);
    auto existing = session.find(same);
    r["action"] = "keygen";
    if (existing.empty()) {
      auto key = token::generate_key_pair(session, token::parse_key_spec(*e.keygen), *e.label,
                                          std::nullopt);
      r["ids"] = Json::array({hex_id(key.id)});
    } else {
      r["ids"] =
          Json::array({hex_id(token::describe_object(session, tok.slot.token, existing[0]).id)});
      r["reused"] = true;
    }
  }
  if (e.new_pin_file || e.new_pin_env) {
    token::Secret fresh =
        token::read_secret(source(e.new_pin_file, e.new_pin_env), "new PIN of " + e.name);
    token::Secret old = token::read_secret(source(e.pin_file, e.pin_env), "PIN of " + e.name);
    if (!state.pin_change_started(e.name)) state.mark_pin_change(e.name);
    CK_RV rv = tok.target.module.invoke("C_SetPIN", tok.target.module.functions()->C_SetPIN,
                                        session.handle(), utf8(old), CK_ULONG(old.size()),
                                        utf8(fresh), CK_ULONG(fresh.size()));
    // Already changed by the interrupted run: the old PIN is no longer it.
    if (rv != CKR_OK && rv != CKR_PIN_INCORRECT)
      throw Error::from_rv("C_SetPIN", rv, session.context());
    r["pin_changed"] = true;
  }
  return r;
}

// SIGINT, SIGTERM and SIGHUP stop a run between two entries, never inside
// one: a token's own store is not always safe against a process that dies
// in the middle of a call. SoftHSM2 (file backend) truncates and rewrites
// its token.object in place at every C_Login; a Ctrl-C that lands there
// leaves it empty, and the token, its PIN and its keys are gone. A second
// signal of the same kind stops at once.
volatile sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) {
  if (g_stop_signal == sig) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    raise(sig);
    return;
  }
  g_stop_signal = sig;
  static const char kMsg[] =
      "tokenkit provision: stopping after the entry in progress (the same signal again stops at "
      "once)\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
}

class StopSignals {
 public:
  StopSignals() {
    g_stop_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (std::size_t i = 0; i < kSignals.size(); ++i) {
      sigaction(kSignals[i], nullptr, &old_[i]);
      // A signal ignored at start stays ignored (a job a script started
      // with '&' is not stopped by the terminal's Ctrl-C).
      if (old_[i].sa_handler != SIG_IGN) sigaction(kSignals[i], &sa, nullptr);
    }
  }
  ~StopSignals() {
    for (std::size_t i = 0; i < kSignals.size(); ++i) sigaction(kSignals[i], &old_[i], nullptr);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int caught() const { return g_stop_signal; }

 private:
  static constexpr std::array<int, 3> kSignals{SIGINT, SIGTERM, SIGHUP};
  std::array<struct sigaction, 3> old_{};
};

class Progress {
 public:
  Progress(std::size_t total, bool quiet) : total_(total), tty_(isatty(2) != 0), quiet_(quiet) {}
  void step(std::size_t n, const std::string& name, const std::string& status) const {
    if (quiet_) return;
    if (tty_) {
      const std::size_t width = 30, filled = total_ ? n * width / total_ : width;
      std::cerr << "\r[" << std::string(filled, '#') << std::string(width - filled, ' ') << "] "
                << n << "/" << total_ << " " << name << ": " << status << "\033[K" << std::flush;
      if (n == total_) std::cerr << "\n";
    } else {
      std::cerr << "provision: [" << n << "/" << total_ << "] " << name << ": " << status << "\n";
    }
  }

 private:
  std::size_t total_;
  bool tty_, quiet_;
};

}  // namespace

int cmd_provision(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("manifest", po::value<std::string>(),
                                              "CSV or JSON manifest")(
      "report", po::value<std::string>(),
      "write the JSON report here (default: standard output with --json)")(
      "state", po::value<std::string>(), "progress file for resuming (default: MANIFEST.state)")(
      "check", "parse the manifest and stop")("json", "print the JSON report")("quiet,q",
                                                                               "no progress lines");
  po::positional_options_description pos;
  pos.add("manifest", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit provision MANIFEST [--report FILE] [--state FILE]",
               "Sets up many tokens from one manifest (CSV with a header row, or JSON): per\n"
               "entry, migrate a PKCS#12 (p12, password_file|password_env) or generate a key\n"
               "(keygen, label) on the token named by token (URI) or serial, logged in with\n"
               "pin_file|pin_env, then optionally set new_pin_file|new_pin_env. Entries run\n"
               "one by one; a failing one is reported and the rest go on; a re-run skips what\n"
               "is done (kept in the state file). See docs/commands/provision.md.",
               "tokenkit provision staff.csv --report staff-report.json", d);
    return kExitOk;
  }
  if (!p.vm.count("manifest")) throw Error(ErrorKind::Usage, "which manifest? see --help");
  const std::string path = p.vm["manifest"].as<std::string>();
  auto entries = token::parse_manifest(read_text(path), path);
  if (p.vm.count("check")) {
    out << path << ": " << entries.size() << " entries, all well-formed\n";
    return kExitOk;
  }
  State state(p.vm.count("state") ? p.vm["state"].as<std::string>() : path + ".state");
  Progress progress(entries.size(), p.vm.count("quiet") != 0);
  Json report = Json::array();
  std::size_t failed = 0, n = 0;
  StopSignals stop;
  for (const auto& e : entries) {
    if (stop.caught()) break;
    ++n;
    if (state.done(e.name)) {
      Json r = state.result(e.name);
      r["status"] = "already-done";
      report.push_back(r);
      progress.step(n, e.name, "already done");
      continue;
    }
    try {
      Json r = provision_entry(e, state);
      r["status"] = "done";
      state.mark_done(e.name, r);
      report.push_back(r);
      progress.step(n, e.name, "done");
    } catch (const std::exception& ex) {
      ++failed;
      report.push_back({{"name", e.name}, {"status", "failed"}, {"error", ex.what()}});
      progress.step(n, e.name, std::string("FAILED: ") + ex.what());
    }
  }
  const int stopped_by = n < entries.size() ? stop.caught() : 0;
  const std::size_t not_run = entries.size() - n;
  Json j{
      {"manifest", path},
      {"entries", report},
      {"summary",
       {{"total", entries.size()}, {"failed", failed}, {"ok", n - failed}, {"not_run", not_run}}}};
  if (stopped_by != 0) j["summary"]["stopped_by"] = std::string("SIG") + sigabbrev_np(stopped_by);
  if (p.vm.count("report")) {
    Output file(p.vm["report"].as<std::string>());
    const std::string text = j.dump(2) + "\n";
    BIO_write(file.bio(), text.data(), static_cast<int>(text.size()));
    file.commit();
  }
  if (p.vm.count("json")) {
    out << j.dump(2) << "\n";
  } else {
    out << path << ": " << n - failed << " of " << entries.size() << " entries done"
        << (failed
                ? ", " + std::to_string(failed) + " failed (see the report; re-run to retry them)"
                : "")
        << "\n";
  }
  if (stopped_by != 0) {
    std::cerr << "tokenkit provision: stopped by SIG" << sigabbrev_np(stopped_by) << " after " << n
              << " of " << entries.size() << " entries; " << not_run
              << " not started (re-run to do them)\n";
    return 128 + stopped_by;
  }
  return failed ? kExitFailure : kExitOk;
}

}  // namespace tokenkit
