// Object management (PKCS#11 v2.40 section 5.7) and key pair generation.
#include <algorithm>
#include <cstring>

#include "attributes.h"
#include "crypto.h"
#include "error.h"
#include "module.h"
#include "pkey.h"

namespace tk {

CK_OBJECT_HANDLE Module::handle_for(CK_SLOT_ID slot, int64_t uid) {
  auto it = token_handles_.find({slot, uid});
  if (it != token_handles_.end()) return it->second;
  CK_OBJECT_HANDLE h = next_handle_++;
  token_handles_[{slot, uid}] = h;
  handles_[h] = HandleTarget{slot, uid, nullptr};
  return h;
}

CK_OBJECT_HANDLE Module::add_session_object(Session& s, std::shared_ptr<Object> o) {
  o->owner = s.handle;
  CK_OBJECT_HANDLE h = next_handle_++;
  handles_[h] = HandleTarget{s.slot, 0, std::move(o)};
  session_handles_.insert(h);
  return h;
}

bool Module::visible(Session& s, const Object& o) {
  return !o.is_private() || token(s.slot).role() == Role::kUser;
}

// 5.7 and 6.7.4 (table 24): who may create or change which objects.
void Module::check_writable(Session& s, const AttrMap& attrs) {
  Object o{attrs, 0, 0, nullptr};
  if (o.on_token()) require(s.rw, CKR_SESSION_READ_ONLY);
  if (o.is_private()) require(token(s.slot).role() == Role::kUser, CKR_USER_NOT_LOGGED_IN);
}

std::shared_ptr<Object> Module::object(Session& s, CK_OBJECT_HANDLE h) {
  auto it = handles_.find(h);
  require(it != handles_.end() && it->second.slot == s.slot, CKR_OBJECT_HANDLE_INVALID);
  const HandleTarget& t = it->second;
  if (t.session_object) {
    require(visible(s, *t.session_object), CKR_USER_NOT_LOGGED_IN);
    return t.session_object;
  }
  return token(s.slot).object(t.uid);
}

CK_OBJECT_HANDLE Module::store_object(Session& s, AttrMap attrs) {
  Object probe{attrs, 0, 0, nullptr};
  if (probe.on_token()) return handle_for(s.slot, token(s.slot).add(attrs));
  auto o = std::make_shared<Object>();
  o->attrs = std::move(attrs);
  return add_session_object(s, std::move(o));
}

CK_OBJECT_HANDLE Module::create_object(CK_SESSION_HANDLE h, AttrMap attrs) {
  Session& s = session(h);
  attrs = complete_template(std::move(attrs), Mode::kCreate);
  check_writable(s, attrs);
  set_origin(attrs, false, 0);
  Object o{attrs, 0, 0, nullptr};
  if (o.cls() == CKO_PUBLIC_KEY && o.ulong(CKA_KEY_TYPE) == CKK_RSA) {
    // CKA_MODULUS_BITS is the token's to compute for a created key.
    Secret n = o.get(CKA_MODULUS);
    size_t lead = 0;
    while (lead < n.size() && n[lead] == 0) ++lead;
    CK_ULONG bits = 0;
    if (lead < n.size()) {
      bits = 8 * (n.size() - lead);
      for (uint8_t top = n[lead]; !(top & 0x80); top = static_cast<uint8_t>(top << 1)) --bits;
    }
    attrs[CKA_MODULUS_BITS] = ulong_value(bits);
  }
  if (o.cls() == CKO_PUBLIC_KEY || o.cls() == CKO_PRIVATE_KEY) pkey_of(o);  // well-formed?
  if (o.cls() == CKO_SECRET_KEY) attrs[CKA_VALUE_LEN] = secret_value_len(attrs);
  return store_object(s, std::move(attrs));
}

void Module::destroy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh) {
  Session& s = session(h);
  auto o = object(s, oh);
  require(o->flag(CKA_DESTROYABLE), CKR_ACTION_PROHIBITED);
  if (o->uid) {
    require(s.rw, CKR_SESSION_READ_ONLY);
    token(s.slot).remove(o->uid);
    token_handles_.erase({s.slot, o->uid});
  }
  handles_.erase(oh);
  session_handles_.erase(oh);
}

// 5.7 C_CopyObject: the template may set CKA_TOKEN, make the copy private,
// unmodifiable or uncopyable, and change what C_SetAttributeValue could.
CK_OBJECT_HANDLE Module::copy_object(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh,
                                     const AttrMap& changes) {
  Session& s = session(h);
  auto o = object(s, oh);
  require(o->flag(CKA_COPYABLE), CKR_ACTION_PROHIBITED);
  AttrMap next = o->attrs, rest, envelope_changes;
  for (const auto& [type, value] : changes) {
    bool envelope = type == CKA_TOKEN || type == CKA_PRIVATE || type == CKA_MODIFIABLE ||
                    type == CKA_COPYABLE || type == CKA_DESTROYABLE;
    if (!envelope) {
      rest[type] = value;
      continue;
    }
    require(value.size() == 1, CKR_ATTRIBUTE_VALUE_INVALID);
    // These only ever become stricter in a copy.
    if (type == CKA_PRIVATE) require(value[0] || !o->is_private(), CKR_ATTRIBUTE_READ_ONLY);
    if (type == CKA_MODIFIABLE || type == CKA_COPYABLE)
      require(!value[0] || o->flag(type), CKR_ATTRIBUTE_READ_ONLY);
    envelope_changes[type] = value;
  }
  // The rest first: they need the source's CKA_MODIFIABLE, not the copy's.
  if (!rest.empty()) apply_update(next, rest);
  for (const auto& [type, value] : envelope_changes) next[type] = value;
  check_writable(s, next);
  return store_object(s, std::move(next));
}

