// Encryption (5.8), decryption (5.9), digests (5.10), signatures (5.11),
// verification (5.12) and dual-function operations (5.13).
#include "entry_util.h"

using tk::call;
using tk::call_session;
using tk::Module;
using tk::OpKind;
using tk::Session;

namespace {

CK_RV not_supported(CK_SESSION_HANDLE h) {
  return call([&](Module& m) {
    m.session(h);
    return CKR_FUNCTION_NOT_SUPPORTED;
  });
}

}  // namespace

extern "C" {

CK_RV C_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  return call_session(
      h, [&](Session& s) TK_REQUIRES(s.mu) { tk::op_init(s, OpKind::kEncrypt, pMechanism, hKey); });
}

CK_RV C_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR pData, CK_ULONG ulDataLen,
                CK_BYTE_PTR pEncryptedData, CK_ULONG_PTR pulEncryptedDataLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kEncrypt, pData, ulDataLen, true, pEncryptedData, pulEncryptedDataLen);
  });
}

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR pPart, CK_ULONG ulPartLen,
                      CK_BYTE_PTR pEncryptedPart, CK_ULONG_PTR pulEncryptedPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_part(s, OpKind::kEncrypt, pPart, ulPartLen, pEncryptedPart, pulEncryptedPartLen);
  });
}

CK_RV C_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pLastEncryptedPart,
                     CK_ULONG_PTR pulLastEncryptedPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kEncrypt, nullptr, 0, false, pLastEncryptedPart,
                  pulLastEncryptedPartLen);
  });
}

CK_RV C_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  return call_session(
      h, [&](Session& s) TK_REQUIRES(s.mu) { tk::op_init(s, OpKind::kDecrypt, pMechanism, hKey); });
}

CK_RV C_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR pEncryptedData, CK_ULONG ulEncryptedDataLen,
                CK_BYTE_PTR pData, CK_ULONG_PTR pulDataLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kDecrypt, pEncryptedData, ulEncryptedDataLen, true, pData, pulDataLen);
  });
}

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR pEncryptedPart, CK_ULONG ulEncryptedPartLen,
                      CK_BYTE_PTR pPart, CK_ULONG_PTR pulPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_part(s, OpKind::kDecrypt, pEncryptedPart, ulEncryptedPartLen, pPart, pulPartLen);
  });
}

CK_RV C_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pLastPart, CK_ULONG_PTR pulLastPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kDecrypt, nullptr, 0, false, pLastPart, pulLastPartLen);
  });
}

CK_RV C_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_init(s, OpKind::kDigest, pMechanism, CK_INVALID_HANDLE);
  });
}

CK_RV C_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pDigest,
               CK_ULONG_PTR pulDigestLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kDigest, pData, ulDataLen, true, pDigest, pulDigestLen);
  });
}

CK_RV C_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_update(s, OpKind::kDigest, pPart, ulPartLen);
  });
}

CK_RV C_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE) { return not_supported(h); }

CK_RV C_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pDigest, CK_ULONG_PTR pulDigestLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kDigest, nullptr, 0, false, pDigest, pulDigestLen);
  });
}

CK_RV C_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  return call_session(
      h, [&](Session& s) TK_REQUIRES(s.mu) { tk::op_init(s, OpKind::kSign, pMechanism, hKey); });
}

CK_RV C_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
             CK_ULONG_PTR pulSignatureLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kSign, pData, ulDataLen, true, pSignature, pulSignatureLen);
  });
}

CK_RV C_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return call_session(
      h, [&](Session& s) TK_REQUIRES(s.mu) { tk::op_update(s, OpKind::kSign, pPart, ulPartLen); });
}

CK_RV C_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pSignature, CK_ULONG_PTR pulSignatureLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_output(s, OpKind::kSign, nullptr, 0, false, pSignature, pulSignatureLen);
  });
}

CK_RV C_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) {
  return not_supported(h);
}

CK_RV C_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

CK_RV C_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
  return call_session(
      h, [&](Session& s) TK_REQUIRES(s.mu) { tk::op_init(s, OpKind::kVerify, pMechanism, hKey); });
}

CK_RV C_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
               CK_ULONG ulSignatureLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_verify(s, pData, ulDataLen, true, pSignature, ulSignatureLen);
  });
}

CK_RV C_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR pPart, CK_ULONG ulPartLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_update(s, OpKind::kVerify, pPart, ulPartLen);
  });
}

CK_RV C_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR pSignature, CK_ULONG ulSignatureLen) {
  return call_session(h, [&](Session& s) TK_REQUIRES(s.mu) {
    tk::op_verify(s, nullptr, 0, false, pSignature, ulSignatureLen);
  });
}

CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR, CK_OBJECT_HANDLE) {
  return not_supported(h);
}

CK_RV C_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR) {
  return not_supported(h);
}

}  // extern "C"
