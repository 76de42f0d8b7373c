// A fresh token directory per test, and the module under test loaded with
// dlopen from the path the build gives (TOKENKIT_MODULE_PATH).
#pragma once

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <p11-kit/pkcs11.h>

#include <string>
#include <vector>

namespace tkt {

using Bytes = std::vector<unsigned char>;

CK_FUNCTION_LIST* module();  // loaded once per process

inline const char* kSoPin = "so-secret-1";
inline const char* kUserPin = "user-pin-4711";

// Typed attribute values that own their storage.
struct Template {
  std::vector<CK_ATTRIBUTE> attrs;
  std::vector<Bytes> store;
  Template& add(CK_ATTRIBUTE_TYPE t, const void* p, size_t n);
  Template& ulong(CK_ATTRIBUTE_TYPE t, CK_ULONG v) { return add(t, &v, sizeof v); }
  Template& flag(CK_ATTRIBUTE_TYPE t, bool v) {
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    return add(t, &b, 1);
  }
  Template& bytes(CK_ATTRIBUTE_TYPE t, const Bytes& v) { return add(t, v.data(), v.size()); }
  Template& text(CK_ATTRIBUTE_TYPE t, const std::string& s) { return add(t, s.data(), s.size()); }
  CK_ATTRIBUTE* data();
  CK_ULONG size() const { return static_cast<CK_ULONG>(attrs.size()); }
};

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Initialises the free slot as a token with user PIN kUserPin; returns it.
  CK_SLOT_ID make_token(const std::string& label = "test token");
  CK_SESSION_HANDLE open(CK_SLOT_ID slot, bool rw = true);
  CK_SESSION_HANDLE user_session(CK_SLOT_ID slot);  // R/W, logged in
  CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE who, const std::string& pin);
  CK_SLOT_ID free_slot();
  std::vector<CK_OBJECT_HANDLE> find(CK_SESSION_HANDLE s, Template t);
  Bytes attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t);
  CK_RV attr_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_TYPE t, CK_ULONG* len);
  void gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const std::string& label, CK_OBJECT_HANDLE* pub,
               CK_OBJECT_HANDLE* priv, bool token = true);
  void gen_ec(CK_SESSION_HANDLE s, const Bytes& params, const std::string& label,
              CK_OBJECT_HANDLE* pub, CK_OBJECT_HANDLE* priv);
  Bytes sign(CK_SESSION_HANDLE s, CK_MECHANISM m, CK_OBJECT_HANDLE key, const Bytes& data);
  CK_RV verify(CK_SESSION_HANDLE s, CK_MECHANISM m, CK_OBJECT_HANDLE key, const Bytes& data,
               const Bytes& sig);
  void reinitialize();  // C_Finalize + C_Initialize
  std::string db_path(CK_SLOT_ID slot) const;

  CK_FUNCTION_LIST* p11 = nullptr;
  std::string dir;
};

Bytes to_bytes(const std::string& s);
std::string run(const std::string& cmd, int* status = nullptr);  // stdout+stderr
Bytes read_file(const std::string& path);

// An RSA key and a self-signed certificate (dir/key.pem, dir/cert.der)
// made by the openssl CLI; the key as OpenSSL reads it back.
EVP_PKEY* openssl_rsa_key(const std::string& dir);
Bytes bn(EVP_PKEY* k, const char* name);
// A C_CreateObject template for the key (token, private, CKA_ID abcd).
Template rsa_private_template(EVP_PKEY* k, bool sensitive, const std::string& label = "imported");

// DER OIDs of the curves.
extern const Bytes kP256, kP384, kP521;

}  // namespace tkt
