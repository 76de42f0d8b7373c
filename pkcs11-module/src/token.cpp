#include "token.h"
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "attributes.h"
#include "crypto.h"
#include "error.h"

namespace tk {
namespace {

constexpr int kMaxFails = 10;
constexpr size_t kSalt = 16;
constexpr uint32_t kDefaultIterations = 600000;
constexpr CK_ULONG kMinPin = 4, kMaxPin = 255;

// TOKENKIT_KDF_ITERATIONS lowers the PBKDF2 cost for tests only.
uint32_t iterations() {
  const char* env = std::getenv("TOKENKIT_KDF_ITERATIONS");
  if (env == nullptr) return kDefaultIterations;
  long v = std::strtol(env, nullptr, 10);
  return v >= 1 && v <= 100000000 ? static_cast<uint32_t>(v) : kDefaultIterations;
}

Bytes role_aad(bool so) { return to_bytes(so ? "tokenkit-v1-so" : "tokenkit-v1-user"); }

Bytes attr_aad(int64_t uid, CK_ATTRIBUTE_TYPE type) {
  Bytes aad = to_bytes("tokenkit-v1-attr");
  auto put = [&](uint64_t v) {
    for (int i = 7; i >= 0; --i) aad.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(static_cast<uint64_t>(uid));
  put(type);
  return aad;
}

// iterations(4, big-endian) || salt(16) || AES-GCM(KEK, TK)
Bytes wrap_key(const Secret& key, const Secret& pin, bool so) {
  uint32_t iter = iterations();
  Bytes salt = crypto::random(kSalt);
  Secret kek = crypto::pbkdf2(pin, salt, iter);
  Bytes out = {static_cast<uint8_t>(iter >> 24), static_cast<uint8_t>(iter >> 16),
               static_cast<uint8_t>(iter >> 8), static_cast<uint8_t>(iter)};
  out.insert(out.end(), salt.begin(), salt.end());
  Bytes sealed = crypto::seal(kek, key.data(), key.size(), role_aad(so));
  out.insert(out.end(), sealed.begin(), sealed.end());
  return out;
}

void check_pin_len(const Secret& pin) {
  require(pin.size() >= kMinPin && pin.size() <= kMaxPin, CKR_PIN_LEN_RANGE);
}

// mkdir -p, private to the user.
void make_dirs(const std::string& dir) {
  for (size_t pos = 1; pos != std::string::npos;) {
    pos = dir.find('/', pos + 1);
    ::mkdir(dir.substr(0, pos).c_str(), 0700);
  }
}

bool is_envelope_attr(CK_ATTRIBUTE_TYPE t) {
  return t == CKA_CLASS || t == CKA_TOKEN || t == CKA_PRIVATE;
}

}  // namespace

void pad(CK_UTF8CHAR* dst, size_t n, const std::string& s) {
  std::memset(dst, ' ', n);
  std::memcpy(dst, s.data(), std::min(n, s.size()));
}

Token::Token(CK_SLOT_ID id, std::string path) : id_(id), path_(std::move(path)) { reopen(); }

void Token::reopen() {
  if (store_) return;
  struct stat sb {};
  if (stat(path_.c_str(), &sb) != 0) return;
  try {
    store_ = Store::open(path_);
    broken_ = false;
  } catch (const Error&) {
    broken_ = true;
  }
}

Store& Token::store() {
  require(!broken_, CKR_TOKEN_NOT_RECOGNIZED);
  require(store_ != nullptr, CKR_TOKEN_NOT_RECOGNIZED);
  return *store_;
}

void Token::fill_info(CK_TOKEN_INFO* info) {
  std::memset(info, 0, sizeof *info);
  pad(info->manufacturerID, sizeof info->manufacturerID, "tokenkit");
  pad(info->model, sizeof info->model, "software token");
  info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
  info->ulSessionCount = CK_UNAVAILABLE_INFORMATION;
  info->ulRwSessionCount = CK_UNAVAILABLE_INFORMATION;
  info->ulMaxPinLen = kMaxPin;
  info->ulMinPinLen = kMinPin;
  info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
  info->hardwareVersion = {0, 1};
  info->firmwareVersion = {0, 1};
  info->flags = CKF_RNG | CKF_LOGIN_REQUIRED | CKF_RESTORE_KEY_NOT_NEEDED;
  if (free()) {
    pad(info->label, sizeof info->label, "");
    pad(info->serialNumber, sizeof info->serialNumber, "");
    return;
  }
  TokenRow row = store().token();
  std::memcpy(info->label, row.label.data(), std::min(row.label.size(), sizeof info->label));
  pad(info->serialNumber, sizeof info->serialNumber, row.serial);
  info->flags |= CKF_TOKEN_INITIALIZED;
  if (row.user_wrap) info->flags |= CKF_USER_PIN_INITIALIZED;
  auto pin_flags = [](int fails, CK_FLAGS low, CK_FLAGS final_try, CK_FLAGS locked) {
    if (fails >= kMaxFails) return locked;
    if (fails == kMaxFails - 1) return final_try | low;
    return fails > 0 ? low : CK_FLAGS{0};
  };
  info->flags |= pin_flags(row.user_fails, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY,
                           CKF_USER_PIN_LOCKED);
  info->flags |=
      pin_flags(row.so_fails, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
}

Secret Token::unwrap(const Bytes& wrap, const Secret& pin, bool so) {
  require(wrap.size() > 4 + kSalt, CKR_DEVICE_ERROR);
  uint32_t iter =
      (uint32_t{wrap[0]} << 24) | (uint32_t{wrap[1]} << 16) | (uint32_t{wrap[2]} << 8) | wrap[3];
  // A damaged file must not make a login spin for hours: no cost above what
  // TOKENKIT_KDF_ITERATIONS may set.
  require(iter >= 1 && iter <= 100000000, CKR_DEVICE_ERROR);
  Bytes salt(wrap.begin() + 4, wrap.begin() + 4 + kSalt);
  Bytes sealed(wrap.begin() + 4 + kSalt, wrap.end());
  Secret key;
  if (!crypto::open(crypto::pbkdf2(pin, salt, iter), sealed, role_aad(so), key)) key.clear();
  return key;
}

Secret Token::check_pin(bool so, const Bytes& wrap, const Secret& pin) {
  require(store().begin_attempt(so, kMaxFails), CKR_PIN_LOCKED);
  Secret key = unwrap(wrap, pin, so);
  require(key.size() == 32, CKR_PIN_INCORRECT);
  store().reset_fails(so);
  return key;
}

void Token::login(Role role, const Secret& pin) {
  TokenRow row = store().token();
  bool so = role == Role::kSO;
  if (!so) require(row.user_wrap.has_value(), CKR_USER_PIN_NOT_INITIALIZED);
  key_ = check_pin(so, so ? row.so_wrap : *row.user_wrap, pin);
  role_ = role;
  generation_ = -1;  // private objects become visible
}

void Token::verify_user_pin(const Secret& pin) {
  TokenRow row = store().token();
  require(row.user_wrap.has_value(), CKR_USER_PIN_NOT_INITIALIZED);
  Secret key = check_pin(false, *row.user_wrap, pin);
  require(key == key_, CKR_PIN_INCORRECT);
}

void Token::logout() {
  role_ = Role::kPublic;
  key_.clear();
  key_.shrink_to_fit();
  objects_.clear();  // drops private values and cached EVP_PKEYs
  generation_ = -1;
}

void Token::init_token(const Secret& so_pin, const Bytes& label) {
  check_pin_len(so_pin);
  Secret key(32);
  crypto::random(key.data(), key.size());
  if (free()) {
    make_dirs(path_.substr(0, path_.rfind('/')));
    TokenRow row;
    row.label = label;
    Bytes serial = crypto::random(8);
    static const char* hex = "0123456789abcdef";
    for (uint8_t b : serial) row.serial += {hex[b >> 4], hex[b & 15]};
    row.so_wrap = wrap_key(key, so_pin, true);
    store_ = Store::create(path_, row, profile());
  } else {
    check_pin(true, store().token().so_wrap, so_pin);
    store().reinitialise(label, wrap_key(key, so_pin, true), profile());
  }
  logout();
}

// PKCS#11 3.0 4.13: with CKP_PUBLIC_CERTIFICATES_TOKEN, NSS lists
// certificates without logging in.
StoredObject Token::profile() {
  AttrMap a;
  a[CKA_CLASS] = ulong_value(CKO_PROFILE);
  a[CKA_TOKEN] = bool_value(true);
  a[CKA_PRIVATE] = bool_value(false);
  a[CKA_MODIFIABLE] = bool_value(false);
  a[CKA_COPYABLE] = bool_value(false);
  a[CKA_DESTROYABLE] = bool_value(false);
  a[CKA_LABEL] = Secret();
  a[CKA_PROFILE_ID] = ulong_value(CKP_PUBLIC_CERTIFICATES_TOKEN);
  StoredObject o = head(a);
  for (const auto& [type, value] : a)
    o.attrs.push_back({type, false, Bytes(value.begin(), value.end())});
  return o;
}

void Token::init_pin(const Secret& pin) {
  require(role_ == Role::kSO, CKR_USER_NOT_LOGGED_IN);
  check_pin_len(pin);
  store().set_wrap(false, wrap_key(key_, pin, false));
}

void Token::set_pin(const Secret& old_pin, const Secret& new_pin) {
  bool so = role_ == Role::kSO;
  TokenRow row = store().token();
  if (!so) require(row.user_wrap.has_value(), CKR_USER_PIN_NOT_INITIALIZED);
  check_pin_len(new_pin);
  Secret key = check_pin(so, so ? row.so_wrap : *row.user_wrap, old_pin);
  store().set_wrap(so, wrap_key(key, new_pin, so));
}

StoredObject Token::head(const AttrMap& attrs) {
  Object o;
  o.attrs = attrs;
  StoredObject h;
  h.cls = o.cls();
  h.priv = o.is_private();
  h.ckaid = o.bytes(CKA_ID);
  h.label = o.bytes(CKA_LABEL);
  return h;
}

std::vector<StoredAttr> Token::seal_all(int64_t uid, const AttrMap& attrs) {
  bool priv = Object{attrs, 0, 0, nullptr}.is_private();
  std::vector<StoredAttr> out;
  for (const auto& [type, value] : attrs) {
    bool sealed = (priv && !is_envelope_attr(type)) || is_secret_attr(attrs, type);
    if (!sealed) {
      out.push_back({type, false, Bytes(value.begin(), value.end())});
      continue;
    }
    require(key_.size() == 32, CKR_USER_NOT_LOGGED_IN);
    out.push_back(
        {type, true, crypto::seal(key_, value.data(), value.size(), attr_aad(uid, type))});
  }
  return out;
}

int64_t Token::add(const AttrMap& attrs) {
  int64_t uid = store().insert_object(head(attrs), [&](int64_t u) { return seal_all(u, attrs); });
  generation_ = -1;
  return uid;
}

void Token::update(int64_t uid, const AttrMap& attrs) {
  store().replace_attributes(uid, head(attrs), seal_all(uid, attrs));
  generation_ = -1;
}

void Token::remove(int64_t uid) {
  store().delete_object(uid);
  generation_ = -1;
}

const std::map<int64_t, std::shared_ptr<Object>>& Token::objects() {
  if (store().generation() != generation_) reload();
  return objects_;
}

std::optional<std::vector<int64_t>> Token::candidates(const AttrMap& want) {
  objects();  // current
  for (auto [type, index] : {std::pair{CKA_LABEL, &by_label_}, std::pair{CKA_ID, &by_id_}}) {
    auto it = want.find(type);
    if (it == want.end()) continue;
    std::vector<int64_t> out;
    auto [lo, hi] = index->equal_range(it->second);
    for (auto i = lo; i != hi; ++i) out.push_back(i->second);
    std::sort(out.begin(), out.end());
    return out;
  }
  return std::nullopt;
}

void Token::reload() {
  int64_t gen = store().generation();
  std::map<int64_t, std::shared_ptr<Object>> fresh;
  std::set<int64_t> priv;
  for (auto& so : store().objects()) {
    if (so.priv) priv.insert(so.uid);
    if (so.priv && role_ != Role::kUser) continue;
    auto obj = std::make_shared<Object>();
    obj->uid = so.uid;
    for (auto& a : so.attrs) {
      if (!a.sealed) {
        obj->attrs[a.type] = Secret(a.value.begin(), a.value.end());
        continue;
      }
      if (key_.size() != 32) continue;  // sensitive part of a public object
      Secret plain;
      require(crypto::open(key_, a.value, attr_aad(so.uid, a.type), plain), CKR_DEVICE_ERROR);
      obj->attrs[a.type] = std::move(plain);
    }
    // Keep the ready EVP_PKEY of an unchanged object.
    auto old = objects_.find(so.uid);
    if (old != objects_.end() && old->second->attrs == obj->attrs) obj = old->second;
    fresh[so.uid] = obj;
  }
  objects_ = std::move(fresh);
  private_uids_ = std::move(priv);
  by_label_.clear();
  by_id_.clear();
  for (const auto& [uid, obj] : objects_) {
    if (obj->has(CKA_LABEL)) by_label_.emplace(obj->get(CKA_LABEL), uid);
    if (obj->has(CKA_ID)) by_id_.emplace(obj->get(CKA_ID), uid);
  }
  generation_ = gen;
}

}  // namespace tk
