// Readers for multipart/signed (RFC 1847, RFC 2046 section 5.1.1, RFC 8551
// section 3.5): OpenSSL 3.0's MIME reader holds the whole signed part in
// memory. The streaming one here copies it, byte for byte as signed, to a
// BIO (a scratch file) as it reads; the one over memory (a mapped file)
// gives it as a range, no copy. Both keep only the signature part, and
// accept and refuse the same bodies with the same messages (the unit tests
// MultipartInMemory.* and the smime_multipart fuzz target compare them).
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "token/attributes.hpp"

namespace token::smime {

// The value of parameter `name` (case-insensitive) of a header field value
// such as `multipart/signed; protocol="..."; boundary=abc`, unquoted.
std::optional<std::string> header_param(const std::string& value, const std::string& name);

// The media type of a Content-Type value, lower-cased: "multipart/signed".
std::string media_type(const std::string& content_type);

// Reads the body of a multipart/signed entity from `in` (positioned after
// its header block): the first part (its headers and body, without the CRLF
// before the next delimiter) goes to `content`; the second part must be
// application/pkcs7-signature in base64, and its decoded bytes are
// returned. At most `signature_limit` bytes of base64 are accepted. Throws
// Error(Input) naming what is missing or malformed.
Bytes split_multipart_signed(BIO* in, const std::string& boundary, BIO* content,
                             std::size_t signature_limit = std::size_t{4} << 20);

// Where split_multipart_signed() would find the parts of a body that lies
// in memory (a mapped file): the signed part is [content_begin,
// content_end), no copy; the signature part's decoded bytes are kept.
struct MultipartSigned {
  std::size_t content_begin = 0;
  std::size_t content_end = 0;
  Bytes signature;
};

// split_multipart_signed() over the `n` bytes at `p`: the same parts, the
// same refusals with the same messages. The delimiters are found with
// memmem() in steps of `step` bytes (a delimiter may straddle two steps);
// after each step `progress` (if set) is told how far the search has
// read, so that the caller can give the pages behind it back.
MultipartSigned split_multipart_signed(const char* p, std::size_t n, const std::string& boundary,
                                       std::size_t signature_limit = std::size_t{4} << 20,
                                       const std::function<void(std::size_t)>& progress = {},
                                       std::size_t step = std::size_t{1} << 20);

// The first line of the `n` bytes at `p` that starts with `dash` (a line
// starts at 0 and after each LF) and starts in [from, to), reading at most
// up to to + dash.size(); npos when there is none.
std::size_t find_dash_line(const char* p, std::size_t n, std::string_view dash, std::size_t from,
                           std::size_t to);

// An empty read-write scratch file in $TMPDIR (else /tmp), already unlinked:
// it disappears when the BIO is freed. Throws Error(Io).
BIO* scratch_file();

}  // namespace token::smime
