#include "process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>

extern char** environ;

namespace tokenkit::test {

ProcessResult run(const std::vector<std::string>& argv,
                  const std::map<std::string, std::string>& env, const std::string& input) {
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    throw std::runtime_error("pipe failed");
  }
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    for (const auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    // In a sanitizer build, a peer program (called by name: pkcs11-tool,
    // certutil, p11tool, ...) that loads tokenkit's instrumented module
    // needs the sanitizer runtime preloaded; our own binaries (called by
    // path) have it linked in.
    // Only pkcs11-tool: GnuTLS's p11tool hangs with the runtime preloaded,
    // so the interop label (p11tool, NSS tools) runs in the main build only.
    const char* preload = std::getenv("TOKENKIT_PEER_PRELOAD");
    if (preload && *preload && argv[0] == "pkcs11-tool") {
      setenv("LD_PRELOAD", preload, 1);
      if (const char* o = std::getenv("TOKENKIT_PEER_ASAN_OPTIONS")) setenv("ASAN_OPTIONS", o, 1);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    dprintf(2, "cannot run %s: %s\n", args[0], std::strerror(errno));
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (!input.empty()) (void)!write(in[1], input.data(), input.size());
  close(in[1]);
  ProcessResult r;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[4096];
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      } else {
        (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(n));
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

std::string run_ok(const std::vector<std::string>& argv,
                   const std::map<std::string, std::string>& env) {
  ProcessResult r = run(argv, env);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += a + " ";
    throw std::runtime_error(cmd + "exited " + std::to_string(r.exit_code) + ": " + r.err);
  }
  return r.out;
}

}  // namespace tokenkit::test
