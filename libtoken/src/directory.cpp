// LDAP lookup with libldap's asynchronous calls, so that every wait has a
// deadline: connect and TLS handshake (LDAP_OPT_NETWORK_TIMEOUT), StartTLS
// (LDAP_OPT_TIMEOUT), bind and search (ldap_result with what is left of the
// operation timeout). liblber refuses any one message larger than
// max_message_bytes before reading it into memory.
#include "token/directory.hpp"

#include <lber.h>
#include <ldap.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>

#include "token/error.hpp"
#include "token/secret.hpp"

namespace token::directory {

namespace {

using Clock = std::chrono::steady_clock;

struct LdapFree {
  void operator()(LDAP* ld) const { ldap_unbind_ext(ld, nullptr, nullptr); }
};
struct MsgFree {
  void operator()(LDAPMessage* m) const { ldap_msgfree(m); }
};
using LdapPtr = std::unique_ptr<LDAP, LdapFree>;
using MsgPtr = std::unique_ptr<LDAPMessage, MsgFree>;

timeval to_timeval(long ms) {
  timeval tv{};
  tv.tv_sec = ms / 1000;
  tv.tv_usec = (ms % 1000) * 1000;
  return tv;
}

std::string seconds(long ms) {
  return ms % 1000 == 0 ? std::to_string(ms / 1000) + " s" : std::to_string(ms) + " ms";
}

class Session {
 public:
  explicit Session(const Config& c) : c_(c) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorKind::Directory, "directory " + c_.uri + ": " + what);
  }

  int result_code() const {
    int rc = LDAP_OTHER;
    ldap_get_option(ld_.get(), LDAP_OPT_RESULT_CODE, &rc);
    return rc;
  }

  // Why a call failed, in words: a connection that never came, or went.
  [[noreturn]] void fail_rc(const std::string& during, int rc) const {
    std::string why = ldap_err2string(rc);
    char* diag = nullptr;
    if (ldap_get_option(ld_.get(), LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) == LDAP_OPT_SUCCESS &&
        diag != nullptr) {
      if (*diag) why += " (" + std::string(diag) + ")";
      ldap_memfree(diag);
    }
    if (rc == LDAP_SERVER_DOWN) {
      why += "; it cannot be reached, closed the connection, or sent a message over the " +
             std::to_string(c_.max_message_bytes) + "-byte limit";
    }
    if (rc == LDAP_TIMEOUT) {
      why = "no answer within " + seconds(c_.timeout_ms) + " (the operation timeout)";
    }
    fail(during + ": " + why);
  }

