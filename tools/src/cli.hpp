// What every tokenkit subcommand shares: the options that pick a module,
// a token and a PIN source, parsed into plain values that tests check alone.
#pragma once

#include <boost/program_options.hpp>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "token/module.hpp"
#include "token/pin.hpp"
#include "token/select.hpp"
#include "token/session.hpp"

namespace tokenkit {

namespace po = boost::program_options;
using Json = nlohmann::ordered_json;

// Documented in docs/exit-codes.md; libtoken's ErrorKind values are the rest.
constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

struct TokenOptions {
  std::optional<std::string> module;  // --module PATH|NAME
  std::optional<std::string> uri;     // positional or --uri
  std::optional<unsigned long> slot;  // --slot
  std::optional<std::string> label;   // --token-label
  std::optional<std::string> serial;  // --serial
};

struct PinOptions {
  token::PinSource source;
  bool login = false;  // --login
};

// A parsed command line: help requested, or the values.
struct Parsed {
  bool help = false;
  po::variables_map vm;
};

void add_token_options(po::options_description& d);
void add_pin_options(po::options_description& d);
TokenOptions token_options(const po::variables_map& vm);
PinOptions pin_options(const po::variables_map& vm);

// Parses argv (after the subcommand name); throws token::Error(Usage).
Parsed parse(const std::vector<std::string>& args, const po::options_description& visible,
             const po::positional_options_description* positional = nullptr);

// The module a command uses when none is named: $TOKENKIT_MODULE, else the
// embedded default token.
std::string default_module();

// Module and token selector from the options (URI, --module, --slot, ...).
struct Target {
  token::Module module;
  token::TokenSelector selector;
};
Target open_target(const TokenOptions& opts);

// How open_session() logs in.
enum class Login {
  Always,     // read the user PIN and log in (commands that write or use keys)
  WhenAsked,  // only with --login or a PIN source (commands that may write public objects)
  ByCaller,   // not at all: the caller has its own login (bulk provisioning)
};

// One token, opened for a command: the module and selector it came from, the
// selected token, a session and, after a login, the user PIN it used (kept
// for commands that log in again, e.g. after an SO login).
struct OpenedToken {
  Target target;
  token::SlotInfo slot;
  token::Session session;
  std::optional<token::Secret> user_pin;
};

// Opens the target module, selects the token, opens a session (read-write
// unless told otherwise) and logs in as `login` says. Errors name the token.
OpenedToken open_session(const TokenOptions& opts, const PinOptions& pin, Login login,
                         bool read_write = true);

// Reads the PIN from the configured source and logs in, naming the token in
// prompts; warns on stderr when the PIN came from the command line.
void login(token::Session& session, const PinOptions& pin, const token::Uri& uri);
// The user PIN login() would use, for commands that log in more than once.
token::Secret read_user_pin(const token::Session& session, const PinOptions& pin,
                            const token::Uri& uri);

std::string hex_id(const token::Bytes& id);
std::string join(const std::vector<std::string>& parts, const std::string& sep);

// Prints "--help" text: usage line, description, an example, options.
void print_help(std::ostream& out, const std::string& usage, const std::string& about,
                const std::string& example, const po::options_description& d);

}  // namespace tokenkit
