#include "slapd.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>

#include "process.hpp"
#include "tokens.hpp"

extern char** environ;

namespace tokenkit::test {

namespace {

bool can_connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  close(fd);
  return ok;
}

std::string base64(const std::string& bytes) {
  static const char* t = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string o;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    o += t[v >> 18];
    o += t[(v >> 12) & 63];
    o += t[(v >> 6) & 63];
    o += t[v & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    o += t[v >> 18];
    o += t[(v >> 12) & 63];
    o += i + 1 < bytes.size() ? t[(v >> 6) & 63] : '=';
    o += '=';
  }
  return o;
}

}  // namespace

int free_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind a port on 127.0.0.1");
  }
  socklen_t n = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &n);
  close(fd);
  return ntohs(a.sin_port);
}

std::string ldif_binary(const std::string& attr, const std::string& file) {
  return attr + ":: " + base64(read_file(file)) + "\n";
}

Slapd::Slapd(const std::string& dir, const std::string& ldif, const SlapdTls& tls) {
  std::filesystem::create_directories(dir + "/db");
  const std::string conf = dir + "/slapd.conf";
  write_file(conf,
             "include /etc/ldap/schema/core.schema\n"
             "include /etc/ldap/schema/cosine.schema\n"
             "include /etc/ldap/schema/inetorgperson.schema\n"
             "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
             "pidfile " +
                 dir +
                 "/slapd.pid\n"
                 "TLSCACertificateFile " +
                 tls.ca_pem +
                 "\n"
                 "TLSCertificateFile " +
                 tls.cert_pem +
                 "\n"
                 "TLSCertificateKeyFile " +
                 tls.key_pem +
                 "\n"
                 "sizelimit 500\n"
                 "database mdb\nmaxsize 67108864\n"
                 "suffix \"" +
                 std::string(kBase) +
                 "\"\n"
                 "rootdn \"" +
                 kRootDn + "\"\nrootpw " + kRootPassword +
                 "\n"
                 "directory " +
                 dir +
                 "/db\n"
                 "access to * by * read\n");
  write_file(dir + "/data.ldif", "dn: " + std::string(kBase) +
                                     "\nobjectClass: dcObject\nobjectClass: organization\n"
                                     "o: Example\ndc: example\n\n" +
                                     ldif);
  run_ok({"slapadd", "-q", "-f", conf, "-l", dir + "/data.ldif"});
  port_ = free_port();
  tls_port_ = free_port();
  const std::string urls = "ldap://127.0.0.1:" + std::to_string(port_) +
                           "/ ldaps://127.0.0.1:" + std::to_string(tls_port_) + "/";
  // -d 0: stay in the foreground (our child), log nothing.
  std::vector<std::string> args{"/usr/sbin/slapd", "-f", conf, "-h", urls, "-d", "0"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 2, (dir + "/slapd.log").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), environ) != 0) {
    posix_spawn_file_actions_destroy(&fa);
    throw std::runtime_error("cannot start slapd");
  }
  posix_spawn_file_actions_destroy(&fa);
  pid_ = pid;
  // Ready when both ports accept; give up (and say why) after 20 s.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!(can_connect(port_) && can_connect(tls_port_))) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("slapd exited: " + read_file(dir + "/slapd.log"));
    }
    if (std::chrono::steady_clock::now() > until) {
      throw std::runtime_error("slapd did not listen: " + read_file(dir + "/slapd.log"));
    }
    usleep(50 * 1000);
  }
}

Slapd::~Slapd() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
  }
}

SilentServer::SilentServer() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      listen(listen_fd_, 16) != 0) {
    throw std::runtime_error("cannot listen on 127.0.0.1");
  }
  socklen_t n = sizeof a;
  getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &n);
  port_ = ntohs(a.sin_port);
  // Accepts every connection and holds it open, reading nothing, answering nothing.
  thread_ = std::thread([this] {
    while (!stop_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 100) > 0) {
        int c = accept(listen_fd_, nullptr, nullptr);
        if (c >= 0) held_.push_back(c);
      }
    }
  });
}

SilentServer::~SilentServer() {
  stop_ = true;
  thread_.join();
  for (int c : held_) close(c);
  close(listen_fd_);
}

}  // namespace tokenkit::test
