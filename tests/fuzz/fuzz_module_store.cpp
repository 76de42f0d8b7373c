// The module's store reader: whatever lies where a token's database should
// be (truncated, corrupted, from a newer format, not SQLite at all), the
// module answers with the standard's codes (CKR_TOKEN_NOT_RECOGNIZED,
// CKR_DEVICE_ERROR) and never crashes the application. The input is the
// file; the target opens the slot, its token and its public objects.
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <initializer_list>

#include "fuzz_module_common.hpp"

namespace {

bool one_of(CK_RV rv, std::initializer_list<CK_RV> ok) {
  for (CK_RV r : ok)
    if (rv == r) return true;
  std::fprintf(stderr, "unexpected rv 0x%lx\n", static_cast<unsigned long>(rv));
  return false;
}

void read_objects(CK_FUNCTION_LIST* p11, CK_SESSION_HANDLE s) {
  CK_RV rv = p11->C_FindObjectsInit(s, nullptr, 0);
  FUZZ_CHECK(one_of(rv, {CKR_OK, CKR_DEVICE_ERROR}));
  if (rv != CKR_OK) return;
  CK_OBJECT_HANDLE found[32];
  CK_ULONG n = 0;
  FUZZ_CHECK(p11->C_FindObjects(s, found, 32, &n) == CKR_OK && n <= 32);
  FUZZ_CHECK(p11->C_FindObjectsFinal(s) == CKR_OK);
  for (CK_ULONG i = 0; i < n; ++i) {
    for (CK_ATTRIBUTE_TYPE t : {CKA_CLASS, CKA_LABEL, CKA_ID, CKA_VALUE, CKA_KEY_TYPE, CKA_MODULUS,
                                CKA_EC_POINT, CKA_SUBJECT}) {
      CK_ATTRIBUTE a = {t, nullptr, 0};
      rv = p11->C_GetAttributeValue(s, found[i], &a, 1);
      if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 1 << 20)
        continue;
      std::string buf(a.ulValueLen, '\0');
      a.pValue = buf.data();
      FUZZ_CHECK(p11->C_GetAttributeValue(s, found[i], &a, 1) == CKR_OK);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static fuzz_module::Loaded m = fuzz_module::load();
  std::string db = m.dir + "/0.db";
  for (const char* extra : {"-wal", "-shm", "-journal", "-gen"}) unlink((db + extra).c_str());
  std::ofstream(db, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  CK_FUNCTION_LIST* p11 = m.p11;
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  FUZZ_CHECK(p11->C_Initialize(&args) == CKR_OK);
  CK_ULONG n = 0;
  FUZZ_CHECK(p11->C_GetSlotList(CK_FALSE, nullptr, &n) == CKR_OK && n >= 1);
  CK_TOKEN_INFO info;
  CK_RV rv = p11->C_GetTokenInfo(0, &info);
  FUZZ_CHECK(one_of(rv, {CKR_OK, CKR_TOKEN_NOT_RECOGNIZED, CKR_DEVICE_ERROR}));
  CK_SESSION_HANDLE s = 0;
  rv = p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
  FUZZ_CHECK(
      one_of(rv, {CKR_OK, CKR_TOKEN_NOT_RECOGNIZED, CKR_DEVICE_ERROR, CKR_TOKEN_NOT_PRESENT}));
  if (rv == CKR_OK) {
    // No login: a damaged file may ask for any PBKDF2 cost up to the
    // bound, which is a slow input, not a finding.
    read_objects(p11, s);
  }
  FUZZ_CHECK(p11->C_Finalize(nullptr) == CKR_OK);
  return 0;
}
