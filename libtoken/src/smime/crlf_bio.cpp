#include "crlf_bio.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "async_out.hpp"
#include "base64.hpp"
#include "token/error.hpp"

namespace token::smime {

namespace {

// The BIO's data: whether the last byte written was a CR, so that a CRLF
// split across two writes is not doubled. Whole runs between line feeds are
// passed on as they are.
int write_crlf(BIO* b, const char* data, int len) {
  BIO* next = BIO_next(b);
  if (next == nullptr || len < 0) return -1;
  bool prev_cr = BIO_get_data(b) != nullptr;
  const char* p = data;
  const char* end = data + len;
  while (p < end) {
    const auto* nl =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(end - p)));
    if (nl == nullptr) {
      if (!write_fully(next, p, static_cast<std::size_t>(end - p))) return -1;
      prev_cr = end[-1] == '\r';
      break;
    }
    const bool has_cr = nl > p ? nl[-1] == '\r' : prev_cr;
    if (!write_fully(next, p, static_cast<std::size_t>(nl - p))) return -1;
    if (!write_fully(next, has_cr ? "\n" : "\r\n", has_cr ? 1 : 2)) return -1;
    prev_cr = false;
    p = nl + 1;
  }
  // Any non-null pointer means "true"; the BIO's own address is at hand.
  BIO_set_data(b, prev_cr ? static_cast<void*>(b) : nullptr);
  return len;
}

long ctrl_next(BIO* b, int cmd, long num, void* ptr) {
  BIO* next = BIO_next(b);
  return next == nullptr ? 0 : BIO_ctrl(next, cmd, num, ptr);
}

int create(BIO* b) {
  BIO_set_data(b, nullptr);
  BIO_set_init(b, 1);
  return 1;
}

int puts_crlf(BIO* b, const char* s) {
  return write_crlf(b, s, static_cast<int>(std::char_traits<char>::length(s)));
}

BIO_METHOD* crlf_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit CRLF");
    BIO_meth_set_write(bm, write_crlf);
    BIO_meth_set_puts(bm, puts_crlf);
    BIO_meth_set_ctrl(bm, ctrl_next);
    BIO_meth_set_create(bm, create);
    return bm;
  }();
  return m;
}

// --- base64 ------------------------------------------------------------------

// RFC 2045 section 6.8: "The encoded output stream must be represented in
// lines of no more than 76 characters each": 57 bytes a line.
constexpr std::size_t kLineBytes = 57;
constexpr std::size_t kLineChars = base64::encoded_size(kLineBytes);
constexpr std::size_t kFlushAt = std::size_t{256} * 1024;

struct Base64State {
  std::string pending;  // bytes not yet encoded: fewer than a line's worth
  std::string encoded;  // lines not yet written below
};

Base64State* b64_state(BIO* b) { return static_cast<Base64State*>(BIO_get_data(b)); }

void encode_lines(Base64State& s, const unsigned char* p, std::size_t lines) {
  const std::size_t at = s.encoded.size();
  s.encoded.resize(at + lines * (kLineChars + 2));
  base64::encode_lines(p, lines, kLineBytes, "\r\n", 2, s.encoded.data() + at);
}

bool drain(BIO* b, Base64State& s) {
  BIO* next = BIO_next(b);
  if (next == nullptr || !write_fully(next, s.encoded.data(), s.encoded.size())) return false;
  s.encoded.clear();
  return true;
}

int write_b64(BIO* b, const char* data, int len) {
  Base64State* s = b64_state(b);
  if (s == nullptr || len < 0) return -1;
  const auto* p = reinterpret_cast<const unsigned char*>(data);
  std::size_t n = static_cast<std::size_t>(len);
  if (!s->pending.empty()) {  // complete the line begun by an earlier write
    const std::size_t take = std::min(n, kLineBytes - s->pending.size());
    s->pending.append(reinterpret_cast<const char*>(p), take);
    p += take;
    n -= take;
    if (s->pending.size() < kLineBytes) return len;
    encode_lines(*s, reinterpret_cast<const unsigned char*>(s->pending.data()), 1);
    s->pending.clear();
  }
  const std::size_t lines = n / kLineBytes;
  encode_lines(*s, p, lines);
  s->pending.assign(reinterpret_cast<const char*>(p + lines * kLineBytes), n % kLineBytes);
  if (s->encoded.size() >= kFlushAt && !drain(b, *s)) return -1;
  return len;
}

