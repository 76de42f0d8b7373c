// An object as the module holds it in memory: class and attribute values
// (clear, wiped when dropped), where it lives, and the ready EVP_PKEY made
// from it on first use.
#pragma once

#include <openssl/evp.h>

#include <map>
#include <memory>

#include "bytes.h"
#include "p11.h"

namespace tk {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;

using AttrMap = std::map<CK_ATTRIBUTE_TYPE, Secret>;

struct Object {
  AttrMap attrs;
  int64_t uid = 0;                 // store row; 0 for a session object
  CK_SESSION_HANDLE owner = 0;     // creating session of a session object
  std::shared_ptr<EVP_PKEY> pkey;  // cache, built by pkey.cpp

  bool has(CK_ATTRIBUTE_TYPE t) const { return attrs.count(t) != 0; }
  const Secret& get(CK_ATTRIBUTE_TYPE t) const;
  Bytes bytes(CK_ATTRIBUTE_TYPE t) const {
    const Secret& v = get(t);
    return Bytes(v.begin(), v.end());
  }
  bool flag(CK_ATTRIBUTE_TYPE t) const;  // false when absent
  CK_ULONG ulong(CK_ATTRIBUTE_TYPE t) const;
  CK_OBJECT_CLASS cls() const { return ulong(CKA_CLASS); }
  bool is_private() const { return flag(CKA_PRIVATE); }
  bool on_token() const { return flag(CKA_TOKEN); }
};

Secret ulong_value(CK_ULONG v);
Secret bool_value(bool v);

}  // namespace tk
