#include "seven_bit.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <vector>

#include "headers.hpp"
#include "multipart.hpp"
#include "token/error.hpp"

namespace token::smime {

namespace {

void free_chain(BIO* b) { BIO_free_all(b); }

bool has_eight_bit(const char* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    if (static_cast<unsigned char>(p[i]) & 0x80) return true;
  }
  return false;
}

void put(BIO* out, const std::string& s) {
  if (!s.empty() &&
      BIO_write(out, s.data(), static_cast<int>(s.size())) != static_cast<int>(s.size()))
    throw Error(ErrorKind::Io, "cannot write a scratch file");
}

// RFC 2045 section 6.7: rules 1 to 5, with soft line breaks so that no
// encoded line is longer than 76 characters; "From " at the start of a line
// is encoded as well (RFC 3156 section 3), so that mbox files keep it.
class QuotedPrintable {
 public:
  explicit QuotedPrintable(BIO* out) : out_(out) {}
  // A piece of a line; `line_end`: the line ends after it (trailing white
  // space must then be encoded).
  void piece(const char* p, std::size_t n, bool line_end) {
    std::string enc;
    for (std::size_t i = 0; i < n; ++i) {
      const auto c = static_cast<unsigned char>(p[i]);
      const bool last = line_end && i + 1 == n;
      const bool from = col_ == 0 && at_line_start_ && c == 'F' && n - i >= 5 &&
                        std::memcmp(p + i, "From ", 5) == 0;
      at_line_start_ = false;
      char tok[4] = {static_cast<char>(c), 0, 0, 0};
      std::size_t len = 1;
      if (from || !((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last))) {
        static const char hex[] = "0123456789ABCDEF";
        tok[0] = '=', tok[1] = hex[c >> 4], tok[2] = hex[c & 15], len = 3;
      }
      if (col_ + len > 75) {
        enc += "=\n";
        col_ = 0;
      }
      enc.append(tok, len);
      col_ += len;
    }
    if (line_end) {
      enc += "\n";
      col_ = 0;
      at_line_start_ = true;
    }
    put(out_, enc);
  }

 private:
  BIO* out_;
  std::size_t col_ = 0;
  bool at_line_start_ = true;
};

// The body from `body` to `out` in quoted-printable: each line (its CRLF
// or LF ending dropped) encoded, ended by LF (canonicalised to CRLF when it
// is signed).
void encode_qp(BIO* body, BIO* out) {
  QuotedPrintable qp(out);
  std::vector<char> buf(std::size_t{64} * 1024);
  int n;
  while ((n = BIO_gets(body, buf.data(), static_cast<int>(buf.size()))) > 0) {
    std::size_t len = static_cast<std::size_t>(n);
    const bool line_end = buf[len - 1] == '\n';
    if (line_end) --len;
    if (line_end && len > 0 && buf[len - 1] == '\r') --len;
    qp.piece(buf.data(), len, line_end);
  }
}

void encode_base64(BIO* body, BIO* out) {
  BIO* b64 = BIO_push(BIO_new(BIO_f_base64()), out);
  std::vector<char> buf(std::size_t{64} * 1024);
  int n;
  bool ok = true;
  while (ok && (n = BIO_read(body, buf.data(), static_cast<int>(buf.size()))) > 0) {
    ok = BIO_write(b64, buf.data(), n) == n;
  }
  ok = ok && BIO_flush(b64) == 1;
  BIO_pop(b64);
  BIO_free(b64);
  if (!ok) throw Error(ErrorKind::Io, "cannot write a scratch file");
}

// The header block without its Content-Transfer-Encoding field (and its
// continuation lines), with `field` added before the blank line.
std::string replace_cte(const std::string& block, const std::string& field) {
  std::string out;
  std::size_t pos = 0;
  bool skipping = false;
  std::string blank;
  while (pos < block.size()) {
    std::size_t end = block.find('\n', pos);
    end = end == std::string::npos ? block.size() : end + 1;
    const std::string line = block.substr(pos, end - pos);
    pos = end;
    if (line == "\n" || line == "\r\n") {
      blank = line;
      break;
    }
    const bool continuation = line[0] == ' ' || line[0] == '\t';
    if (!continuation) skipping = lower(line.substr(0, 26)) == "content-transfer-encoding:";
    if (!skipping) out += line;
  }
  return out + field + (blank.empty() ? std::string("\r\n") : blank);
}

BIO* buffered(BIO* b) {
  BIO* f = BIO_new(BIO_f_buffer());
  BIO_set_read_buffer_size(f, 1 << 16);
  return BIO_push(f, b);
}

}  // namespace

