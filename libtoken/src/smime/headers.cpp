#include "headers.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "token/error.hpp"

namespace token::smime {

std::string read_header_block(BIO* in, std::size_t limit) {
  std::string block;
  char line[4096];
  int n;
  while ((n = BIO_gets(in, line, sizeof line)) > 0) {
    block.append(line, static_cast<std::size_t>(n));
    if (block.size() > limit) {
      throw Error(ErrorKind::Input, "the message's header block is larger than " +
                                        std::to_string(limit / 1024) + " KiB");
    }
    if (std::strcmp(line, "\n") == 0 || std::strcmp(line, "\r\n") == 0) break;
  }
  return block;
}

namespace {

struct Prefix {
  std::string data;
  std::size_t pos = 0;
  std::size_t left() const { return data.size() - pos; }
};

Prefix* prefix_of(BIO* b) { return static_cast<Prefix*>(BIO_get_data(b)); }

int read_prefix(BIO* b, char* out, int len) {
  Prefix* p = prefix_of(b);
  if (p->left() == 0) return BIO_read(BIO_next(b), out, len);
  const std::size_t n = std::min(p->left(), static_cast<std::size_t>(len));
  std::memcpy(out, p->data.data() + p->pos, n);
  p->pos += n;
  return static_cast<int>(n);
}

// One line (or what fits) of the prefix; a line split between the prefix
// and the BIO below cannot happen, the prefix being whole lines.
int gets_prefix(BIO* b, char* out, int size) {
  Prefix* p = prefix_of(b);
  if (p->left() == 0) return BIO_gets(BIO_next(b), out, size);
  if (size <= 1) return 0;
  const std::size_t nl = p->data.find('\n', p->pos);
  std::size_t n = (nl == std::string::npos ? p->data.size() : nl + 1) - p->pos;
  n = std::min(n, static_cast<std::size_t>(size - 1));
  std::memcpy(out, p->data.data() + p->pos, n);
  out[n] = '\0';
  p->pos += n;
  return static_cast<int>(n);
}

long ctrl_prefix(BIO* b, int cmd, long num, void* ptr) {
  Prefix* p = prefix_of(b);
  if (cmd == BIO_CTRL_EOF && p->left() > 0) return 0;
  if (cmd == BIO_CTRL_PENDING && p->left() > 0) return static_cast<long>(p->left());
  return BIO_ctrl(BIO_next(b), cmd, num, ptr);
}

int destroy_prefix(BIO* b) {
  delete prefix_of(b);
  BIO_set_data(b, nullptr);
  return 1;
}

BIO_METHOD* prefix_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "tokenkit prefix");
    BIO_meth_set_read(bm, read_prefix);
    BIO_meth_set_gets(bm, gets_prefix);
    BIO_meth_set_ctrl(bm, ctrl_prefix);
    BIO_meth_set_destroy(bm, destroy_prefix);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_prefix_filter(std::string prefix) {
  BIO* b = BIO_new(prefix_method());
  if (b == nullptr) return nullptr;
  BIO_set_data(b, new Prefix{std::move(prefix)});
  BIO_set_init(b, 1);
  return b;
}

std::optional<std::string> header_value(const std::string& block, const std::string& name) {
  const std::string want = lower(name) + ":";
  std::size_t pos = 0;
  while (pos < block.size()) {
    std::size_t end = block.find('\n', pos);
    if (end == std::string::npos) end = block.size();
    if (lower(block.substr(pos, want.size())) == want) {
      std::string value = trim(block.substr(pos + want.size(), end - pos - want.size()));
      // RFC 5322 section 2.2.3: a line starting with white space continues the field.
      for (pos = end + 1; pos < block.size() && (block[pos] == ' ' || block[pos] == '\t');) {
        end = block.find('\n', pos);
        if (end == std::string::npos) end = block.size();
        value += " " + trim(block.substr(pos, end - pos));
        pos = end + 1;
      }
      return trim(value);
    }
    pos = end + 1;
  }
  return std::nullopt;
}

std::string mail_address(const std::string& from) {
  const auto lt = from.rfind('<');
  const auto gt = from.rfind('>');
  if (lt != std::string::npos && gt != std::string::npos && gt > lt) {
    return lower(trim(from.substr(lt + 1, gt - lt - 1)));
  }
  return lower(trim(from));
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

}  // namespace token::smime
