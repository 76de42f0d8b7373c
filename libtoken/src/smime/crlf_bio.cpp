#include "crlf_bio.hpp"

#include <string>

namespace token::smime {

namespace {

// The BIO's data: whether the last byte written was a CR, so that a CRLF
// split across two writes is not doubled.
int write_crlf(BIO* b, const char* data, int len) {
  BIO* next = BIO_next(b);
  if (next == nullptr || len < 0) return -1;
  auto prev_cr = reinterpret_cast<intptr_t>(BIO_get_data(b)) != 0;
  std::string out;
  out.reserve(static_cast<std::size_t>(len) + static_cast<std::size_t>(len) / 32 + 2);
  for (int i = 0; i < len; ++i) {
    if (data[i] == '\n' && !prev_cr) out += '\r';
    out += data[i];
    prev_cr = data[i] == '\r';
  }
  BIO_set_data(b, reinterpret_cast<void*>(static_cast<intptr_t>(prev_cr)));
  std::size_t done = 0;
  while (done < out.size()) {
    int n = BIO_write(next, out.data() + done, static_cast<int>(out.size() - done));
    if (n <= 0) return -1;
    done += static_cast<std::size_t>(n);
  }
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
