// Walking the DER (and BER) OpenSSL writes for a streamed CMS message, far
// enough to find and rewrite its RecipientInfos SET (kari_x25519.cpp), and
// the few DER headers the smime code writes itself.
#pragma once

#include <cstddef>
#include <vector>

#include "token/attributes.hpp"

namespace token::smime::der {

// Whether a TLV could be read: yes, not yet (more bytes needed), or never.
enum class Got { Ok, More, Bad };
// One tag-length header at `start`; `len` is meaningless when indefinite.
struct Tlv {
  std::size_t start = 0, hdr = 0, len = 0;
  unsigned char tag = 0;
  bool indefinite = false;
  std::size_t content() const { return start + hdr; }
  std::size_t end() const { return start + hdr + len; }  // definite only
};

// The header at `at` of `b` (single-byte tags, lengths up to 4 bytes).
Got tlv(const Bytes& b, std::size_t at, Tlv& t);

// Appends a tag and the definite DER length `n` to `out`.
void der_header(Bytes& out, unsigned char tag, std::size_t n);

// `content` under `tag`, with a definite DER length.
Bytes der_tlv(unsigned char tag, const Bytes& content);

// Bytes [from, to) of `b`.
Bytes slice(const Bytes& b, std::size_t from, std::size_t to);

// Where the RecipientInfos SET is in a ContentInfo holding (Auth)Enveloped-
// Data: ContentInfo, its OID, [0], the EnvelopedData SEQUENCE, its version,
// originatorInfo [0] if present, then the SET (RFC 5652 section 6.1, RFC
// 5083 section 2.1).
struct Path {
  Tlv ci, e0, env, set;
};

Got locate(const Bytes& b, Path& p);

// The elements of a SET's content, each definite; throws Error(Input) if one
// is not.
std::vector<Bytes> elements(const Bytes& content);

}  // namespace token::smime::der