long ctrl_b64(BIO* b, int cmd, long num, void* ptr) {
  Base64State* s = b64_state(b);
  if (cmd == BIO_CTRL_FLUSH && s != nullptr) {
    if (!s->pending.empty()) {
      const std::size_t at = s->encoded.size();
      s->encoded.resize(at + base64::encoded_size(s->pending.size()));
      base64::encode(reinterpret_cast<const unsigned char*>(s->pending.data()), s->pending.size(),
                     s->encoded.data() + at);
      s->encoded += "\r\n";
      s->pending.clear();
    }
    if (!drain(b, *s)) return 0;
  }
  return ctrl_next(b, cmd, num, ptr);
}

int create_b64(BIO* b) {
  BIO_set_data(b, new Base64State);
  BIO_set_init(b, 1);
  return 1;
}

int destroy_b64(BIO* b) {
  delete b64_state(b);
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* b64_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit base64");
    BIO_meth_set_write(bm, write_b64);
    BIO_meth_set_ctrl(bm, ctrl_b64);
    BIO_meth_set_create(bm, create_b64);
    BIO_meth_set_destroy(bm, destroy_b64);
    return bm;
  }();
  return m;
}

// --- base64 decoding --------------------------------------------------------

struct DecodeState {
  base64::Decoder decoder;
  std::vector<char> raw = std::vector<char>(std::size_t{64} * 1024);
  std::vector<char> out = std::vector<char>(base64::Decoder::max_decoded(raw.size()));
  std::size_t pos = 0;  // of the decoded bytes not yet read: out[pos, len)
  std::size_t len = 0;
};

DecodeState* dec_state(BIO* b) { return static_cast<DecodeState*>(BIO_get_data(b)); }

int read_b64(BIO* b, char* data, int len) {
  DecodeState* s = dec_state(b);
  BIO* next = BIO_next(b);
  if (s == nullptr || next == nullptr || len < 0) return -1;
  while (s->pos == s->len && s->decoder.status() == base64::Decoder::Status::More) {
    s->pos = 0;
    s->len = 0;
    const int n = BIO_read(next, s->raw.data(), static_cast<int>(s->raw.size()));
    if (n <= 0) {
      s->decoder.finish();  // a quantum left short is an error
    } else {
      s->len = s->decoder.feed(s->raw.data(), static_cast<std::size_t>(n),
                               reinterpret_cast<unsigned char*>(s->out.data()));
      // Nothing of a block with a fault is given out.
      if (s->decoder.status() == base64::Decoder::Status::Bad) s->len = 0;
    }
  }
  const std::size_t k = std::min(static_cast<std::size_t>(len), s->len - s->pos);
  if (k == 0) return s->decoder.status() == base64::Decoder::Status::Bad ? -1 : 0;
  std::copy_n(s->out.data() + s->pos, k, data);  // char to char: a memmove
  s->pos += k;
  return static_cast<int>(k);
}

long ctrl_dec(BIO* b, int cmd, long num, void* ptr) {
  DecodeState* s = dec_state(b);
  if (cmd == BIO_CTRL_EOF && s != nullptr) {
    if (s->decoder.status() == base64::Decoder::Status::Bad) return -1;
    return s->pos == s->len && s->decoder.status() == base64::Decoder::Status::Ended ? 1 : 0;
  }
  if (cmd == BIO_CTRL_PENDING && s != nullptr) return static_cast<long>(s->len - s->pos);
  return ctrl_next(b, cmd, num, ptr);
}

int create_dec(BIO* b) {
  BIO_set_data(b, new DecodeState);
  BIO_set_init(b, 1);
  return 1;
}