SevenBit make_seven_bit(BIO* in) {
  SevenBit r;
  std::string headers = read_header_block(in);
  // The body, looked at once: a file in place, else copied to a scratch file.
  BIO* body = nullptr;  // what the body is read from afterwards
  std::unique_ptr<BIO, void (*)(BIO*)> spool(nullptr, free_chain);
  bool eight = false;
  std::vector<char> buf(std::size_t{64} * 1024);
  int n;
  const long start = BIO_method_type(in) == BIO_TYPE_FILE ? BIO_tell(in) : -1;
  if (start >= 0) {
    while (!eight && (n = BIO_read(in, buf.data(), static_cast<int>(buf.size()))) > 0) {
      eight = has_eight_bit(buf.data(), static_cast<std::size_t>(n));
    }
    if (BIO_seek(in, start) < 0) throw Error(ErrorKind::Io, "cannot rewind the input");
    body = in;
  } else {
    spool.reset(scratch_file());
    BIO* w = BIO_push(BIO_new(BIO_f_buffer()), spool.get());
    BIO_set_write_buffer_size(w, 1 << 16);
    bool ok = true;
    while (ok && (n = BIO_read(in, buf.data(), static_cast<int>(buf.size()))) > 0) {
      eight = eight || has_eight_bit(buf.data(), static_cast<std::size_t>(n));
      ok = BIO_write(w, buf.data(), n) == n;
    }
    ok = ok && BIO_flush(w) == 1;
    BIO_pop(w);
    BIO_free(w);
    if (!ok || BIO_seek(spool.get(), 0) != 0)
      throw Error(ErrorKind::Io, "cannot write the message to a scratch file");
    spool.reset(buffered(spool.release()));
    body = spool.get();
  }
  const std::string type = media_type(header_value(headers, "Content-Type").value_or("text/plain"));
  const std::string cte =
      lower(header_value(headers, "Content-Transfer-Encoding").value_or("7bit"));
  const bool identity = cte == "7bit" || cte == "8bit" || cte == "binary";
  const bool composite = type.rfind("multipart/", 0) == 0 || type.rfind("message/", 0) == 0;
  if (eight && identity && !composite) {
    // RFC 2045 section 6.7 and 6.8: quoted-printable keeps text legible.
    r.encoded = type.rfind("text/", 0) == 0 ? "quoted-printable" : "base64";
    std::unique_ptr<BIO, void (*)(BIO*)> out(scratch_file(), free_chain);
    BIO* w = BIO_push(BIO_new(BIO_f_buffer()), out.get());
    BIO_set_write_buffer_size(w, 1 << 16);
    try {
      if (r.encoded == "base64") {
        encode_base64(body, w);
      } else {
        encode_qp(body, w);
      }
    } catch (...) {
      BIO_pop(w);
      BIO_free(w);
      throw;
    }
    const bool ok = BIO_flush(w) == 1;
    BIO_pop(w);
    BIO_free(w);
    if (!ok || BIO_seek(out.get(), 0) != 0)
      throw Error(ErrorKind::Io, "cannot write a scratch file");
    spool.reset(buffered(out.release()));
    body = spool.get();
    headers = replace_cte(headers, "Content-Transfer-Encoding: " + r.encoded + "\r\n");
  } else {
    r.eight_bit = eight;
  }
  // The source owns the prefix filter and, if there is one, the scratch
  // file; `in` stays the caller's.
  BIO* prefix = new_prefix_filter(std::move(headers));
  if (spool) {
    r.source = {BIO_push(prefix, spool.release()), free_chain};
  } else {
    BIO_push(prefix, body);
    r.source = {prefix, [](BIO* b) {
                  BIO_pop(b);
                  BIO_free(b);
                }};
  }
  return r;
}

}  // namespace token::smime
