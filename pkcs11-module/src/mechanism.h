// The mechanism registry. Each family (mech_*.cpp) registers its mechanisms;
// C_GetMechanismList/Info and every C_*Init are derived from it.
#pragma once

#include <memory>
#include <vector>

#include "error.h"
#include "object.h"

namespace tk {

enum class OpKind { kEncrypt, kDecrypt, kSign, kVerify, kDigest, kCount };

// One cryptographic operation in progress. Input is fed by update();
// finish() produces the output (sign, digest, encrypt, decrypt) and
// verify() checks a signature.
class Operation {
 public:
  virtual ~Operation() = default;
  virtual void update(const uint8_t* data, size_t n) = 0;
  // An upper bound of the output size, for the size query (NULL output).
  virtual size_t output_size(size_t input_len) const = 0;
  virtual Bytes finish() { fail_unsupported(); }
  // Multi-part encryption/decryption: the exact output of the next
  // update_out(n bytes), known before any input is taken (for the size
  // query and CKR_BUFFER_TOO_SMALL), and the update itself. By default an
  // operation buffers and outputs everything at finish().
  virtual size_t part_size(size_t /*n*/) const { return 0; }
  virtual Bytes update_out(const uint8_t* data, size_t n) {
    update(data, n);
    return {};
  }
  virtual void verify(const uint8_t* /*sig*/, size_t /*n*/) { fail_unsupported(); }

 private:
  [[noreturn]] static void fail_unsupported();
};

// Buffers all input and runs once at the end: for mechanisms that are not
// multi-part in OpenSSL (raw RSA, RSA-OAEP, raw ECDSA).
class OneShot : public Operation {
 public:
  void update(const uint8_t* data, size_t n) override {
    input_.insert(input_.end(), data, data + n);
  }

 protected:
  Secret input_;
};

struct KeyPair {
  AttrMap pub, priv;
};

// Key pair generation for the curves whose keys are 32 raw bytes (Ed25519,
// X25519: `algorithm` is OpenSSL's name), whose CKA_EC_PARAMS `curve_ok`
// accepts: CKA_EC_POINT the DER OCTET STRING of the public key, CKA_VALUE
// the private key.
void generate_raw_25519(const CK_MECHANISM& m, KeyPair& pair, bool (*curve_ok)(const Secret&),
                        const char* algorithm);

// The key an operation works with: an EVP_PKEY for RSA and EC keys, the
// value (CKA_VALUE) for secret keys. The operation holds its own reference
// or copy, so destroying the object does not pull it from under it.
struct KeyRef {
  std::shared_ptr<EVP_PKEY> pkey;
  Secret value;
};

struct Mechanism {
  CK_MECHANISM_TYPE type = 0;
  CK_KEY_TYPE key_type = 0;  // CK_UNAVAILABLE_INFORMATION for digests
  CK_ULONG min_key = 0, max_key = 0;
  CK_FLAGS flags = 0;
  // Starts an operation; `key` is empty for digests.
  std::unique_ptr<Operation> (*start)(const CK_MECHANISM& m, OpKind kind,
                                      const KeyRef& key) = nullptr;
  // Fills in the key material of a generated pair (templates already
  // completed, CKA_EC_PARAMS/CKA_MODULUS_BITS in pub).
  void (*generate)(const CK_MECHANISM& m, KeyPair& pair) = nullptr;
  // Fills in CKA_VALUE of a generated secret key (template completed).
  void (*generate_secret)(const CK_MECHANISM& m, AttrMap& key) = nullptr;
  // Derives `len` bytes of key value from a base key (0: the natural size).
  Secret (*derive)(const CK_MECHANISM& m, const KeyRef& base, size_t len) = nullptr;

  bool secret_key() const { return key_type == CKK_AES || key_type == CKK_GENERIC_SECRET; }
};

// Every registered entry. A mechanism may have one entry per key type it
// works on (CKM_ECDH1_DERIVE: EC keys in mech_ec.cpp, Montgomery keys in
// mech_montgomery.cpp).
const std::vector<Mechanism>& mechanisms();
// The mechanism's first entry, or CKR_MECHANISM_INVALID.
const Mechanism& mechanism(CK_MECHANISM_TYPE type);
// The entry for a key of `key_type`: CKR_MECHANISM_INVALID for an unknown
// mechanism, CKR_KEY_TYPE_INCONSISTENT when no entry takes that key type.
const Mechanism& mechanism(CK_MECHANISM_TYPE type, CK_KEY_TYPE key_type);
// The mechanism types, each once, in registration order.
std::vector<CK_MECHANISM_TYPE> mechanism_types();
// C_GetMechanismInfo: the entries of one type merged (smallest and largest
// key size over the key types, the union of the flags).
CK_MECHANISM_INFO mechanism_info(CK_MECHANISM_TYPE type);

// Family registration, called once by the registry.
void register_digests(std::vector<Mechanism>& out);
void register_rsa(std::vector<Mechanism>& out);
void register_ec(std::vector<Mechanism>& out);
void register_aes(std::vector<Mechanism>& out);
void register_eddsa(std::vector<Mechanism>& out);
void register_montgomery(std::vector<Mechanism>& out);

// CKM_ECDH1_DERIVE after the shared secret Z (2.3.15): CKD_NULL gives Z
// (its leading `len` bytes when len > 0), CKD_SHAx_KDF the X9.63 KDF over Z
// and the shared data. Shared by the EC and Montgomery families.
Secret ecdh_kdf(Secret z, const CK_ECDH1_DERIVE_PARAMS& p, size_t len);

// Parameter helpers shared by the families.
const EVP_MD* digest_for(CK_MECHANISM_TYPE hash);  // CKM_SHA*, else nullptr
const EVP_MD* digest_for_mgf(CK_RSA_PKCS_MGF_TYPE mgf);
template <class T>
const T& params_as(const CK_MECHANISM& m) {
  require(m.pParameter != nullptr && m.ulParameterLen == sizeof(T), CKR_MECHANISM_PARAM_INVALID);
  return *static_cast<const T*>(m.pParameter);
}

}  // namespace tk
