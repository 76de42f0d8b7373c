#include "crlf_bio.hpp"

#include <cstring>
#include <string>

namespace token::smime {

namespace {

bool write_all(BIO* next, const char* p, std::size_t n) {
  while (n > 0) {
    const int w = BIO_write(next, p, static_cast<int>(n));
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// The BIO's data: whether the last byte written was a CR, so that a CRLF
// split across two writes is not doubled. Whole runs between line feeds are
// passed on as they are: this sits on every byte of a 100 MB message.
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
      if (!write_all(next, p, static_cast<std::size_t>(end - p))) return -1;
      prev_cr = end[-1] == '\r';
      break;
    }
    const bool has_cr = nl > p ? nl[-1] == '\r' : prev_cr;
    if (!write_all(next, p, static_cast<std::size_t>(nl - p))) return -1;
    if (!write_all(next, has_cr ? "\n" : "\r\n", has_cr ? 1 : 2)) return -1;
    prev_cr = false;
    p = nl + 1;
  }
  // Any non-null pointer means "true"; the BIO's own address is at hand.
  BIO_set_data(b, prev_cr ? static_cast<void*>(b) : nullptr);
  return len;
}

long ctrl_crlf(BIO* b, int cmd, long num, void* ptr) {
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

BIO_METHOD* method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit CRLF");
    BIO_meth_set_write(bm, write_crlf);
    BIO_meth_set_puts(bm, puts_crlf);
    BIO_meth_set_ctrl(bm, ctrl_crlf);
    BIO_meth_set_create(bm, create);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_crlf_filter() { return BIO_new(method()); }

}  // namespace token::smime
