#include <sys/prctl.h>
#include <sys/resource.h>

#include <iostream>

#include "commands.hpp"

int main(int argc, char** argv) {
  // PINs and keys pass through this process: no core dumps of it, and no
  // ptrace by other processes of the same user.
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  tokenkit::Args args(argv + 1, argv + argc);
  return tokenkit::run_command(args, std::cout, std::cerr);
}