int destroy_dec(BIO* b) {
  delete dec_state(b);
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* dec_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit unbase64");
    BIO_meth_set_read(bm, read_b64);
    BIO_meth_set_ctrl(bm, ctrl_dec);
    BIO_meth_set_create(bm, create_dec);
    BIO_meth_set_destroy(bm, destroy_dec);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_base64_decoder() { return BIO_new(dec_method()); }

BIO* new_crlf_filter() { return BIO_new(crlf_method()); }

BIO* new_base64_filter() { return BIO_new(b64_method()); }

void Canonicalizer::feed(const char* p, std::size_t n, std::string& out) {
  const char* end = p + n;
  while (p < end) {
    // The next CR, LF or piece end, whichever comes first: what lies before
    // it is copied as it is.
    const char* limit = p + std::min(kPiece - piece_pos_, static_cast<std::size_t>(end - p));
    const auto* stop =
        static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(limit - p)));
    if (stop == nullptr) stop = limit;
    const auto* cr =
        static_cast<const char*>(std::memchr(p, '\r', static_cast<std::size_t>(stop - p)));
    if (cr != nullptr && stop < limit && cr + 1 == stop) {
      // The usual line: text, CR, LF. The CR is dropped with any held
      // before it when the text is empty; the line ends in CRLF.
      if (cr > p) {
        if (held_cr_ > 0) out.append(held_cr_, '\r');
        out.append(p, static_cast<std::size_t>(cr - p));
      }
      out += "\r\n";
      held_cr_ = 0;
      piece_pos_ = 0;
      p = stop + 1;
      continue;
    }
    if (cr != nullptr) stop = cr;
    if (stop > p) {
      if (held_cr_ > 0) out.append(held_cr_, '\r');
      held_cr_ = 0;
      out.append(p, static_cast<std::size_t>(stop - p));
      piece_pos_ += static_cast<std::size_t>(stop - p);
      p = stop;
    }
    if (p < end && *p == '\n') {
      out += "\r\n";
      held_cr_ = 0;
      piece_pos_ = 0;
      ++p;
      continue;
    }
    if (p < end && *p == '\r') {
      ++held_cr_;
      ++piece_pos_;
      ++p;
    }
    // OpenSSL reads a long line in pieces of 1023 bytes and drops the CRs
    // at the end of each (crypto/asn1/asn_mime.c, strip_eol).
    if (piece_pos_ == kPiece) {
      held_cr_ = 0;
      piece_pos_ = 0;
    }
  }
}

bool write_fully(BIO* out, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const int w = BIO_write(out, p, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void write_all(BIO* out, std::string_view s) {
  if (write_fully(out, s.data(), s.size())) return;
  // An asynchronous writer in the chain knows why (async_out.hpp).
  std::string why;
  for (BIO* b = out; b != nullptr && why.empty(); b = BIO_next(b)) why = async_out_error(b);
  throw Error(ErrorKind::Io, "cannot write the output" + (why.empty() ? "" : ": " + why));
}

bool has_eight_bit(const char* p, std::size_t n) {
  // No early exit, so that the loop stays simple: it runs over every byte
  // of a message that is signed.
  std::uint64_t any = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    any |= w;
  }
  for (; i < n; ++i) any |= static_cast<unsigned char>(p[i]);
  return (any & 0x8080808080808080ULL) != 0;
}

// The block copy_canonical() reads and writes at a time. The block and its
// canonical copy (up to twice as long, LF -> CRLF) are most of the heap of
// sign and encrypt. 128 KiB signs 100 MB in the CPU time 256 KiB did; 64
// KiB took 5 % more (docs/bench-smime.md, "Where the memory goes").
constexpr std::size_t kCopyBlock = std::size_t{128} * 1024;

namespace {
bool copy_mapped(MappedInput& m, BIO* out, bool binary, bool stop_at_eight_bit);
MappedInput* mapped_source(BIO* in);
}  // namespace

bool copy_canonical(BIO* in, BIO* out, bool binary, bool stop_at_eight_bit) {
  if (MappedInput* m = mapped_source(in)) return copy_mapped(*m, out, binary, stop_at_eight_bit);
  std::vector<char> buf(kCopyBlock);
  std::string canon;
  // Every LF may become CRLF, and CRs held over from the block before are
  // written out (fewer than Canonicalizer's 1023-byte piece): with this
  // much, canon never grows.
  canon.reserve(2 * kCopyBlock + 1024 + 2);
  Canonicalizer c;
  for (;;) {
    const int n = BIO_read(in, buf.data(), static_cast<int>(buf.size()));
    if (n == 0 || (n < 0 && BIO_should_retry(in) != 0)) break;
    if (n < 0) throw Error(ErrorKind::Io, "cannot read the message");
    // The block was just read: scanning it here costs less than a pass of
    // its own over the message.
    if (stop_at_eight_bit && has_eight_bit(buf.data(), static_cast<std::size_t>(n))) return false;
    if (binary) {
      write_all(out, std::string_view(buf.data(), static_cast<std::size_t>(n)));
      continue;
    }
    canon.clear();
    c.feed(buf.data(), static_cast<std::size_t>(n), canon);
    write_all(out, canon);
  }
  c.finish();
  return true;
}

namespace {

MappedInput* mapped_of(BIO* b) { return static_cast<MappedInput*>(BIO_get_data(b)); }

int read_mapped(BIO* b, char* out, int len) {
  MappedInput* m = mapped_of(b);
  if (len <= 0) return 0;
  const std::size_t n = std::min(static_cast<std::size_t>(len), m->size() - m->pos);
  std::memcpy(out, m->data() + m->pos, n);
  m->pos += n;
  m->release(m->pos);
  return static_cast<int>(n);
}

int gets_mapped(BIO* b, char* out, int size) {
  MappedInput* m = mapped_of(b);
  if (size <= 1) return 0;
  std::size_t n = std::min(static_cast<std::size_t>(size - 1), m->size() - m->pos);
  if (const auto* nl = static_cast<const char*>(std::memchr(m->data() + m->pos, '\n', n))) {
    n = static_cast<std::size_t>(nl - (m->data() + m->pos)) + 1;
  }
  std::memcpy(out, m->data() + m->pos, n);
  out[n] = '\0';
  m->pos += n;
  m->release(m->pos);
  return static_cast<int>(n);
}

long ctrl_mapped(BIO* b, int cmd, long, void*) {
  MappedInput* m = mapped_of(b);
  switch (cmd) {
    case BIO_CTRL_EOF:
      return m->pos == m->size() ? 1 : 0;
    case BIO_CTRL_PENDING:
      return static_cast<long>(m->size() - m->pos);
    case BIO_CTRL_FLUSH:
      return 1;
    default:
      return 0;
  }
}

const int kMappedType = BIO_get_new_index() | BIO_TYPE_SOURCE_SINK;

BIO_METHOD* mapped_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(kMappedType, "tokenkit mapped");
    BIO_meth_set_read(bm, read_mapped);
    BIO_meth_set_gets(bm, gets_mapped);
    BIO_meth_set_ctrl(bm, ctrl_mapped);
    return bm;
  }();
  return m;
}

