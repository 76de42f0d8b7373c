#include "token.h"
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <tuple>

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

void put64(Bytes& out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

Bytes attr_aad(int64_t uid, CK_ATTRIBUTE_TYPE type) {
  Bytes aad = to_bytes("tokenkit-v1-attr");
  put64(aad, static_cast<uint64_t>(uid));
  put64(aad, type);
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
  struct stat sb {};
  bool exists = stat(path_.c_str(), &sb) == 0;
  if (store_ && !exists) forget();  // deleted by another process
  if (store_ || !exists) return;
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
  // No object is read here: private ones are decrypted when first needed,
  // so a login costs its KDF, not the size of the token.
  Bytes k = crypto::hmac_sha256(key_, to_bytes("tokenkit-v2-index"));
  index_key_.assign(k.begin(), k.end());
  OPENSSL_cleanse(k.data(), k.size());
  if (role != Role::kUser) return;
  try {
    index_unindexed();
  } catch (const Error&) {
    // The login stands: objects without index MACs are still searched (all
    // of them), and the next login tries again.
  }
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
  index_key_.clear();
  index_key_.shrink_to_fit();
  relock();  // drops clear private values and their EVP_PKEYs
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
  clear_cache();  // every object is new: the next call reads them all
}

void Token::delete_token(const Secret& so_pin) {
  check_pin(true, store().token().so_wrap, so_pin);
  store().destroy();
  forget();
}

void Token::forget() {
  logout();
  store_.reset();
  broken_ = false;
  clear_cache();
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
  if (h.priv) {
    h.ckaid_mac = index_mac(CKA_ID, o.get(CKA_ID));
    h.label_mac = index_mac(CKA_LABEL, o.get(CKA_LABEL));
  }
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

// Our own writes change the cache directly: the store reports what other
// processes wrote before ours (Written::others), which is applied first,
// then our change, and the cache is at the generation our commit made. Our
// change is never read back.
int64_t Token::add(const AttrMap& attrs) {
  if (generation_ < 0) refresh();  // so that the write reads only a delta
  StoredObject h = head(attrs);
  std::vector<StoredAttr> stored;
  Written w = store().insert_object(
      h,
      [&](int64_t u) {
        stored = seal_all(u, attrs);
        return stored;
      },
      generation_);
  after_write(std::move(w.others), w.generation,
              [&] { put(w.uid, written_entry(w.uid, h, attrs, stored), false); });
  return w.uid;
}

void Token::update(int64_t uid, const AttrMap& attrs) {
  if (generation_ < 0) refresh();
  StoredObject h = head(attrs);
  std::vector<StoredAttr> stored = seal_all(uid, attrs);
  Written w = store().replace_attributes(uid, h, stored, generation_);
  after_write(std::move(w.others), w.generation,
              [&] { put(uid, written_entry(uid, h, attrs, stored), false); });
}

void Token::remove(int64_t uid) {
  if (generation_ < 0) refresh();
  Written w = store().delete_object(uid, generation_);
  after_write(std::move(w.others), w.generation, [&] { drop(uid); });
}

void Token::after_write(Changes others, int64_t produced, const std::function<void()>& own) {
  try {
    apply(std::move(others));
    own();
    generation_ = produced;
  } catch (...) {
    generation_ = -1;  // the write is done; the cache is read again whole
    throw;
  }
}

// The entry of an object this process has just written: its clear values
// are here already, so it is open (when it has sealed ones) without a
// decryption.
Token::Entry Token::written_entry(int64_t uid, const StoredObject& h, const AttrMap& attrs,
                                  const std::vector<StoredAttr>& stored) {
  Entry e;
  e.priv = h.priv;
  e.ckaid_mac = h.ckaid_mac;
  e.label_mac = h.label_mac;
  for (const auto& a : stored)
    if (a.sealed) e.sealed.push_back(a);
  e.obj = std::make_shared<Object>();
  e.obj->uid = uid;
  e.obj->attrs = attrs;
  e.open = !e.sealed.empty();
  return e;
}

// HMAC-SHA256(index key, type (8 bytes, big-endian) || value): equal
// values give equal MACs, and nothing about a value without the token key.
Bytes Token::index_mac(CK_ATTRIBUTE_TYPE type, const Secret& value) const {
  require(index_key_.size() == 32, CKR_USER_NOT_LOGGED_IN);
  Bytes data;
  put64(data, type);
  data.insert(data.end(), value.begin(), value.end());
  Bytes mac = crypto::hmac_sha256(index_key_, data);
  OPENSSL_cleanse(data.data(), data.size());
  return mac;
}

void Token::refresh() {
  if (generation_ >= 0 && store().generation() == generation_) return;
  apply(store().changes(generation_));
}

std::shared_ptr<Object> Token::object(int64_t uid) {
  refresh();
  auto it = entries_.find(uid);
  require(it != entries_.end(), CKR_OBJECT_HANDLE_INVALID);
  require(!it->second.priv || role_ == Role::kUser, CKR_USER_NOT_LOGGED_IN);
  return opened(uid, it->second);
}

std::vector<int64_t> Token::find(const AttrMap& want) {
  refresh();
  bool user = role_ == Role::kUser;
  std::vector<int64_t> few;
  bool indexed = false;
  for (auto [type, clear, macs] : {std::tuple{CKA_LABEL, &by_label_, &by_label_mac_},
                                   std::tuple{CKA_ID, &by_id_, &by_id_mac_}}) {
    auto it = want.find(type);
    if (it == want.end()) continue;
    indexed = true;
    auto [lo, hi] = clear->equal_range(it->second);
    for (auto i = lo; i != hi; ++i) few.push_back(i->second);
    if (user) {
      auto [mlo, mhi] = macs->equal_range(index_mac(type, it->second));
      for (auto i = mlo; i != mhi; ++i) few.push_back(i->second);
      few.insert(few.end(), unindexed_.begin(), unindexed_.end());
    }
    std::sort(few.begin(), few.end());
    few.erase(std::unique(few.begin(), few.end()), few.end());
    break;
  }
  std::vector<int64_t> out;
  auto consider = [&](int64_t uid, Entry& e) {
    if ((!e.priv || user) && entry_matches(uid, e, want)) out.push_back(uid);
  };
  if (indexed) {
    for (int64_t uid : few) consider(uid, entries_.at(uid));
  } else {
    for (auto& [uid, e] : entries_) consider(uid, e);
  }
  return out;
}

// Decrypts only when `want` asks for a sealed value, and only after the
// clear attributes matched.
bool Token::entry_matches(int64_t uid, Entry& e, const AttrMap& want) {
  if (!e.open && !e.sealed.empty() && key_.size() == 32) {
    bool needs_sealed = false;
    for (const auto& [type, value] : want) {
      bool sealed = std::any_of(e.sealed.begin(), e.sealed.end(),
                                [t = type](const StoredAttr& a) { return a.type == t; });
      if (sealed) {
        needs_sealed = true;
        continue;
      }
      auto it = e.obj->attrs.find(type);
      if (it == e.obj->attrs.end() || it->second != value) return false;
    }
    if (needs_sealed) opened(uid, e);
  }
  return matches(e.obj->attrs, want);
}

std::shared_ptr<Object> Token::opened(int64_t uid, Entry& e) {
  if (e.open || e.sealed.empty() || key_.size() != 32) return e.obj;
  auto obj = std::make_shared<Object>();
  obj->uid = uid;
  obj->attrs = e.obj->attrs;
  for (const auto& a : e.sealed) {
    Secret plain;
    require(crypto::open(key_, a.value, attr_aad(uid, a.type), plain), CKR_DEVICE_ERROR);
    obj->attrs[a.type] = std::move(plain);
  }
  // A new object, not a change to the old one: a holder of the locked one
  // (an operation, another thread) never sees it change under it.
  e.obj = std::move(obj);
  e.open = true;
  opened_.insert(uid);
  return e.obj;
}

void Token::relock() {
  for (int64_t uid : opened_) {
    auto it = entries_.find(uid);
    if (it == entries_.end() || !it->second.open) continue;
    Entry& e = it->second;
    auto obj = std::make_shared<Object>();
    obj->uid = uid;
    obj->attrs = e.obj->attrs;
    for (const auto& a : e.sealed) obj->attrs.erase(a.type);
    e.obj = std::move(obj);  // the clear values are wiped with the last holder
    e.open = false;
  }
  opened_.clear();
}

void Token::index_unindexed() {
  refresh();
  if (unindexed_.empty()) return;
  std::vector<StoredObject> heads;
  for (int64_t uid : unindexed_) {
    const Entry& e = entries_.at(uid);
    StoredObject h;
    h.uid = uid;
    Secret id, label;
    bool ok = true;
    for (const auto& a : e.sealed) {
      if (a.type != CKA_ID && a.type != CKA_LABEL) continue;
      ok = ok && crypto::open(key_, a.value, attr_aad(uid, a.type), a.type == CKA_ID ? id : label);
    }
    if (!ok) continue;  // damaged: stays unindexed, reported when used
    h.ckaid_mac = index_mac(CKA_ID, id);
    h.label_mac = index_mac(CKA_LABEL, label);
    heads.push_back(std::move(h));
  }
  store().set_index_macs(heads);  // if this fails, nothing below changes
  for (auto& h : heads) {
    Entry& e = entries_.at(h.uid);
    e.ckaid_mac = std::move(h.ckaid_mac);
    e.label_mac = std::move(h.label_mac);
    unindexed_.erase(h.uid);
    index(h.uid, e);
  }
}

namespace {

template <class K>
void erase_pair(std::multimap<K, int64_t>& m, const K& key, int64_t uid) {
  auto [lo, hi] = m.equal_range(key);
  for (auto i = lo; i != hi;) i = i->second == uid ? m.erase(i) : std::next(i);
}

}  // namespace

void Token::unindex(int64_t uid, const Entry& e) {
  const AttrMap& a = e.obj->attrs;
  if (!e.priv) {
    if (auto it = a.find(CKA_LABEL); it != a.end()) erase_pair(by_label_, it->second, uid);
    if (auto it = a.find(CKA_ID); it != a.end()) erase_pair(by_id_, it->second, uid);
  } else if (e.ckaid_mac.empty() || e.label_mac.empty()) {
    unindexed_.erase(uid);
  } else {
    erase_pair(by_label_mac_, e.label_mac, uid);
    erase_pair(by_id_mac_, e.ckaid_mac, uid);
  }
}

void Token::index(int64_t uid, const Entry& e) {
  const AttrMap& a = e.obj->attrs;
  if (!e.priv) {
    if (auto it = a.find(CKA_LABEL); it != a.end()) by_label_.emplace(it->second, uid);
    if (auto it = a.find(CKA_ID); it != a.end()) by_id_.emplace(it->second, uid);
  } else if (e.ckaid_mac.empty() || e.label_mac.empty()) {
    unindexed_.insert(uid);
  } else {
    by_label_mac_.emplace(e.label_mac, uid);
    by_id_mac_.emplace(e.ckaid_mac, uid);
  }
}

namespace {

bool same_sealed(const std::vector<StoredAttr>& a, const std::vector<StoredAttr>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), [](const auto& x, const auto& y) {
    return x.type == y.type && x.value == y.value;
  });
}

// True when `fresh` (just read, locked) is what `old` holds: then `old` is
// kept with its clear values and its ready EVP_PKEY.
template <class E>
bool unchanged(const E& old, const E& fresh) {
  if (old.priv != fresh.priv || old.ckaid_mac != fresh.ckaid_mac ||
      old.label_mac != fresh.label_mac || !same_sealed(old.sealed, fresh.sealed))
    return false;
  const AttrMap& o = old.obj->attrs;
  const AttrMap& f = fresh.obj->attrs;
  size_t sealed_in_old = 0;
  if (old.open) sealed_in_old = old.sealed.size();
  if (o.size() != f.size() + sealed_in_old) return false;
  return std::all_of(f.begin(), f.end(), [&](const auto& kv) {
    auto it = o.find(kv.first);
    return it != o.end() && it->second == kv.second;
  });
}

}  // namespace

