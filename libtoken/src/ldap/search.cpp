// tokenkit-ldap.so: the LDAP lookup, in a module of its own that libtoken
// dlopen()s on first use (plugin.hpp says why). libldap's asynchronous
// calls, so that every wait has a deadline: connect and TLS handshake (LDAP_OPT_NETWORK_TIMEOUT),
// StartTLS (LDAP_OPT_TIMEOUT), bind and search (ldap_result with what is left of the operation
// timeout). liblber refuses any one message larger than max_message_bytes before reading it into
// memory.
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
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <type_traits>

#include "ldap/plugin.hpp"
#include "token/error.hpp"

namespace token::directory {

namespace {

// Why the search failed. This module does not link libtoken, so it has no
// token::Error; the entry point turns this into the reply, and libtoken
// turns the reply into a token::Error.
struct Failure {
  ErrorKind kind;
  std::string message;
};

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
  explicit Session(const plugin::Request& r) : c_(*r.config), r_(r) {}

  [[noreturn]] void fail(const std::string& what) const {
    throw Failure{ErrorKind::Directory, "directory " + c_.uri + ": " + what};
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
      throw Failure{ErrorKind::Usage, "not an LDAP URI: \"" + c_.uri +
                                          "\" (ldap://HOST[:PORT] or ldaps://HOST[:PORT])"};
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
      // libtoken has checked that it exists.
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
    // libtoken read the password and wipes it after the call.
    berval cred{static_cast<ber_len_t>(r_.password_size), const_cast<char*>(r_.password)};
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

  void search(Found& f) {
    const std::string& filter = *r_.filter;
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
  const plugin::Request& r_;
  LdapPtr ld_;
};

}  // namespace

}  // namespace token::directory

// The one exported symbol (the module is built with hidden visibility).
extern "C" __attribute__((visibility("default"))) int tokenkit_directory_search_v1(
    const token::directory::plugin::Request* request,
    token::directory::plugin::Reply* reply) noexcept {
  using namespace token::directory;
  static_assert(std::is_same_v<decltype(&tokenkit_directory_search_v1), plugin::SearchFn>);
  if (request == nullptr || reply == nullptr) return 1;
  if (request->abi != plugin::kAbi || request->config_size != sizeof(Config) ||
      request->found_size != sizeof(Found)) {
    // Not even the reply's layout can be trusted: say nothing but "no".
    return 2;
  }
  try {
    Session s(*request);
    s.open();
    s.bind();
    s.search(reply->found);
    return 0;
  } catch (const Failure& f) {
    reply->error_kind = static_cast<int>(f.kind);
    reply->error = f.message;
  } catch (const std::bad_alloc&) {
    reply->error_kind = static_cast<int>(token::ErrorKind::Internal);
    reply->error = "directory " + request->config->uri + ": out of memory";
  } catch (const std::exception& e) {
    reply->error_kind = static_cast<int>(token::ErrorKind::Internal);
    reply->error = "directory " + request->config->uri + ": " + e.what();
  } catch (...) {
    reply->error_kind = static_cast<int>(token::ErrorKind::Internal);
    reply->error = "directory " + request->config->uri + ": unexpected failure";
  }
  return 3;
}
