#include "crypto.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <memory>

#include "error.h"

namespace tk::crypto {
namespace {

constexpr size_t kIv = 12, kTag = 16;

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

}  // namespace

void random(uint8_t* out, size_t n) {
  require(RAND_bytes(out, static_cast<int>(n)) == 1, CKR_FUNCTION_FAILED);
}

Bytes random(size_t n) {
  Bytes b(n);
  random(b.data(), n);
  return b;
}

Secret pbkdf2(const Secret& pin, const Bytes& salt, uint32_t iterations) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "PBKDF2", nullptr);
  require(kdf != nullptr, CKR_FUNCTION_FAILED);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  require(ctx != nullptr, CKR_HOST_MEMORY);
  char digest[] = "SHA256";
  uint64_t iter = iterations;
  // An empty PIN is refused earlier; the const_casts are OpenSSL's API.
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_PASSWORD, const_cast<uint8_t*>(pin.data()), pin.size()),
                         OSSL_PARAM_construct_octet_string(
                             OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt.data()), salt.size()),
                         OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
                         OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  Secret out(32);
  int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  require(ok == 1, CKR_FUNCTION_FAILED);
  return out;
}

Bytes seal(const Secret& key, const uint8_t* plain, size_t n, const Bytes& aad) {
  Bytes out(kIv + n + kTag);
  random(out.data(), kIv);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  bool ok =
      ctx &&
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), out.data()) == 1 &&
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
      EVP_EncryptUpdate(ctx.get(), out.data() + kIv, &len, plain, static_cast<int>(n)) == 1 &&
      EVP_EncryptFinal_ex(ctx.get(), out.data() + kIv + len, &len) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTag, out.data() + kIv + n) == 1;
  require(ok, CKR_FUNCTION_FAILED);
  return out;
}

bool open(const Secret& key, const Bytes& sealed, const Bytes& aad, Secret& plain) {
  if (sealed.size() < kIv + kTag || key.size() != 32) return false;
  size_t n = sealed.size() - kIv - kTag;
  plain.assign(n, 0);
  CipherCtx ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  Bytes tag(sealed.end() - kTag, sealed.end());
  bool ok =
      ctx &&
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), sealed.data()) == 1 &&
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1 &&
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, sealed.data() + kIv, static_cast<int>(n)) ==
          1 &&
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTag, tag.data()) == 1 &&
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &len) == 1;
  if (!ok) plain.clear();
  return ok;
}

Bytes sha1(const Bytes& data) {
  Bytes out(20);
  unsigned int len = 0;
  require(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha1(), nullptr) == 1,
          CKR_FUNCTION_FAILED);
  return out;
}

Bytes hmac_sha256(const Secret& key, const Bytes& data) {
  Bytes out(32);
  size_t len = 0;
  require(EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, key.data(), key.size(),
                    data.data(), data.size(), out.data(), out.size(), &len) != nullptr &&
              len == out.size(),
          CKR_FUNCTION_FAILED);
  return out;
}

}  // namespace tk::crypto
