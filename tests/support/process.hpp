// Runs a program as a user would, and captures what it printed.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace tokenkit::test {

struct ProcessResult {
  int exit_code = -1;  // 128+N when killed by signal N
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with extra environment variables set and
// `input` on stdin. Throws std::runtime_error if it cannot be started.
ProcessResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env = {},
                  const std::string& input = {});

// As run(), but throws with the program's stderr when it exits non-zero.
std::string run_ok(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env = {});

}  // namespace tokenkit::test