  void open() {
    // ldaps://: libldap's own TLS handshake on connect has no deadline (a
    // server that accepts and stays silent holds it for ever), so the TCP
    // connection is made as ldap:// and TLS is installed on it under a
    // watchdog.
    const bool ldaps = c_.uri.rfind("ldaps://", 0) == 0;
    const std::string plain = ldaps ? "ldap://" + c_.uri.substr(8) : c_.uri;
    LDAP* raw = nullptr;
    if (ldap_initialize(&raw, plain.c_str()) != LDAP_SUCCESS || raw == nullptr) {
      throw Error(ErrorKind::Usage, "not an LDAP URI: \"" + c_.uri +
                                        "\" (ldap://HOST[:PORT] or ldaps://HOST[:PORT])");
    }
    ld_.reset(raw);
    const int v3 = LDAP_VERSION3;
    ldap_set_option(raw, LDAP_OPT_PROTOCOL_VERSION, &v3);
    ldap_set_option(raw, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
    const timeval net = to_timeval(c_.network_timeout_ms);
    ldap_set_option(raw, LDAP_OPT_NETWORK_TIMEOUT, &net);
    const timeval api = to_timeval(c_.timeout_ms);
    ldap_set_option(raw, LDAP_OPT_TIMEOUT, &api);
    if (c_.ca_file) {
      if (!std::filesystem::exists(*c_.ca_file)) {
        throw Error(ErrorKind::Io, "cannot read the directory's CA file " + *c_.ca_file);
      }
      ldap_set_option(raw, LDAP_OPT_X_TLS_CACERTFILE, c_.ca_file->c_str());
    }
    const int demand = LDAP_OPT_X_TLS_DEMAND;
    ldap_set_option(raw, LDAP_OPT_X_TLS_REQUIRE_CERT, &demand);
    const int server = 0;
    ldap_set_option(raw, LDAP_OPT_X_TLS_NEWCTX, &server);
    const int rc = ldap_connect(raw);
    if (rc != LDAP_SUCCESS) fail_rc("cannot connect", rc);
    Sockbuf* sb = nullptr;
    if (ldap_get_option(raw, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS && sb != nullptr) {
      ber_len_t max = c_.max_message_bytes;
      ber_sockbuf_ctrl(sb, LBER_SB_OPT_SET_MAX_INCOMING, &max);
    }
    if (ldaps) {
      int fd = -1;
      ldap_get_option(raw, LDAP_OPT_DESC, &fd);
      bool timed_out = false;
      const int t = with_watchdog(fd, timed_out, [raw] { return ldap_install_tls(raw); });
      if (timed_out) {
        fail("TLS handshake: no answer within " + seconds(c_.network_timeout_ms) +
             " (the network timeout)");
      }
      if (t != LDAP_SUCCESS) fail_rc("TLS handshake failed", t);
    }
    if (c_.starttls) {
      const int t = ldap_start_tls_s(raw, nullptr, nullptr);
      if (t != LDAP_SUCCESS) fail_rc("StartTLS failed", t);
    }
  }

  // Runs `f`; if it has not returned within the network timeout, shuts the
  // socket down so that its blocked read returns.
  template <class F>
  int with_watchdog(int fd, bool& timed_out, F f) {
    std::mutex m;
    std::condition_variable cv;
    bool done = false;
    std::thread dog([&] {
      std::unique_lock<std::mutex> lock(m);
      if (!cv.wait_for(lock, std::chrono::milliseconds(c_.network_timeout_ms),
                       [&] { return done; })) {
        timed_out = true;
        if (fd >= 0) ::shutdown(fd, SHUT_RD);  // reads return; writes do not raise SIGPIPE
      }
    });
    const int rc = f();
    {
      std::lock_guard<std::mutex> lock(m);
      done = true;
    }
    cv.notify_one();
    dog.join();
    return rc;
  }

  // Waits for the result of `msgid` until `deadline`.
  MsgPtr wait(int msgid, int all, Clock::time_point deadline, const std::string& during) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) fail_rc(during, LDAP_TIMEOUT);
    timeval tv = to_timeval(static_cast<long>(left.count()));
    LDAPMessage* m = nullptr;
    const int t = ldap_result(ld_.get(), msgid, all, &tv, &m);
    MsgPtr owned(m);
    if (t == 0) fail_rc(during, LDAP_TIMEOUT);
    if (t < 0) fail_rc(during, result_code());
    return owned;
  }

  void bind() {
    if (!c_.bind_dn) return;  // LDAPv3: anonymous needs no bind
    Secret pw = read_secret(c_.password, "password for " + *c_.bind_dn + " at " + c_.uri);
    berval cred{static_cast<ber_len_t>(pw.size()), const_cast<char*>(pw.data())};
    int msgid = 0;
    const int rc = ldap_sasl_bind(ld_.get(), c_.bind_dn->c_str(), LDAP_SASL_SIMPLE, &cred, nullptr,
                                  nullptr, &msgid);
    if (rc != LDAP_SUCCESS) fail_rc("bind as " + *c_.bind_dn, rc);
    MsgPtr m = wait(msgid, LDAP_MSG_ALL, Clock::now() + std::chrono::milliseconds(c_.timeout_ms),
                    "bind as " + *c_.bind_dn);
    int err = LDAP_OTHER;
    char* diag = nullptr;
    ldap_parse_result(ld_.get(), m.get(), &err, nullptr, &diag, nullptr, nullptr, 0);
    std::string d = diag ? diag : "";
    ldap_memfree(diag);
    if (err != LDAP_SUCCESS) {
      fail("bind as " + *c_.bind_dn + ": " + ldap_err2string(err) +
           (d.empty() ? "" : " (" + d + ")"));
    }
  }

