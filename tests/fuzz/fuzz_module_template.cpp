// The module's attribute-template handling: templates built from the input
// (known attribute types and raw ones, any lengths and values) go to
// C_CreateObject, C_FindObjectsInit, C_SetAttributeValue, C_CopyObject and
// C_GetAttributeValue on a real token. Any CK_RV is fine; a crash, or an
// object that was created but cannot be read back, is a finding.
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_module_common.hpp"

namespace {

const CK_ATTRIBUTE_TYPE kTypes[] = {
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_SIGN,
    CKA_VERIFY,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_DERIVE,
    CKA_EXTRACTABLE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_VALUE_LEN,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_ALLOWED_MECHANISMS,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_START_DATE,
    0x601 /* CKA_PROFILE_ID (3.0) */,
};
constexpr size_t kKnown = sizeof kTypes / sizeof kTypes[0];

// Records: a type byte (below kKnown: a known type; else four raw bytes
// follow), a length byte, then that many value bytes. A NULL value with a
// length when the length byte is 0xff.
struct Input {
  const uint8_t* p;
  size_t n;
  bool take(size_t k) { return n >= k; }
  uint8_t byte() {
    uint8_t b = *p;
    ++p, --n;
    return b;
  }
};

struct Template {
  std::vector<CK_ATTRIBUTE> attrs;
  std::vector<std::vector<uint8_t>> values;
};

Template parse(Input& in) {
  Template t;
  while (t.attrs.size() < 24 && in.take(2)) {
    uint8_t sel = in.byte();
    CK_ATTRIBUTE_TYPE type = 0;
    if (sel < kKnown) {
      type = kTypes[sel];
    } else {
      if (!in.take(4)) break;
      for (int i = 0; i < 4; ++i) type = (type << 8) | in.byte();
    }
    if (!in.take(1)) break;
    uint8_t len = in.byte();
    if (len == 0xff) {
      t.values.emplace_back();
      t.attrs.push_back({type, nullptr, 8});
      continue;
    }
    size_t k = std::min<size_t>(len, in.n);
    t.values.emplace_back(in.p, in.p + k);
    in.p += k, in.n -= k;
    t.attrs.push_back({type, nullptr, static_cast<CK_ULONG>(k)});
  }
  for (size_t i = 0; i < t.attrs.size(); ++i)
    if (t.attrs[i].ulValueLen != 8 || !t.values[i].empty())
      t.attrs[i].pValue = t.values[i].empty() ? nullptr : t.values[i].data();
  return t;
}

// Reads back every attribute the template named: sizes first, then values.
void read_back(CK_FUNCTION_LIST* p11, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE o, const Template& t) {
  for (const auto& want : t.attrs) {
    CK_ATTRIBUTE a = {want.type, nullptr, 0};
    CK_RV rv = p11->C_GetAttributeValue(s, o, &a, 1);
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) continue;
    FUZZ_CHECK(a.ulValueLen < (1u << 20));
    std::vector<uint8_t> buf(a.ulValueLen + 1);
    a.pValue = buf.data();
    FUZZ_CHECK(p11->C_GetAttributeValue(s, o, &a, 1) == CKR_OK);
  }
}

struct Token {
  CK_FUNCTION_LIST* p11;
  CK_SLOT_ID slot = 0;
  CK_SESSION_HANDLE anchor = 0;  // keeps the user logged in between inputs
};

Token setup() {
  fuzz_module::Loaded m = fuzz_module::load();
  Token t{m.p11};
  CK_C_INITIALIZE_ARGS args{};
  args.flags = CKF_OS_LOCKING_OK;
  FUZZ_CHECK(t.p11->C_Initialize(&args) == CKR_OK);
  CK_UTF8CHAR label[32];
  std::memset(label, ' ', sizeof label);
  std::memcpy(label, "fuzz", 4);
  FUZZ_CHECK(t.p11->C_InitToken(0, fuzz_module::utf8("so-pin-1"), 8, label) == CKR_OK);
  FUZZ_CHECK(t.p11->C_OpenSession(0, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                  &t.anchor) == CKR_OK);
  FUZZ_CHECK(t.p11->C_Login(t.anchor, CKU_SO, fuzz_module::utf8("so-pin-1"), 8) == CKR_OK);
  FUZZ_CHECK(t.p11->C_InitPIN(t.anchor, fuzz_module::utf8("user-pin"), 8) == CKR_OK);
  FUZZ_CHECK(t.p11->C_Logout(t.anchor) == CKR_OK);
  FUZZ_CHECK(t.p11->C_Login(t.anchor, CKU_USER, fuzz_module::utf8("user-pin"), 8) == CKR_OK);
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Token tk = setup();
  if (size < 1) return 0;
  CK_FUNCTION_LIST* p11 = tk.p11;
  Input in{data + 1, size - 1};
  int op = data[0] % 4;
  Template t = parse(in);
  CK_SESSION_HANDLE s = 0;
  FUZZ_CHECK(p11->C_OpenSession(tk.slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                &s) == CKR_OK);
  CK_ULONG n = static_cast<CK_ULONG>(t.attrs.size());
  CK_OBJECT_HANDLE o = CK_INVALID_HANDLE;
  if (op == 0) {
    if (p11->C_CreateObject(s, t.attrs.data(), n, &o) == CKR_OK) {
      read_back(p11, s, o, t);
      p11->C_DestroyObject(s, o);
    }
  } else if (op == 1) {
    if (p11->C_FindObjectsInit(s, t.attrs.data(), n) == CKR_OK) {
      CK_OBJECT_HANDLE found[8];
      CK_ULONG k = 0;
      FUZZ_CHECK(p11->C_FindObjects(s, found, 8, &k) == CKR_OK && k <= 8);
      FUZZ_CHECK(p11->C_FindObjectsFinal(s) == CKR_OK);
      for (CK_ULONG i = 0; i < k; ++i) read_back(p11, s, found[i], t);
    }
  } else {
    // A session data object to change (op 2) or copy (op 3) with the template.
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    char value[] = "fuzz value";
    CK_ATTRIBUTE base[] = {{CKA_CLASS, &cls, sizeof cls},
                           {CKA_TOKEN, &no, sizeof no},
                           {CKA_VALUE, value, sizeof value - 1}};
    FUZZ_CHECK(p11->C_CreateObject(s, base, 3, &o) == CKR_OK);
    if (op == 2) {
      if (p11->C_SetAttributeValue(s, o, t.attrs.data(), n) == CKR_OK) read_back(p11, s, o, t);
    } else {
      CK_OBJECT_HANDLE copy = CK_INVALID_HANDLE;
      if (p11->C_CopyObject(s, o, t.attrs.data(), n, &copy) == CKR_OK) {
        read_back(p11, s, copy, t);
        p11->C_DestroyObject(s, copy);
      }
    }
  }
  FUZZ_CHECK(p11->C_CloseSession(s) == CKR_OK);  // drops the session objects
  return 0;
}
