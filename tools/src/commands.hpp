// The tokenkit subcommands, one file each. Each takes the arguments after
// its name, writes its result to `out`, and returns the exit code; errors
// are thrown as token::Error and turned into a message and an exit code by
// run_command().
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace tokenkit {

using Args = std::vector<std::string>;

int cmd_modules(const Args& args, std::ostream& out);
int cmd_tokens(const Args& args, std::ostream& out);
int cmd_objects(const Args& args, std::ostream& out);
int cmd_import_p12(const Args& args, std::ostream& out);
int cmd_token(const Args& args, std::ostream& out);
int cmd_keygen(const Args& args, std::ostream& out);
int cmd_csr(const Args& args, std::ostream& out);
int cmd_audit(const Args& args, std::ostream& out);
int cmd_provision(const Args& args, std::ostream& out);
int cmd_import_cert(const Args& args, std::ostream& out);
int cmd_smime(const Args& args, std::ostream& out);
int cmd_certs(const Args& args, std::ostream& out);
int cmd_register(const Args& args, std::ostream& out);
int cmd_unregister(const Args& args, std::ostream& out);
int cmd_doctor(const Args& args, std::ostream& out);

struct Command {
  const char* name;
  const char* summary;
  int (*run)(const Args&, std::ostream&);
};
const std::vector<Command>& commands();

// Dispatches argv[1..] to a subcommand; prints errors to `err`.
int run_command(const Args& argv, std::ostream& out, std::ostream& err);

}  // namespace tokenkit