  Found search(const std::string& email) {
    Found f;
    const std::string filter = make_filter(c_.filter, email);
    std::vector<char*> attrs;
    for (const auto& a : c_.attributes) attrs.push_back(const_cast<char*>(a.c_str()));
    attrs.push_back(nullptr);
    timeval limit = to_timeval(c_.timeout_ms);
    int msgid = 0;
    const int rc = ldap_search_ext(ld_.get(), c_.base.c_str(), LDAP_SCOPE_SUBTREE, filter.c_str(),
                                   attrs.data(), 0, nullptr, nullptr, &limit,
                                   static_cast<int>(c_.max_entries), &msgid);
    if (rc != LDAP_SUCCESS) fail_rc("search " + filter, rc);
    const auto deadline = Clock::now() + std::chrono::milliseconds(c_.timeout_ms);
    std::size_t total = 0;
    bool total_hit = false;
    for (;;) {
      MsgPtr m = wait(msgid, LDAP_MSG_ONE, deadline, "search " + filter);
      const int type = ldap_msgtype(m.get());
      if (type == LDAP_RES_SEARCH_ENTRY) {
        if (++f.entries > c_.max_entries) {
          ldap_abandon_ext(ld_.get(), msgid, nullptr, nullptr);
          --f.entries;
          f.notes.push_back("stopped after " + std::to_string(c_.max_entries) +
                            " entries (the entry limit)");
          break;
        }
        take_values(m.get(), f, total, total_hit);
      } else if (type == LDAP_RES_SEARCH_RESULT) {
        int err = LDAP_OTHER;
        char* diag = nullptr;
        ldap_parse_result(ld_.get(), m.get(), &err, nullptr, &diag, nullptr, nullptr, 0);
        std::string d = diag ? diag : "";
        ldap_memfree(diag);
        if (err == LDAP_SIZELIMIT_EXCEEDED) {
          f.notes.push_back("the directory stopped at " + std::to_string(f.entries) +
                            " entries (the entry limit is " + std::to_string(c_.max_entries) + ")");
        } else if (err == LDAP_TIMELIMIT_EXCEEDED && f.entries > 0) {
          f.notes.push_back("the directory stopped at its time limit after " +
                            std::to_string(f.entries) + " entries");
        } else if (err != LDAP_SUCCESS) {
          fail("search " + filter + " under \"" + c_.base + "\": " + ldap_err2string(err) +
               (d.empty() ? "" : " (" + d + ")"));
        }
        break;
      }
      // Referrals (LDAP_RES_SEARCH_REFERENCE) are not followed.
    }
    return f;
  }

 private:
  static bool wanted(const std::string& got, const std::vector<std::string>& attrs) {
    auto lower = [](std::string s) {
      for (char& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      return s;
    };
    const std::string g = lower(got.substr(0, got.find(';')));
    return std::any_of(attrs.begin(), attrs.end(),
                       [&](const std::string& a) { return lower(a.substr(0, a.find(';'))) == g; });
  }

  void take_values(LDAPMessage* e, Found& f, std::size_t& total, bool& total_hit) {
    char* dn = ldap_get_dn(ld_.get(), e);
    const std::string entry = dn ? dn : "?";
    ldap_memfree(dn);
    BerElement* ber = nullptr;
    for (char* a = ldap_first_attribute(ld_.get(), e, &ber); a != nullptr;
         a = ldap_next_attribute(ld_.get(), e, ber)) {
      const std::string name = a;
      ldap_memfree(a);
      if (!wanted(name, c_.attributes)) continue;
      berval** vals = ldap_get_values_len(ld_.get(), e, name.c_str());
      for (int i = 0; vals && vals[i]; ++i) {
        const std::size_t n = vals[i]->bv_len;
        if (n > c_.value_limits.max_value_bytes) {
          f.notes.push_back(entry + ": " + name + " value of " + std::to_string(n) +
                            " bytes refused (the limit is " +
                            std::to_string(c_.value_limits.max_value_bytes) + ")");
          continue;
        }
        if (total + n > c_.max_total_bytes) {
          if (!total_hit) {
            f.notes.push_back("certificate bytes over the " + std::to_string(c_.max_total_bytes) +
                              "-byte limit: later values ignored");
          }
          total_hit = true;
          continue;
        }
        total += n;
        f.values.emplace_back(vals[i]->bv_val, n);
      }
      ldap_value_free_len(vals);
    }
    ber_free(ber, 0);
  }

  const Config& c_;
  LdapPtr ld_;
};

}  // namespace

std::string make_filter(const std::string& pattern, const std::string& email) {
  // RFC 4515 section 3: *, (, ), \ and NUL are written as \XX.
  std::string escaped;
  static const char* hex = "0123456789abcdef";
  for (unsigned char ch : email) {
    if (ch == '*' || ch == '(' || ch == ')' || ch == '\\' || ch == 0) {
      escaped += '\\';
      escaped += hex[ch >> 4];
      escaped += hex[ch & 15];
    } else {
      escaped += static_cast<char>(ch);
    }
  }
  std::string out;
  for (std::size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '%' && i + 1 < pattern.size() && pattern[i + 1] == 's') {
      out += escaped;
      ++i;
    } else {
      out += pattern[i];
    }
  }
  return out;
}

Found search(const Config& config, const std::string& email) {
  Session s(config);
  s.open();
  s.bind();
  return s.search(email);
}

}  // namespace token::directory
