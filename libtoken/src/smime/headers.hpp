// The top-level header fields of a mail message (RFC 5322), read ahead of
// OpenSSL's MIME reader and handed back to it: verify needs the From
// address, which OpenSSL's S/MIME reader skips.
#pragma once

#include <openssl/bio.h>

#include <optional>
#include <string>

namespace token::smime {

// Reads lines from `in` up to and including the blank line that ends the
// header block (or EOF). Throws Error(Input) past `limit` bytes: messages
// come from strangers.
std::string read_header_block(BIO* in, std::size_t limit = std::size_t{256} * 1024);

// A source filter that yields `prefix` first, then what the BIO below it
// yields; supports BIO_read and BIO_gets, which is what OpenSSL's MIME
// reader uses. Push it on the BIO the prefix was read from.
BIO* new_prefix_filter(std::string prefix);

// The unfolded value of the first field `name` (case-insensitive), if any.
std::optional<std::string> header_value(const std::string& block, const std::string& name);

// The addr-spec of a From value: "Alice <alice@example.org>" gives
// "alice@example.org"; lower-cased for comparison.
std::string mail_address(const std::string& from);

// ASCII lower case; spaces, tabs, CR and LF trimmed from both ends.
std::string lower(std::string s);
std::string trim(const std::string& s);

}  // namespace token::smime
