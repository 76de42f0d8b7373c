#include "multipart.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "crlf_bio.hpp"
#include "headers.hpp"
#include "token/error.hpp"

namespace token::smime {

namespace {

// Lines of the body, as BIO_gets gives them: a line longer than the buffer
// comes in pieces, and only the first piece is at a line start.
class LineReader {
 public:
  explicit LineReader(BIO* in) : in_(in), buf_(kSize) {}
  // The next piece, or false at the end of the input.
  bool next() {
    at_start_ = ended_line_;
    const int n = BIO_gets(in_, buf_.data(), static_cast<int>(buf_.size()));
    if (n <= 0) return false;
    len_ = static_cast<std::size_t>(n);
    ended_line_ = buf_[len_ - 1] == '\n';
    return true;
  }
  const char* data() const { return buf_.data(); }
  std::size_t size() const { return len_; }
  bool at_start() const { return at_start_; }
  // RFC 2046 section 5.1.1: a delimiter line is "--" boundary, a close
  // delimiter "--" boundary "--"; transport padding may follow either.
  int delimiter(const std::string& dash_boundary) const {
    if (!at_start_ || len_ < dash_boundary.size() ||
        std::memcmp(buf_.data(), dash_boundary.data(), dash_boundary.size()) != 0) {
      return 0;
    }
    const char* rest = buf_.data() + dash_boundary.size();
    const std::size_t left = len_ - dash_boundary.size();
    return left >= 2 && rest[0] == '-' && rest[1] == '-' ? 2 : 1;
  }