// Pages are given back in steps of this much: what stays mapped behind the
// reader is at most this (and the kernel's fault-around ahead of it).
// 256 KiB: 400 madvise() calls for 100 MB, no cost to measure.
constexpr std::size_t kReleaseStep = std::size_t{256} * 1024;

MappedInput* mapped_source(BIO* in) {
  return in != nullptr && BIO_method_type(in) == kMappedType ? mapped_of(in) : nullptr;
}

// copy_canonical() from a mapping: the blocks BIO_read() would give (so the
// writes below, and the CMS that frames each of them, are the same bytes),
// written from the mapping itself where they are canonical already
// (scan_block(), Canonicalizer::pass_through()): no copy out of the
// mapping, no pass of memchr over each line.
bool copy_mapped(MappedInput& m, BIO* out, bool binary, bool stop_at_eight_bit) {
  std::string canon;
  Canonicalizer c;
  const bool scan = !binary || stop_at_eight_bit;
  while (m.pos < m.size()) {
    const std::size_t n = std::min(kCopyBlock, m.size() - m.pos);
    const char* p = m.data() + m.pos;
    const BlockScan s = scan ? scan_block(p, n) : BlockScan{};
    if (stop_at_eight_bit && s.eight_bit) return false;
    if (binary || (s.canonical && c.pass_through(p, n))) {
      write_all(out, std::string_view(p, n));
    } else {
      canon.clear();
      c.feed(p, n, canon);
      write_all(out, canon);
    }
    m.pos += n;
    m.release(m.pos);  // the bytes are out of the mapping: BIO_write copied or encrypted them
  }
  c.finish();
  return true;
}

}  // namespace

std::unique_ptr<MappedInput> MappedInput::map(BIO* in) {
  FILE* fp = nullptr;
  if (BIO_method_type(in) != BIO_TYPE_FILE || BIO_get_fp(in, &fp) != 1 || fp == nullptr) {
    return nullptr;
  }
  return map_fd(fileno(fp), BIO_tell(in));
}

