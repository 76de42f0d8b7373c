// X25519 key agreement in CMS (RFC 8418), which OpenSSL 3.0's CMS lacks.
//
// RFC 8418 is RFC 5753's ephemeral-static ECDH with X25519 and HKDF: the
// sender makes an ephemeral key, agrees Z with the recipient's key, derives a
// key-encryption key (KEK) with HKDF over Z and an ECC-CMS-SharedInfo, and
// wraps the content key under it with AES key wrap. Past the KEK, that is
// exactly what OpenSSL's KEK recipient info (KEKRecipientInfo, RFC 5652
// 6.2.3) does with a KEK it is given. So:
//
//  - encrypting, each X25519 recipient becomes a KEK recipient info with the
//    derived KEK, which OpenSSL fills in as it streams the message; on its
//    way out, the recipient info set is rewritten (StreamRewriter), each of
//    those KEK infos turned into the KeyAgreeRecipientInfo it stands for;
//  - decrypting, the KeyAgreeRecipientInfo for the token key's certificate
//    is turned into a KEK info before OpenSSL reads the message, with the KEK
//    derived on the token (CKM_ECDH1_DERIVE) and HKDF on the host, and
//    OpenSSL unwraps the content key and decrypts as for any message.
#pragma once

#include <openssl/bio.h>
#include <openssl/cms.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "token/attributes.hpp"
#include "token/engine.hpp"

namespace token::smime::x25519 {

// The X25519 recipients of one message being encrypted.
class Recipients {
 public:
  Recipients();
  ~Recipients();
  Recipients(const Recipients&) = delete;
  Recipients& operator=(const Recipients&) = delete;

  // Adds a KEK recipient info to `cms` standing for `cert` (an X25519
  // certificate): ephemeral key, Z, HKDF-SHA256, AES-256 key wrap. Throws
  // Error(Input) naming the certificate when its key is unusable.
  void add(CMS_ContentInfo* cms, X509* cert);
  bool empty() const;
  // The content of a RecipientInfos SET with each of our KEK infos replaced
  // by its KeyAgreeRecipientInfo. Throws Error(Internal) if one is missing.
  Bytes rewrite_set(const Bytes& set_content) const;

  struct Entry;

 private:
  std::vector<std::unique_ptr<Entry>> entries_;
};

// A filter BIO for the DER stream OpenSSL writes (i2d_CMS_bio_stream): it
// holds the first bytes until the RecipientInfos SET is complete, rewrites
// it with `r`, and passes everything else through. The outer structures of a
// streamed CMS have indefinite lengths, so the SET may change length. `r`
// must outlive the BIO.
BIO* new_rewriter(const Recipients& r);

// For decryption: the message's CMS (DER, as split_envelope gives it) with
// the X25519 KeyAgreeRecipientInfo for `key`'s certificate turned into a KEK
// recipient info, and the KEK and its id for CMS_decrypt_set1_key().
struct Prepared {
  Bytes der;
  Bytes kek;
  Bytes kek_id;
  Prepared() = default;
  Prepared(Prepared&&) = default;
  Prepared& operator=(Prepared&&) = default;
  Prepared(const Prepared&) = delete;
  Prepared& operator=(const Prepared&) = delete;
  ~Prepared();  // wipes the KEK
};
// nullopt when the message has no X25519 recipient info for the key's
// certificate. Throws Error(Input) naming the fault for one that is there
// but wrong (an ephemeral key not of 32 bytes, an unknown key-agreement or
// key-wrap algorithm), and the token's error when the derivation fails.
std::optional<Prepared> prepare_decrypt(const Bytes& der, const TokenKey& key);

// The number of X25519 KeyAgreeRecipientInfos in `der`, each checked as
// prepare_decrypt() checks the one it uses (no key needed: for
// inspect_encrypted() and its fuzz target). Error(Input) for a bad one.
std::size_t check_recipients(const Bytes& der);

}  // namespace token::smime::x25519