Token::Entry Token::stored_entry(StoredObject&& so) {
  Entry e;
  e.priv = so.priv;
  e.ckaid_mac = std::move(so.ckaid_mac);
  e.label_mac = std::move(so.label_mac);
  e.obj = std::make_shared<Object>();
  e.obj->uid = so.uid;
  for (auto& a : so.attrs) {
    if (a.sealed) {
      e.sealed.push_back(std::move(a));
    } else {
      e.obj->attrs[a.type] = Secret(a.value.begin(), a.value.end());
    }
  }
  return e;
}

// Puts `e` in the cache in place of what it holds for `uid`; with
// `keep_unchanged`, an entry that holds exactly what `e` (just read,
// locked) does stays, with its clear values and its ready EVP_PKEY.
void Token::put(int64_t uid, Entry e, bool keep_unchanged) {
  auto it = entries_.find(uid);
  if (it != entries_.end()) {
    if (keep_unchanged && unchanged(it->second, e)) return;
    unindex(uid, it->second);
    it->second = std::move(e);
  } else {
    it = entries_.emplace(uid, std::move(e)).first;
  }
  if (it->second.open) {
    opened_.insert(uid);
  } else {
    opened_.erase(uid);
  }
  index(uid, it->second);
}

void Token::drop(int64_t uid) {
  auto it = entries_.find(uid);
  if (it == entries_.end()) return;
  unindex(uid, it->second);
  opened_.erase(uid);
  entries_.erase(it);
}

void Token::clear_cache() {
  entries_.clear();
  opened_.clear();
  by_label_.clear();
  by_id_.clear();
  by_label_mac_.clear();
  by_id_mac_.clear();
  unindexed_.clear();
  generation_ = -1;
}

// Brings the cache to `c.generation`: a full read replaces it (keeping the
// entries that did not change), a delta touches only what it names, so
// every other entry, its clear values and its handle stay as they are.
void Token::apply(Changes c) {
  if (c.full) {
    std::map<int64_t, Entry> old;
    old.swap(entries_);
    clear_cache();
    for (auto& so : c.changed) {
      int64_t uid = so.uid;
      Entry e = stored_entry(std::move(so));
      auto it = old.find(uid);
      if (it != old.end() && unchanged(it->second, e)) e = std::move(it->second);
      put(uid, std::move(e), false);
    }
  } else {
    for (int64_t uid : c.deleted) drop(uid);
    for (auto& so : c.changed) {
      int64_t uid = so.uid;
      put(uid, stored_entry(std::move(so)), true);
    }
  }
  generation_ = c.generation;
}

}  // namespace tk