 private:
  static constexpr std::size_t kSize = std::size_t{64} * 1024;
  BIO* in_;
  std::vector<char> buf_;
  std::size_t len_ = 0;
  bool at_start_ = true;
  bool ended_line_ = true;
};

void write_all(BIO* out, const char* p, std::size_t n) {
  if (!write_fully(out, p, n)) {
    throw Error(ErrorKind::Io, "cannot write the signed part to a scratch file");
  }
}

// Copies the first part to `content`. The line end before a delimiter
// belongs to the delimiter (RFC 2046 section 5.1.1), so each line's end is
// held back until the next line shows it is not one. Returns how the part
// ended: 1 at a delimiter, 2 at a close delimiter, 0 at the end of input.
int copy_first_part(LineReader& lines, const std::string& dash, BIO* content) {
  std::string held;  // the line end not yet written: "", "\r", "\n" or "\r\n"
  while (lines.next()) {
    if (const int d = lines.delimiter(dash)) return d;
    const char* p = lines.data();
    std::size_t n = lines.size();
    if (held == "\r" && p[0] == '\n') {  // a CRLF split between two pieces
      held = "\r\n";
      ++p, --n;
      if (n == 0) continue;
    }
    write_all(content, held.data(), held.size());
    std::size_t keep = 0;
    if (n >= 2 && p[n - 2] == '\r' && p[n - 1] == '\n') {
      keep = 2;
    } else if (p[n - 1] == '\n' || p[n - 1] == '\r') {
      keep = 1;
    }
    write_all(content, p, n - keep);
    held.assign(p + n - keep, keep);
  }
  return 0;
}

Bytes decode_base64(const std::string& text) {
  EVP_ENCODE_CTX* ctx = EVP_ENCODE_CTX_new();
  Bytes out(text.size() / 4 * 3 + 3);
  int n = 0;
  int tail = 0;
  EVP_DecodeInit(ctx);
  const int ok =
      EVP_DecodeUpdate(ctx, out.data(), &n, reinterpret_cast<const unsigned char*>(text.data()),
                       static_cast<int>(text.size())) >= 0 &&
      EVP_DecodeFinal(ctx, out.data() + n, &tail) == 1;
  EVP_ENCODE_CTX_free(ctx);
  if (!ok) throw Error(ErrorKind::Input, "the signature part is not valid base64");
  out.resize(static_cast<std::size_t>(n) + static_cast<std::size_t>(tail));
  return out;
}

// The second part, from its header block on (`in` is positioned after the
// delimiter line before it), up to the next delimiter: its decoded bytes.
Bytes read_signature_part(BIO* in, const std::string& dash, std::size_t signature_limit) {
  const std::string headers = read_header_block(in, std::size_t{64} * 1024);
  const std::string type = media_type(header_value(headers, "Content-Type").value_or(""));
  if (type != "application/pkcs7-signature" && type != "application/x-pkcs7-signature") {
    throw Error(ErrorKind::Input, "the second part of the multipart/signed message is " +
                                      (type.empty() ? std::string("untyped") : type) +
                                      ", not application/pkcs7-signature");
  }
  const std::string cte = lower(header_value(headers, "Content-Transfer-Encoding").value_or(""));
  if (!cte.empty() && cte != "base64") {
    throw Error(ErrorKind::Input, "the signature part is in " + cte + ", not base64");
  }
  std::string text;
  LineReader sig(in);
  bool closed = false;
  while (sig.next()) {
    if (sig.delimiter(dash)) {
      closed = true;
      break;
    }
    text.append(sig.data(), sig.size());
    if (text.size() > signature_limit) {
      throw Error(ErrorKind::Input, "the signature part is larger than " +
                                        std::to_string(signature_limit >> 20) + " MiB");
    }
  }
  if (!closed) throw Error(ErrorKind::Input, "the multipart/signed message is cut short");
  return decode_base64(text);
}

}  // namespace

std::optional<std::string> header_param(const std::string& value, const std::string& name) {
  const std::string want = lower(name);
  std::size_t pos = value.find(';');
  while (pos != std::string::npos) {
    const std::size_t eq = value.find('=', pos + 1);
    if (eq == std::string::npos) return std::nullopt;
    const std::string key = lower(trim(value.substr(pos + 1, eq - pos - 1)));
    std::size_t i = eq + 1;
    while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
    std::string v;
    if (i < value.size() && value[i] == '"') {
      for (++i; i < value.size() && value[i] != '"'; ++i) {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        v += value[i];
      }
      pos = value.find(';', i);
    } else {
      pos = value.find(';', i);
      v = trim(value.substr(i, pos == std::string::npos ? std::string::npos : pos - i));
    }
    if (key == want) return v;
  }
  return std::nullopt;
}

std::string media_type(const std::string& content_type) {
  return lower(trim(content_type.substr(0, content_type.find(';'))));
}

Bytes split_multipart_signed(BIO* in, const std::string& boundary, BIO* content,
                             std::size_t signature_limit) {
  // RFC 2046 section 5.1.1: 1 to 70 characters.
  if (boundary.empty() || boundary.size() > 70) {
    throw Error(ErrorKind::Input, "the multipart/signed boundary is empty or over 70 characters");
  }
  const std::string dash = "--" + boundary;
  LineReader lines(in);
  int found = 0;
  while (found == 0 && lines.next()) found = lines.delimiter(dash);
  if (found != 1) throw Error(ErrorKind::Input, "the multipart/signed message has no signed part");
  if (copy_first_part(lines, dash, content) != 1) {
    throw Error(ErrorKind::Input, "the multipart/signed message has no signature part");
  }
  if (BIO_flush(content) != 1) throw Error(ErrorKind::Io, "cannot write the signed part");

  return read_signature_part(in, dash, signature_limit);
}

std::size_t find_dash_line(const char* p, std::size_t n, std::string_view dash, std::size_t from,
                           std::size_t to) {
  to = std::min(to, n);
  if (from >= to || dash.empty() || dash.size() > 80) return std::string_view::npos;
  if (from == 0 && n >= dash.size() && std::memcmp(p, dash.data(), dash.size()) == 0) return 0;
  // An LF followed by the dash-boundary: the line after the LF. Matches
  // whose LF is at [from - 1, to - 1) are lines starting in [from, to).
  char needle[81];
  needle[0] = '\n';
  std::memcpy(needle + 1, dash.data(), dash.size());
  const std::size_t begin = from == 0 ? 0 : from - 1;
  const std::size_t end = std::min(n, to - 1 + dash.size());
  if (end <= begin) return std::string_view::npos;
  const void* hit = memmem(p + begin, end - begin, needle, dash.size() + 1);
  return hit == nullptr ? std::string_view::npos
                        : static_cast<std::size_t>(static_cast<const char*>(hit) - p) + 1;
}

MultipartSigned split_multipart_signed(const char* p, std::size_t n, const std::string& boundary,
                                       std::size_t signature_limit,
                                       const std::function<void(std::size_t)>& progress,
                                       std::size_t step) {
  if (boundary.empty() || boundary.size() > 70) {
    throw Error(ErrorKind::Input, "the multipart/signed boundary is empty or over 70 characters");
  }
  const std::string dash = "--" + boundary;
  // LineReader's pieces end at an LF, so a dash-boundary with an LF before
  // its last byte never matches a line, and one ending in LF is the whole
  // piece (no close delimiter after it).
  const std::size_t lf = dash.find('\n');
  const bool never = lf != std::string::npos && lf + 1 < dash.size();
  const bool ends_in_lf = lf + 1 == dash.size();
  step = std::max<std::size_t>(step, 1);
  // The next delimiter line starting at or after `from`, in steps.
  const auto next = [&](std::size_t from) {
    for (std::size_t at = from; !never && at < n;) {
      const std::size_t to = std::min(n, at + step);
      const std::size_t d = find_dash_line(p, n, dash, at, to);
      if (d != std::string_view::npos) return d;
      at = to;
      if (progress) progress(at);
    }
    return std::string_view::npos;
  };
  // LineReader::delimiter(): 2 for a close delimiter, else 1.
  const auto kind = [&](std::size_t d) {
    const std::size_t q = d + dash.size();
    return !ends_in_lf && q + 1 < n && p[q] == '-' && p[q + 1] == '-' ? 2 : 1;
  };
  // Where LineReader's piece that starts at `d` ends: after the line's LF,
  // or after 65535 bytes of a longer line (BIO_gets with 64 KiB), where the
  // next piece goes on.
  const auto piece_end = [&](std::size_t d) {
    const std::size_t most = std::min(n - d, std::size_t{64} * 1024 - 1);
    const auto* nl = static_cast<const char*>(std::memchr(p + d, '\n', most));
    return nl == nullptr ? d + most : static_cast<std::size_t>(nl - p) + 1;
  };
  const std::size_t first = next(0);
  if (first == std::string_view::npos || kind(first) != 1) {
    throw Error(ErrorKind::Input, "the multipart/signed message has no signed part");
  }
  MultipartSigned r;
  r.content_begin = piece_end(first);
  const std::size_t second = next(r.content_begin);
  if (second == std::string_view::npos || kind(second) != 1) {
    throw Error(ErrorKind::Input, "the multipart/signed message has no signature part");
  }
  // The line end before the delimiter belongs to it (copy_first_part()).
  r.content_end = second;
  if (second > r.content_begin) {
    r.content_end = second - 1;
    if (r.content_end > r.content_begin && p[r.content_end - 1] == '\r') --r.content_end;
  }
  const std::size_t at = piece_end(second);
  std::unique_ptr<BIO, decltype(&BIO_free)> rest(
      BIO_new_mem_buf(p + at, static_cast<int>(std::min<std::size_t>(n - at, INT_MAX))), BIO_free);
  if (!rest) throw Error(ErrorKind::Internal, "out of memory");
  r.signature = read_signature_part(rest.get(), dash, signature_limit);
  return r;
}

BIO* scratch_file() {
  const char* dir = std::getenv("TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/tokenkit-spool-XXXXXX";
  const int fd = mkstemp(path.data());
  if (fd < 0) {
    throw Error(ErrorKind::Io, "cannot create a scratch file in " +
                                   path.substr(0, path.rfind('/')) + ": " + std::strerror(errno));
  }
  unlink(path.c_str());
  BIO* b = BIO_new_fd(fd, BIO_CLOSE);
  if (b == nullptr) {
    close(fd);
    throw Error(ErrorKind::Io, "cannot open a scratch file");
  }
  return b;
}

}  // namespace token::smime
