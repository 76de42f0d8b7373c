// tokenkit audit: every use of a private or secret key on a tokenkit token,
// as the module recorded it (when, which key, which mechanism, which process).
#include <sqlite3.h>

#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <map>

#include "commands.hpp"
#include "describe.hpp"
#include "token/error.hpp"
#include "token/names.hpp"

namespace tokenkit {

namespace {

using token::Error;
using token::ErrorKind;

// Where tokenkit-pkcs11.so keeps its stores (docs/pkcs11-module.md).
std::string store_dir() {
  if (const char* d = std::getenv("TOKENKIT_PKCS11_DIR"); d && *d) return d;
  if (const char* x = std::getenv("XDG_DATA_HOME"); x && *x)
    return std::string(x) + "/tokenkit/tokens";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : "") + "/.local/share/tokenkit/tokens";
}

std::string iso_time(long long t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[40];
  // %Y gives fewer than four digits before year 1000; a clock set that far
  // back still gets a well-formed time.
  if (std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "?";
  return buf;
}

// Labels of the public objects (public keys, certificates) by CKA_ID.
std::map<std::string, std::string> labels(const token::Session& s, const CK_TOKEN_INFO& info) {
  std::map<std::string, std::string> out;
  for (const auto& o : token::list_objects(s, info, token::Uri())) {
    if (!o.id.empty() && !o.label.empty()) out.emplace(hex_id(o.id), o.label);
  }
  return out;
}

}  // namespace

int cmd_audit(const Args& args, std::ostream& out) {
  po::options_description d("Options");
  d.add_options()("help,h", "show this help")("uri", po::value<std::string>(),
                                              "pkcs11: URI of the token")(
      "last", po::value<unsigned>()->default_value(50), "show the last N rows (0: all)")(
      "json", "print JSON for scripts");
  add_token_options(d);
  po::positional_options_description pos;
  pos.add("uri", 1);
  Parsed p = parse(args, d, &pos);
  if (p.help) {
    print_help(out, "tokenkit audit [URI] [--last N] [--json]",
               "Shows every use of a private or secret key on a token of tokenkit's own\n"
               "module — sign, decrypt, unwrap, derive — with the time, the key (its id and\n"
               "label), the mechanism and the process id, newest last. Identical uses in one\n"
               "second are one row with their count (\"x40\"). It is how you learn that\n"
               "something used your key. No PIN is needed: the record holds no secrets.",
               "tokenkit audit 'pkcs11:token=mail' --last 20", d);
    return kExitOk;
  }
  Target t = open_target(token_options(p.vm));
  token::SlotInfo slot = token::select_token(t.module, t.selector);
  if (token::pkcs11_text(slot.token.manufacturerID) != "tokenkit") {
    throw Error(ErrorKind::Usage, "token \"" + token::pkcs11_text(slot.token.label) +
                                      "\" is not a tokenkit "
                                      "software token: only tokenkit-pkcs11.so records key use");
  }
  const std::string path = store_dir() + "/" + std::to_string(slot.id) + ".db";
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    throw Error(ErrorKind::Io, "cannot open the store " + path + " of token \"" +
                                   token::pkcs11_text(slot.token.label) + "\"");
  }
  sqlite3_busy_timeout(db, 5000);
  const unsigned last = p.vm["last"].as<unsigned>();
  // A row counts identical uses (the same second, key, mechanism, operation
  // and process; store format 3). A store of format 2 has no count column:
  // each of its rows is one use (this module upgrades a store when it opens
  // it; an older module loaded with --module keeps it at format 2).
  auto query = [&](const char* count) {
    return std::string("SELECT time, ckaid, mechanism, operation, pid, ") + count +
           " FROM (SELECT rowid AS r, * FROM audit ORDER BY rowid DESC" +
           (last ? " LIMIT " + std::to_string(last) : std::string()) + ") ORDER BY r";
  };
  sqlite3_stmt* st = nullptr;
  if (sqlite3_prepare_v2(db, query("count").c_str(), -1, &st, nullptr) != SQLITE_OK &&
      sqlite3_prepare_v2(db, query("1").c_str(), -1, &st, nullptr) != SQLITE_OK) {
    std::string why = sqlite3_errmsg(db);
    sqlite3_close(db);
    throw Error(ErrorKind::Input, path + " has no readable audit record: " + why);
  }
  token::Session session(t.module, slot.id);
  auto names = labels(session, slot.token);
  Json rows = Json::array();
  long long uses = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    const auto* id = static_cast<const unsigned char*>(sqlite3_column_blob(st, 1));
    token::Bytes ckaid(id, id + sqlite3_column_bytes(st, 1));
    const std::string hex = hex_id(ckaid);
    const char* op = reinterpret_cast<const char*>(sqlite3_column_text(st, 3));
    rows.push_back({{"time", iso_time(sqlite3_column_int64(st, 0))},
                    {"id", hex},
                    {"label", names.count(hex) ? names[hex] : ""},
                    {"mechanism", token::mechanism_name(
                                      static_cast<CK_MECHANISM_TYPE>(sqlite3_column_int64(st, 2)))},
                    {"operation", op ? op : ""},
                    {"pid", sqlite3_column_int64(st, 4)},
                    {"count", sqlite3_column_int64(st, 5)}});
    uses += sqlite3_column_int64(st, 5);
  }
  sqlite3_finalize(st);
  sqlite3_close(db);
  if (p.vm.count("json")) {
    out << rows.dump(2) << "\n";
    return kExitOk;
  }
  out << "Key use on token \"" << token::pkcs11_text(slot.token.label) << "\" (" << rows.size()
      << (last ? " most recent" : "") << (rows.size() == 1 ? " row, " : " rows, ") << uses
      << (uses == 1 ? " use" : " uses") << "):\n";
  for (const auto& r : rows) {
    out << "  " << r["time"].get<std::string>() << "  " << r["operation"].get<std::string>() << "  "
        << r["mechanism"].get<std::string>() << "  key " << r["id"].get<std::string>();
    if (!r["label"].get<std::string>().empty())
      out << " \"" << r["label"].get<std::string>() << "\"";
    out << "  pid " << r["pid"].get<long long>();
    if (long long n = r["count"].get<long long>(); n != 1) out << "  x" << n;
    out << "\n";
  }
  return kExitOk;
}

}  // namespace tokenkit
