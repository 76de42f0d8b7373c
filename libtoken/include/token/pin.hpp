// Where a PIN (or password) comes from. By default never the command line:
// a file, an environment variable, a file descriptor, or a no-echo prompt.
#pragma once

#include <optional>
#include <string>

#include "token/secret.hpp"

namespace token {

struct PinSource {
  std::optional<std::string> file;      // --pin-file PATH (one trailing newline dropped)
  std::optional<std::string> env;       // --pin-env NAME
  std::optional<int> fd;                // --pin-fd N (read to EOF or newline)
  std::optional<std::string> value;     // --pin VALUE: only when asked for explicitly
  std::string default_env = "TOKENKIT_PIN";  // used when nothing else is given
  bool allow_prompt = true;             // prompt on /dev/tty when nothing else is given
};

// Reads the secret. `what` names it in prompts and errors ("user PIN for
// token "alice""). Throws Error(Input) for an empty or unreadable source,
// Error(Usage) when no source is available (no terminal, nothing given).
Secret read_secret(const PinSource& source, const std::string& what);

// Reads a secret from a file: the whole file less one trailing "\n" or "\r\n".
Secret read_secret_file(const std::string& path, const std::string& what);

// Reads a secret from /dev/tty with echo off. Throws when there is no terminal.
Secret prompt_secret(const std::string& prompt);

}  // namespace token
