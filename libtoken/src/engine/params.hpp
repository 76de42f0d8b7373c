// Reading and writing OpenSSL's RSA parameters in both forms its ctrl glue
// uses: integers from the EVP_PKEY_CTX_set_* functions, strings from
// -pkeyopt and from the EVP_PKEY_CTX_get_* translations.
#pragma once

#include <openssl/params.h>

#include <string>

namespace token::engine {

std::string param_string(const OSSL_PARAM* p);  // throws Error(Usage) if not a string
int param_padding(const OSSL_PARAM* p);         // RSA_PKCS1_PADDING, ...
int param_saltlen(const OSSL_PARAM* p);         // a length or RSA_PSS_SALTLEN_*
int put_padding(OSSL_PARAM* p, int pad);
int put_saltlen(OSSL_PARAM* p, int saltlen);

}  // namespace token::engine