std::unique_ptr<MappedInput> MappedInput::map_fd(int fd, long pos) {
  struct stat st {};
  if (pos < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= pos ||
      st.st_size - pos > (1L << 30)) {
    return nullptr;
  }
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  std::unique_ptr<MappedInput> m(new MappedInput);
  const auto start = static_cast<std::size_t>(pos) / page * page;
  m->skip_ = static_cast<std::size_t>(pos) - start;
  m->size_ = static_cast<std::size_t>(st.st_size - pos);
  m->length_ = m->skip_ + m->size_;
  m->addr_ = mmap(nullptr, m->length_, PROT_READ, MAP_PRIVATE, fd, static_cast<off_t>(start));
  if (m->addr_ == MAP_FAILED) {
    m->addr_ = nullptr;
    return nullptr;
  }
  (void)madvise(m->addr_, m->length_, MADV_SEQUENTIAL);
  m->bio_ = BIO_new(mapped_method());
  if (m->bio_ == nullptr) return nullptr;
  BIO_set_data(m->bio_, m.get());
  BIO_set_init(m->bio_, 1);
  return m;
}

void MappedInput::release(std::size_t upto) {
  // Whole pages before `upto` (counted from the mapping's start).
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t end = (skip_ + upto) / page * page;
  if (end < released_ + kReleaseStep && upto < size_) return;
  if (end > released_) {
    (void)madvise(static_cast<char*>(addr_) + released_, end - released_, MADV_DONTNEED);
    released_ = end;
  }
}

bool MappedInput::any_eight_bit() {
  bool any = false;
  for (std::size_t i = 0; i < size_ && !any;) {
    const std::size_t k = std::min(size_ - i, kReleaseStep);
    any = has_eight_bit(data() + i, k);
    i += k;
    release(i);
  }
  released_ = 0;  // read again from the start: bio() releases anew
  return any;
}

MappedInput::~MappedInput() {
  BIO_free(bio_);
  if (addr_ != nullptr) munmap(addr_, length_);
}

void touch_pages(const char* p, std::size_t n) {
  static const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const volatile char* v = p;
  for (std::size_t i = 0; i < n; i += page) (void)v[i];
}

void free_filters(BIO* chain, BIO* bottom) {
  while (chain != nullptr && chain != bottom) {
    BIO* next = BIO_pop(chain);
    BIO_free(chain);
    chain = next;
  }
}

bool write_pkcs7_mime(BIO* out, CMS_ContentInfo* cms, const char* smime_type, BIO* content,
                      bool binary, BIO* der_filter) {
  // The headers of OpenSSL's SMIME_write_CMS, with CRLF line ends.
  std::unique_ptr<BIO, decltype(&BIO_free)> filter_guard(der_filter, &BIO_free);
  write_all(out, std::string("MIME-Version: 1.0\r\n"
                             "Content-Disposition: attachment; filename=\"smime.p7m\"\r\n"
                             "Content-Type: application/pkcs7-mime; smime-type=") +
                     smime_type +
                     "; name=\"smime.p7m\"\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n");
  BIO* b64 = BIO_push(new_base64_filter(), out);
  // Base64 and the writes run in a thread of their own (async_out.hpp),
  // overlapping the encryption or hashing above.
  BIO* async = BIO_push(new_async_out(), b64);
  filter_guard.release();  // NOLINT(bugprone-unused-return-value): owned by the chain now
  BIO* below = der_filter != nullptr ? BIO_push(der_filter, async) : async;
  // Unlinks and frees our filters front to back, so `out` keeps no pointer
  // to them.
  const auto release = [&] {
    if (der_filter != nullptr) {
      BIO_pop(der_filter);
      BIO_free(der_filter);
    }
    BIO_pop(async);  // waits for the writer thread
    BIO_free(async);
    BIO_pop(b64);
    BIO_free(b64);
  };
  // BIO_new_NDEF: the CMS in BER with the content's length left open, the
  // content streamed through CMS's filters (digest or cipher) as written;
  // flushing writes what follows it (signatures, the GCM tag).
  BIO* ndef =
      BIO_new_NDEF(below, reinterpret_cast<ASN1_VALUE*>(cms), ASN1_ITEM_rptr(CMS_ContentInfo));
  bool ok = ndef != nullptr;
  try {
    if (ok) copy_canonical(content, ndef, binary);
    ok = ok && BIO_flush(ndef) == 1;
  } catch (...) {
    free_filters(ndef, below);
    release();
    throw;
  }
  free_filters(ndef, below);
  const std::string failed_write = async_out_error(async);
  release();
  if (!failed_write.empty()) {
    ERR_clear_error();
    throw Error(ErrorKind::Io, "cannot write the output: " + failed_write);
  }
  if (ok) write_all(out, "\r\n");
  return ok;
}

}  // namespace token::smime
