// Attribute rules per object class, as data (PKCS#11 v2.40 section 4 tables
// and their footnotes), and the template checks built on them.
#pragma once

#include "object.h"

namespace tk {

enum AttrFlag : unsigned {
  kRequired = 1,     // must be in a C_CreateObject template
  kMaterial = 2,     // key material: required on create, made by C_Generate*
  kReadOnly = 4,     // refused by C_SetAttributeValue
  kComputed = 8,     // set by the token only (footnotes 2 and 4)
  kGenOnly = 16,     // only in a C_Generate* template (CKA_MODULUS_BITS)
  kSensitive = 32,   // unreadable when CKA_SENSITIVE or !CKA_EXTRACTABLE
  kCreateOnly = 64,  // required on create, optional in a generate template
};

enum class Kind { kBool, kUlong, kBytes };

struct AttrRule {
  CK_ATTRIBUTE_TYPE type;
  Kind kind;
  unsigned flags;
  bool has_default;
  CK_ULONG def;  // for kBool/kUlong; kBytes defaults to empty
};

enum class Mode { kCreate, kGenerate };

// The rule for `type` on an object of this class and key type, or nullptr
// when the attribute is not valid for it.
const AttrRule* find_rule(CK_OBJECT_CLASS cls, CK_ULONG subtype, CK_ATTRIBUTE_TYPE type);

// Subtype of a template or object: key type, certificate type or 0.
CK_ULONG subtype_of(const AttrMap& a);

// Parses a C template into a map, checking bool/ulong value sizes.
AttrMap parse_template(const CK_ATTRIBUTE* t, CK_ULONG n);

// Checks a template against the class rules and fills in defaults. Does not
// set computed attributes (see set_origin).
AttrMap complete_template(AttrMap in, Mode mode);

// CKA_LOCAL, CKA_KEY_GEN_MECHANISM, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE.
void set_origin(AttrMap& a, bool generated, CK_MECHANISM_TYPE mech);

// Checks and applies a C_SetAttributeValue template.
void apply_update(AttrMap& a, const AttrMap& changes);

// True when this attribute's value must be sealed at rest.
bool is_secret_attr(const AttrMap& a, CK_ATTRIBUTE_TYPE type);
// True when the caller may not read this attribute (CKR_ATTRIBUTE_SENSITIVE).
bool is_hidden(const AttrMap& a, CK_ATTRIBUTE_TYPE type);

// Checks CKA_VALUE of a secret key (AES: 16, 24 or 32 bytes) against
// CKA_VALUE_LEN if given; returns the CKA_VALUE_LEN value to store.
Secret secret_value_len(const AttrMap& a);

// Does the object match a C_FindObjectsInit template?
bool matches(const AttrMap& a, const AttrMap& want);

}  // namespace tk
