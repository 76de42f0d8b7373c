// Filter BIOs for S/MIME output and input. The CRLF filter turns every bare
// LF into CRLF: OpenSSL writes MIME headers and base64 with LF, RFC 5322 and
// RFC 8551 want CRLF.
#pragma once

#include <openssl/bio.h>

namespace token::smime {

// A new filter BIO; push it on the output (BIO_push(filter, out)).
BIO* new_crlf_filter();

}  // namespace token::smime
