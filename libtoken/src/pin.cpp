#include "token/pin.hpp"

#include <fcntl.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "token/error.hpp"

namespace token {

namespace {

constexpr std::size_t kMaxSecret = 4096;

// Reads up to kMaxSecret bytes into a wiped buffer; stops at EOF, or at the
// first newline when `line` is set.
Secret read_fd(int fd, bool line, const std::string& what, const std::string& from) {
  char buf[kMaxSecret + 1];
  std::size_t n = 0;
  while (n < sizeof buf) {
    ssize_t r = ::read(fd, buf + n, line ? 1 : sizeof buf - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      wipe(buf, sizeof buf);
      throw Error(ErrorKind::Io, "cannot read " + what + " from " + from + ": " + std::strerror(e));
    }
    if (r == 0) break;
    n += static_cast<std::size_t>(r);
    if (line && buf[n - 1] == '\n') break;
  }
  if (n > kMaxSecret) {
    wipe(buf, sizeof buf);
    throw Error(ErrorKind::Input, what + " in " + from + " is longer than 4096 bytes");
  }
  // Drop one trailing newline: an editor adds one, and it is never part of a
  // PIN (libp11's pin-source keeps it, which makes correct PINs fail).
  if (n > 0 && buf[n - 1] == '\n') --n;
  if (n > 0 && buf[n - 1] == '\r') --n;
  Secret s(std::string_view(buf, n));
  wipe(buf, sizeof buf);
  if (s.empty()) throw Error(ErrorKind::Input, what + " from " + from + " is empty");
  return s;
}

}  // namespace

Secret read_secret_file(const std::string& path, const std::string& what) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::Io, "cannot open file " + path + " with the " + what + ": " + std::strerror(errno));
  }
  try {
    Secret s = read_fd(fd, false, what, "file " + path);
    ::close(fd);
    return s;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

Secret prompt_secret(const std::string& prompt) {
  int fd = ::open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::Usage, "no terminal to ask for the " + prompt +
                                      ": give it with --pin-file, --pin-env or --pin-fd");
  }
  termios old{};
  bool restore = tcgetattr(fd, &old) == 0;
  if (restore) {
    termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  std::string p = "Enter " + prompt + ": ";
  (void)!::write(fd, p.data(), p.size());
  try {
    Secret s = read_fd(fd, true, prompt, "the terminal");
    if (restore) tcsetattr(fd, TCSAFLUSH, &old);
    ::close(fd);
    return s;
  } catch (...) {
    if (restore) tcsetattr(fd, TCSAFLUSH, &old);
    ::close(fd);
    throw;
  }
}

Secret read_secret(const PinSource& src, const std::string& what) {
  if (src.value) {
    if (src.value->empty()) throw Error(ErrorKind::Input, what + " given on the command line is empty");
    return Secret(*src.value);
  }
  if (src.file) return read_secret_file(*src.file, what);
  if (src.fd) return read_fd(*src.fd, false, what, "file descriptor " + std::to_string(*src.fd));
  const std::string env_name = src.env.value_or(src.default_env);
  if (const char* v = std::getenv(env_name.c_str())) {
    if (*v == '\0') throw Error(ErrorKind::Input, what + " in environment variable " + env_name + " is empty");
    return Secret(v);
  }
  if (src.env) {
    throw Error(ErrorKind::Input, "environment variable " + env_name + " for the " + what + " is not set");
  }
  if (src.allow_prompt) return prompt_secret(what);
  throw Error(ErrorKind::Usage, "no " + what + " given: use --pin-file, --pin-env or --pin-fd");
}

}  // namespace token
