#include "output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "token/error.hpp"

namespace fs = std::filesystem;

namespace tokenkit {

using token::Error;
using token::ErrorKind;

Output::Output(const std::optional<std::string>& target) : target_(target) {
  fs::path dir = target ? fs::absolute(*target).parent_path() : fs::temp_directory_path();
  std::string tmpl = (dir / ".tokenkit-XXXXXX").string();
  int fd = mkstemp(tmpl.data());
  if (fd < 0) {
    throw Error(ErrorKind::Io,
                "cannot create a file in " + dir.string() + ": " + std::strerror(errno));
  }
  tmp_ = tmpl;
  // The new, empty file as it is: reopening it with O_TRUNC would make
  // ext4 start writing it back at close (its auto_da_alloc heuristic for
  // truncated files), which costs the command about 4 % of a 100 MB sign.
  std::FILE* f = fdopen(fd, "wb");
  if (f == nullptr) (void)close(fd);
  bio_.reset(f != nullptr ? BIO_new_fp(f, BIO_CLOSE) : nullptr);
  if (!bio_) {
    if (f != nullptr) (void)std::fclose(f);
    throw Error(ErrorKind::Io, "cannot write " + tmp_);
  }
}

Output::~Output() {
  bio_.reset();
  if (!tmp_.empty()) (void)std::remove(tmp_.c_str());
}

void Output::commit() {
  const bool flushed = BIO_flush(bio_.get()) == 1;
  bio_.reset();
  if (!flushed) throw Error(ErrorKind::Io, "cannot write " + where());
  if (target_) {
    std::error_code ec;
    fs::rename(tmp_, *target_, ec);
    if (ec) throw Error(ErrorKind::Io, "cannot write " + *target_ + ": " + ec.message());
    tmp_.clear();
    return;
  }
  std::FILE* f = std::fopen(tmp_.c_str(), "rb");
  char buf[65536];
  std::size_t n;
  bool ok = f != nullptr;
  while (ok && (n = std::fread(buf, 1, sizeof buf, f)) > 0)
    ok = std::fwrite(buf, 1, n, stdout) == n;
  if (f) (void)std::fclose(f);
  if (!ok) throw Error(ErrorKind::Io, "cannot copy " + tmp_ + " to standard output");
  if (std::fflush(stdout) != 0) throw Error(ErrorKind::Io, "cannot write to standard output");
}

}  // namespace tokenkit
