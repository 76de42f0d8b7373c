#include "der_walk.hpp"

#include "token/error.hpp"

namespace token::smime::der {

Got tlv(const Bytes& b, std::size_t at, Tlv& t) {
  t = Tlv{};
  t.start = at;
  if (at + 2 > b.size()) return Got::More;
  t.tag = b[at];
  if ((t.tag & 0x1f) == 0x1f) return Got::Bad;
  const unsigned char first = b[at + 1];
  t.hdr = 2;
  if (first == 0x80) {
    t.indefinite = true;
    return (t.tag & 0x20) ? Got::Ok : Got::Bad;
  }
  if (first < 0x80) {
    t.len = first;
    return Got::Ok;
  }
  const std::size_t n = first & 0x7f;
  if (n > 4) return Got::Bad;
  if (at + 2 + n > b.size()) return Got::More;
  for (std::size_t i = 0; i < n; ++i) t.len = (t.len << 8) | b[at + 2 + i];
  t.hdr = 2 + n;
  return Got::Ok;
}

void der_header(Bytes& out, unsigned char tag, std::size_t n) {
  out.push_back(tag);
  if (n < 0x80) {
    out.push_back(static_cast<unsigned char>(n));
    return;
  }
  Bytes be;
  for (; n > 0; n >>= 8) be.insert(be.begin(), static_cast<unsigned char>(n & 0xff));
  out.push_back(static_cast<unsigned char>(0x80 | be.size()));
  out.insert(out.end(), be.begin(), be.end());
}

Bytes der_tlv(unsigned char tag, const Bytes& content) {
  Bytes out;
  der_header(out, tag, content.size());
  out.insert(out.end(), content.begin(), content.end());
  return out;
}

Bytes slice(const Bytes& b, std::size_t from, std::size_t to) {
  return Bytes(b.begin() + static_cast<std::ptrdiff_t>(from),
               b.begin() + static_cast<std::ptrdiff_t>(to));
}

Got locate(const Bytes& b, Path& p) {
  std::size_t at = 0;
  Tlv t;
  Got g = tlv(b, at, p.ci);
  if (g != Got::Ok) return g;
  if (p.ci.tag != 0x30) return Got::Bad;
  at = p.ci.content();
  if ((g = tlv(b, at, t)) != Got::Ok) return g;
  if (t.tag != 0x06 || t.indefinite) return Got::Bad;
  at = t.end();
  if ((g = tlv(b, at, p.e0)) != Got::Ok) return g;
  if (p.e0.tag != 0xa0) return Got::Bad;
  at = p.e0.content();
  if ((g = tlv(b, at, p.env)) != Got::Ok) return g;
  if (p.env.tag != 0x30) return Got::Bad;
  at = p.env.content();
  if ((g = tlv(b, at, t)) != Got::Ok) return g;
  if (t.tag != 0x02 || t.indefinite) return Got::Bad;
  at = t.end();
  if ((g = tlv(b, at, t)) != Got::Ok) return g;
  if (t.tag == 0xa0) {  // originatorInfo
    if (t.indefinite) return Got::Bad;
    at = t.end();
    if ((g = tlv(b, at, t)) != Got::Ok) return g;
  }
  if (t.tag != 0x31 || t.indefinite) return Got::Bad;
  p.set = t;
  return p.set.end() <= b.size() ? Got::Ok : Got::More;
}

std::vector<Bytes> elements(const Bytes& content) {
  std::vector<Bytes> out;
  std::size_t at = 0;
  while (at < content.size()) {
    Tlv t;
    if (tlv(content, at, t) != Got::Ok || t.indefinite || t.end() > content.size()) {
      throw Error(ErrorKind::Input,
                  "the encrypted message has a recipient info that is not DER (it cannot be "
                  "read for X25519 key agreement)");
    }
    out.push_back(slice(content, at, t.end()));
    at = t.end();
  }
  return out;
}

}  // namespace token::smime::der
