#include "seven_bit.hpp"

#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>
#include <vector>

#include "base64.hpp"
#include "headers.hpp"
#include "multipart.hpp"
#include "token/error.hpp"

namespace token::smime {

namespace {

using BioOwner = std::unique_ptr<BIO, void (*)(BIO*)>;

void free_chain(BIO* b) { BIO_free_all(b); }

bool eight_bit_in(std::string_view s) { return has_eight_bit(s.data(), s.size()); }

void put(BIO* out, std::string_view s) {
  if (!s.empty() &&
      BIO_write(out, s.data(), static_cast<int>(s.size())) != static_cast<int>(s.size()))
    throw Error(ErrorKind::Io, "cannot write a scratch file");
}

// An unlinked scratch file with a 64 KiB write and read buffer on it.
BioOwner buffered_scratch() {
  BIO* f = BIO_new(BIO_f_buffer());
  BIO_set_buffer_size(f, 1 << 16);
  return {BIO_push(f, scratch_file()), free_chain};
}

void rewind(BIO* b) {
  if (BIO_flush(b) != 1 || BIO_seek(b, 0) != 0)
    throw Error(ErrorKind::Io, "cannot rewind a scratch file");
}

void copy_all(BIO* from, BIO* to) {
  std::vector<char> buf(std::size_t{64} * 1024);
  int n;
  while ((n = BIO_read(from, buf.data(), static_cast<int>(buf.size()))) > 0) {
    put(to, std::string_view(buf.data(), static_cast<std::size_t>(n)));
  }
}

// RFC 2045 section 6.7: rules 1 to 5, with soft line breaks so that no
// encoded line is longer than 76 characters; "From " at the start of a line
// is encoded as well (RFC 3156 section 3), so that mbox files keep it.
class QuotedPrintable {
 public:
  explicit QuotedPrintable(BIO* out) : out_(out) {}
  // A piece of a line; `line_end`: the line ends after it (trailing white
  // space must then be encoded); `newline`: write the line break.
  void piece(const char* p, std::size_t n, bool line_end, bool newline) {
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
    if (newline) {
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
// is signed). `ends_line`: a line break follows the body (a delimiter's),
// so white space at its very end must be encoded too.
void encode_qp(BIO* body, BIO* out, bool ends_line) {
  QuotedPrintable qp(out);
  std::vector<char> buf(std::size_t{64} * 1024);
  std::string prev;  // one piece of look-ahead: the last piece is treated apart
  bool have_prev = false;
  int n;
  auto emit = [&](std::string& piece, bool is_last) {
    std::size_t len = piece.size();
    const bool nl = len > 0 && piece[len - 1] == '\n';
    if (nl) --len;
    if (nl && len > 0 && piece[len - 1] == '\r') --len;
    qp.piece(piece.data(), len, nl || (is_last && ends_line), nl);
  };
  while ((n = BIO_gets(body, buf.data(), static_cast<int>(buf.size()))) > 0) {
    if (have_prev) emit(prev, false);
    prev.assign(buf.data(), static_cast<std::size_t>(n));
    have_prev = true;
  }
  if (have_prev) emit(prev, true);
}

// Base64 in 64-character lines, LF between them and none after the last.
void encode_base64(BIO* body, BIO* out) {
  std::vector<unsigned char> in(std::size_t{48} * 1024);
  std::string enc;
  bool first = true;
  for (;;) {
    std::size_t got = 0;  // fill whole lines but at the end
    int n;
    while (got < in.size() &&
           (n = BIO_read(body, in.data() + got, static_cast<int>(in.size() - got))) > 0) {
      got += static_cast<std::size_t>(n);
    }
    if (got == 0) break;
    enc.clear();
    for (std::size_t at = 0; at < got; at += 48) {
      const std::size_t k = std::min<std::size_t>(48, got - at);
      char line[64];
      const std::size_t w = base64::encode(in.data() + at, k, line);
      if (!first) enc += '\n';
      first = false;
      enc.append(line, w);
    }
    put(out, enc);
    if (got < in.size()) break;
  }
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

// Lines of a body as BIO_gets gives them (a line longer than the buffer in
// pieces, only the first at a line start), with one line of push-back.
class Lines {
 public:
  explicit Lines(BIO* in) : in_(in), buf_(std::size_t{64} * 1024) {}
  bool next() {
    if (again_) {
      again_ = false;
      return true;
    }
    at_start_ = ended_;
    const int n = BIO_gets(in_, buf_.data(), static_cast<int>(buf_.size()));
    if (n <= 0) return false;
    len_ = static_cast<std::size_t>(n);
    ended_ = buf_[len_ - 1] == '\n';
    return true;
  }
  void unget() { again_ = true; }
  std::string_view line() const { return {buf_.data(), len_}; }
  bool at_start() const { return at_start_; }

 private:
  BIO* in_;
  std::vector<char> buf_;
  std::size_t len_ = 0;
  bool at_start_ = true;
  bool ended_ = true;
  bool again_ = false;
};

// Where a body ended: at a delimiter line of the multipart at `level`
// (its close delimiter if `close`), or at the end of the input.
struct End {
  int level = -1;
  bool close = false;
  bool eof() const { return level < 0; }
};

// Re-encodes the leaf bodies of a MIME entity, keeping everything else
// byte for byte: header blocks, preambles, delimiter lines, epilogues and
// the line ends around delimiters (RFC 2046 section 5.1.1).
class Rewriter {
 public:
  explicit Rewriter(BIO* in) : lines_(in) {}
  bool eight = false;  // 8-bit bytes left where they could not be encoded
  bool qp = false;
  bool b64 = false;

  // Writes the entity (`headers`, possibly rewritten, then its body read
  // from the input) to `out`; returns how its body ended.
  End entity(const std::string& headers, BIO* out, int depth, bool digest_part) {
    const std::string type =
        media_type(header_value(headers, "Content-Type")
                       .value_or(digest_part ? "message/rfc822" : "text/plain"));
    const std::string cte =
        lower(header_value(headers, "Content-Transfer-Encoding").value_or("7bit"));
    const bool identity = cte == "7bit" || cte == "8bit" || cte == "binary";
    if (eight_bit_in(headers)) eight = true;
    if (depth >= kMaxMimeDepth) {
      put(out, headers);
      return copy_verbatim(out);
    }
    const auto boundary =
        header_param(header_value(headers, "Content-Type").value_or(""), "boundary");
    const bool multipart = type.rfind("multipart/", 0) == 0 && boundary && !boundary->empty() &&
                           boundary->size() <= 70;
    if (identity && (multipart || type == "message/rfc822" || type == "message/global")) {
      // The body goes to a scratch file first: the header's transfer
      // encoding is 7bit once nothing 8-bit is left in it.
      BioOwner body = buffered_scratch();
      const bool before = eight;
      eight = false;
      End end;
      if (multipart) {
        end = multipart_body(*boundary, body.get(), depth + 1, type == "multipart/digest");
      } else {
        end = entity(read_headers(), body.get(), depth + 1, false);
      }
      const bool left = eight;
      eight = eight || before;
      put(out, cte != "7bit" && !left ? replace_cte(headers, "Content-Transfer-Encoding: 7bit\r\n")
                                      : headers);
      rewind(body.get());
      copy_all(body.get(), out);
      return end;
    }
    // RFC 2045 section 6.4: a composite type takes no encoding but the
    // identity ones.
    const bool composite = type.rfind("multipart/", 0) == 0 || type.rfind("message/", 0) == 0;
    return leaf(headers, out, type.rfind("text/", 0) == 0, identity && !composite);
  }

  // A part's header block, up to its blank line or a delimiter.
  std::string read_headers() {
    std::string block;
    while (lines_.next()) {
      if (delimiter()) {
        lines_.unget();
        break;
      }
      const std::string_view l = lines_.line();
      block.append(l);
      if (block.size() > std::size_t{64} * 1024) {
        throw Error(ErrorKind::Input, "a part of the message has a header block over 64 KiB");
      }
      if (lines_.at_start() && (l == "\n" || l == "\r\n")) break;
    }
    return block;
  }

 private:
  // RFC 2046 section 5.1.1: "--" boundary, "--" after it for the close
  // delimiter, then only white space to the line end.
  std::optional<End> delimiter() const {
    if (!lines_.at_start()) return std::nullopt;
    const std::string_view l = lines_.line();
    for (int i = static_cast<int>(dashes_.size()) - 1; i >= 0; --i) {
      const std::string& d = dashes_[static_cast<std::size_t>(i)];
      if (l.size() < d.size() || l.compare(0, d.size(), d) != 0) continue;
      std::string_view rest = l.substr(d.size());
      const bool close = rest.size() >= 2 && rest.compare(0, 2, "--") == 0;
      if (close) rest.remove_prefix(2);
      if (rest.find_first_not_of(" \t\r\n") == std::string_view::npos) return End{i, close};
    }
    return std::nullopt;
  }

  // Lines as they are, up to a delimiter (left unread) or the end.
  End copy_verbatim(BIO* out) {
    while (lines_.next()) {
      if (const auto d = delimiter()) {
        lines_.unget();
        return *d;
      }
      if (eight_bit_in(lines_.line())) eight = true;
      put(out, lines_.line());
    }
    return End{};
  }

  End multipart_body(const std::string& boundary, BIO* out, int depth, bool digest) {
    dashes_.push_back("--" + boundary);
    const int mine = static_cast<int>(dashes_.size()) - 1;
    End e = copy_verbatim(out);  // the preamble
    while (e.level == mine && !e.close) {
      lines_.next();
      put(out, lines_.line());  // the delimiter line
      e = entity(read_headers(), out, depth, digest);
    }
    if (e.level == mine) {
      lines_.next();
      put(out, lines_.line());  // the close delimiter
      e = copy_verbatim(out);   // the epilogue
    }
    dashes_.pop_back();
    return e;
  }

  // A leaf body: spooled (holding back the line end before a delimiter,
  // which belongs to the delimiter), then written as it is or encoded.
  End leaf(const std::string& headers, BIO* out, bool text, bool encodable) {
    BioOwner spool = buffered_scratch();
    std::string held;
    bool body_eight = false;
    End end;
    for (;;) {
      if (!lines_.next()) break;
      if (const auto d = delimiter()) {
        lines_.unget();
        end = *d;
        break;
      }
      std::string_view p = lines_.line();
      if (held == "\r" && p.front() == '\n') {  // a CRLF split between two pieces
        held = "\r\n";
        p.remove_prefix(1);
        if (p.empty()) continue;
      }
      put(spool.get(), held);
      std::size_t keep = 0;
      if (p.size() >= 2 && p.substr(p.size() - 2) == "\r\n") {
        keep = 2;
      } else if (p.back() == '\n' || p.back() == '\r') {
        keep = 1;
      }
      body_eight = body_eight || eight_bit_in(p);
      put(spool.get(), p.substr(0, p.size() - keep));
      held.assign(p.substr(p.size() - keep));
    }
    if (end.eof()) {  // no delimiter: the last line end is the body's own
      put(spool.get(), held);
      held.clear();
    }
    rewind(spool.get());
    if (!body_eight || !encodable) {
      eight = eight || body_eight;
      put(out, headers);
      copy_all(spool.get(), out);
    } else if (text) {
      // RFC 2045 section 6.7 and 6.8: quoted-printable keeps text legible.
      qp = true;
      put(out, replace_cte(headers, "Content-Transfer-Encoding: quoted-printable\r\n"));
      encode_qp(spool.get(), out, !end.eof());
    } else {
      b64 = true;
      put(out, replace_cte(headers, "Content-Transfer-Encoding: base64\r\n"));
      encode_base64(spool.get(), out);
      if (end.eof()) put(out, "\n");
    }
    put(out, held);
    return end;
  }

  Lines lines_;
  std::vector<std::string> dashes_;
};

}  // namespace

SevenBit make_seven_bit(BIO* in, bool defer_scan) {
  SevenBit r;
  std::string headers = read_header_block(in);
  // The body, looked at once for 8-bit bytes: a file in place, else copied
  // to a scratch file. 7-bit input (the usual case) is then signed as it is.
  BIO* body = nullptr;  // what the body is read from afterwards
  BioOwner spool(nullptr, free_chain);
  bool eight = false;
  std::vector<char> buf(std::size_t{256} * 1024);
  int n;
  r.mapped = MappedInput::map(in);
  const long start = BIO_method_type(in) == BIO_TYPE_FILE ? BIO_tell(in) : -1;
  if (r.mapped && defer_scan) {
    r.unscanned = true;
    body = r.mapped->bio();
  } else if (r.mapped) {
    eight = r.mapped->any_eight_bit();
    body = r.mapped->bio();
  } else if (start >= 0) {
    while (!eight && (n = BIO_read(in, buf.data(), static_cast<int>(buf.size()))) > 0) {
      eight = has_eight_bit(buf.data(), static_cast<std::size_t>(n));
    }
    if (BIO_seek(in, start) < 0) throw Error(ErrorKind::Io, "cannot rewind the input");
    body = in;
  } else {
    spool = buffered_scratch();
    while ((n = BIO_read(in, buf.data(), static_cast<int>(buf.size()))) > 0) {
      eight = eight || has_eight_bit(buf.data(), static_cast<std::size_t>(n));
      put(spool.get(), std::string_view(buf.data(), static_cast<std::size_t>(n)));
    }
    rewind(spool.get());
    body = spool.get();
  }
  if (eight) {
    // The entity, rewritten, to another scratch file; that is what is signed.
    Rewriter rw(body);
    BioOwner out = buffered_scratch();
    rw.entity(headers, out.get(), 0, false);
    rewind(out.get());
    r.eight_bit = rw.eight;
    r.encoded = rw.qp && rw.b64 ? "quoted-printable and base64"
                : rw.qp         ? "quoted-printable"
                : rw.b64        ? "base64"
                                : "";
    r.source = std::move(out);
    return r;
  }
  // 7-bit body: signed as it is (8-bit bytes in the header block stay).
  r.eight_bit = eight_bit_in(headers);
  if (r.mapped) r.header_block = headers;
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