// 5.7 C_GetAttributeValue: every attribute is processed; the last error wins
// and unusable entries get CK_UNAVAILABLE_INFORMATION.
CK_RV Module::get_attributes(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE* t,
                             CK_ULONG n) {
  Session& s = session(h);
  auto o = object(s, oh);
  CK_RV rv = CKR_OK;
  for (CK_ULONG i = 0; i < n; ++i) {
    CK_ATTRIBUTE& a = t[i];
    auto it = o->attrs.find(a.type);
    if (is_hidden(o->attrs, a.type)) {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_ATTRIBUTE_SENSITIVE;
    } else if (it == o->attrs.end()) {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_ATTRIBUTE_TYPE_INVALID;
    } else if (a.pValue == nullptr) {
      a.ulValueLen = it->second.size();
    } else if (a.ulValueLen >= it->second.size()) {
      if (!it->second.empty()) std::memcpy(a.pValue, it->second.data(), it->second.size());
      a.ulValueLen = it->second.size();
    } else {
      a.ulValueLen = CK_UNAVAILABLE_INFORMATION;
      rv = CKR_BUFFER_TOO_SMALL;
    }
  }
  return rv;
}

void Module::set_attributes(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, const AttrMap& changes) {
  Session& s = session(h);
  auto o = object(s, oh);
  AttrMap next = o->attrs;
  apply_update(next, changes);
  check_writable(s, next);
  if (o->uid) {
    token(s.slot).update(o->uid, next);
  } else {
    o->attrs = std::move(next);
  }
}

void Module::find_init(CK_SESSION_HANDLE h, const AttrMap& want) {
  Session& s = session(h);
  require(!s.find.active, CKR_OPERATION_ACTIVE);
  FindOp f;
  f.active = true;
  for (int64_t uid : token(s.slot).find(want)) f.found.push_back(handle_for(s.slot, uid));
  for (CK_OBJECT_HANDLE handle : session_handles_) {
    const HandleTarget& target = handles_.at(handle);
    const auto& obj = target.session_object;
    if (obj && target.slot == s.slot && visible(s, *obj) && matches(obj->attrs, want))
      f.found.push_back(handle);
  }
  s.find = std::move(f);
}

CK_ULONG Module::find(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE* out, CK_ULONG max) {
  Session& s = session(h);
  require(s.find.active, CKR_OPERATION_NOT_INITIALIZED);
  CK_ULONG n = 0;
  while (n < max && s.find.next < s.find.found.size()) out[n++] = s.find.found[s.find.next++];
  return n;
}

void Module::find_final(CK_SESSION_HANDLE h) {
  Session& s = session(h);
  require(s.find.active, CKR_OPERATION_NOT_INITIALIZED);
  s.find = FindOp{};
}

namespace {

// Class and key type default to the mechanism's; a template may repeat them
// but not contradict them.
void default_ulong(AttrMap& a, CK_ATTRIBUTE_TYPE type, CK_ULONG want) {
  auto it = a.find(type);
  if (it == a.end()) {
    a[type] = ulong_value(want);
    return;
  }
  require(it->second == ulong_value(want), CKR_TEMPLATE_INCONSISTENT);
}

// NSS's CKA_ID for a key: SHA-1 of the modulus or of the EC point octets.
Bytes default_id(const AttrMap& pub) {
  Object o{pub, 0, 0, nullptr};
  if (o.has(CKA_MODULUS)) return crypto::sha1(o.bytes(CKA_MODULUS));
  return crypto::sha1(ec_point_raw(o.get(CKA_EC_POINT)));
}

}  // namespace

void Module::generate_pair(CK_SESSION_HANDLE h, const CK_MECHANISM& m, AttrMap pub, AttrMap priv,
                           CK_OBJECT_HANDLE* hpub, CK_OBJECT_HANDLE* hpriv) {
  Session& s = session(h);
  const Mechanism& mech = mechanism(m.mechanism);
  require(mech.generate != nullptr, CKR_MECHANISM_INVALID);
  default_ulong(pub, CKA_CLASS, CKO_PUBLIC_KEY);
  default_ulong(priv, CKA_CLASS, CKO_PRIVATE_KEY);
  default_ulong(pub, CKA_KEY_TYPE, mech.key_type);
  default_ulong(priv, CKA_KEY_TYPE, mech.key_type);
  KeyPair pair{complete_template(std::move(pub), Mode::kGenerate),
               complete_template(std::move(priv), Mode::kGenerate)};
  check_writable(s, pair.pub);
  check_writable(s, pair.priv);
  mech.generate(m, pair);
  Secret& pub_id = pair.pub[CKA_ID];
  Secret& priv_id = pair.priv[CKA_ID];
  if (pub_id.empty() && priv_id.empty()) {
    Bytes id = default_id(pair.pub);
    pub_id = priv_id = Secret(id.begin(), id.end());
  } else if (pub_id.empty()) {
    pub_id = priv_id;
  } else if (priv_id.empty()) {
    priv_id = pub_id;
  }
  set_origin(pair.pub, true, m.mechanism);
  set_origin(pair.priv, true, m.mechanism);
  *hpub = store_object(s, std::move(pair.pub));
  try {
    *hpriv = store_object(s, std::move(pair.priv));
  } catch (...) {
    destroy_object(h, *hpub);  // all or nothing
    throw;
  }
}

}  // namespace tk
