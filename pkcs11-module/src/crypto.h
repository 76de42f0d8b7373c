// Small OpenSSL helpers for the store: random bytes, PBKDF2, AES-256-GCM.
#pragma once

#include <cstdint>
#include <string_view>

#include "bytes.h"

namespace tk::crypto {

void random(uint8_t* out, size_t n);
Bytes random(size_t n);

// PBKDF2-HMAC-SHA256 through EVP_KDF, 32 bytes out.
Secret pbkdf2(const Secret& pin, const Bytes& salt, uint32_t iterations);

// AES-256-GCM. seal returns IV(12) || ciphertext || tag(16); open returns
// false on a failed tag check (wrong key, tampered data or AAD).
Bytes seal(const Secret& key, const uint8_t* plain, size_t n, const Bytes& aad);
bool open(const Secret& key, const Bytes& sealed, const Bytes& aad, Secret& plain);

Bytes sha1(const Bytes& data);

// HMAC-SHA256 of `data` under `key` (32 bytes out).
Bytes hmac_sha256(const Secret& key, const Bytes& data);

}  // namespace tk::crypto
