#include "module.h"

#include <dirent.h>

#include <cstdlib>
#include <cstring>

#include "error.h"

namespace tk {

Module::Module(std::string dir, bool threads) : dir_(std::move(dir)), threads_(threads) {
  rescan();
}

// Slots are the `<n>.db` files plus one free slot (the next number) where
// C_InitToken makes a new token. Slot ids are the file numbers, so they stay
// stable when tokens are added.
void Module::rescan() {
  if (DIR* d = opendir(dir_.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name.size() < 4 || name.substr(name.size() - 3) != ".db") continue;
      std::string num = name.substr(0, name.size() - 3);
      if (num.empty() || num.size() > 9 || num.find_first_not_of("0123456789") != std::string::npos)
        continue;
      CK_SLOT_ID id = std::strtoul(num.c_str(), nullptr, 10);
      if (!slots_.count(id)) slots_[id] = std::make_unique<Token>(id, dir_ + "/" + name);
    }
    closedir(d);
  }
  bool have_free = false;
  for (auto& [id, t] : slots_) {
    t->reopen();  // another process may have initialised our free slot
    have_free = have_free || t->free();
  }
  if (!have_free) {
    CK_SLOT_ID id = slots_.empty() ? 0 : slots_.rbegin()->first + 1;
    slots_[id] = std::make_unique<Token>(id, dir_ + "/" + std::to_string(id) + ".db");
  }
}

std::vector<CK_SLOT_ID> Module::slot_list() {
  rescan();
  std::vector<CK_SLOT_ID> ids;
  for (auto& [id, t] : slots_) ids.push_back(id);
  return ids;
}

Token& Module::token(CK_SLOT_ID id) {
  auto it = slots_.find(id);
  require(it != slots_.end(), CKR_SLOT_ID_INVALID);
  return *it->second;
}

void Module::slot_info(CK_SLOT_ID id, CK_SLOT_INFO* info) {
  token(id);
  std::memset(info, 0, sizeof *info);
  pad(info->slotDescription, sizeof info->slotDescription,
      "tokenkit software slot " + std::to_string(id));
  pad(info->manufacturerID, sizeof info->manufacturerID, "tokenkit");
  info->flags = CKF_TOKEN_PRESENT;
  info->hardwareVersion = {0, 1};
  info->firmwareVersion = {0, 1};
}

void Module::token_info(CK_SLOT_ID id, CK_TOKEN_INFO* info) {
  Token& t = token(id);
  require(!t.broken(), CKR_TOKEN_NOT_RECOGNIZED);
  t.fill_info(info);
  CK_ULONG all = 0, rw = 0;
  for (auto& [h, s] : sessions_) {
    if (s->slot != id) continue;
    ++all;
    rw += s->rw ? 1 : 0;
  }
  info->ulSessionCount = all;
  info->ulRwSessionCount = rw;
}

void Module::init_token(CK_SLOT_ID id, const Secret& so_pin, const Bytes& label) {
  Token& t = token(id);
  // 5.5: "If there are sessions open with the token, C_InitToken fails".
  for (auto& [h, s] : sessions_) require(s->slot != id, CKR_SESSION_EXISTS);
  require(!t.broken(), CKR_TOKEN_NOT_RECOGNIZED);
  // Queued key uses belong to the token as it was (re-initialisation
  // deletes them with it), and the next are written to the file as it
  // will be (a new one, for the free slot).
  shared(id)->audit.close();
  t.init_token(so_pin, label);
  forget_handles(id);  // the re-initialisation removed their objects
  rescan();
}

void Module::delete_token(CK_SLOT_ID id, const Secret& so_pin) {
  Token& t = token(id);
  for (auto& [h, s] : sessions_) require(s->slot != id, CKR_SESSION_EXISTS);
  require(!t.broken() && !t.free(), CKR_TOKEN_NOT_RECOGNIZED);
  // Queued key uses go with the token (as for C_InitToken).
  if (auto it = shared_.find(id); it != shared_.end()) it->second->audit.close();
  t.delete_token(so_pin);
  forget_handles(id);
  // Its id goes, as in a process started now; rescan() keeps one free slot.
  shared_.erase(id);
  slots_.erase(id);
  rescan();
}

void Module::forget_handles(CK_SLOT_ID id) {
  for (auto it = handles_.begin(); it != handles_.end();) {
    if (it->second.slot == id) {
      token_handles_.erase({id, it->second.uid});
      session_handles_.erase(it->first);
      it = handles_.erase(it);
    } else {
      ++it;
    }
  }
}

void Module::init_pin(CK_SESSION_HANDLE h, const Secret& pin) {
  Session& s = session(h);
  require(s.rw, CKR_SESSION_READ_ONLY);
  token(s.slot).init_pin(pin);
}

void Module::set_pin(CK_SESSION_HANDLE h, const Secret& old_pin, const Secret& new_pin) {
  Session& s = session(h);
  require(s.rw, CKR_SESSION_READ_ONLY);
  token(s.slot).set_pin(old_pin, new_pin);
}

Session& Module::session(CK_SESSION_HANDLE h) { return *session_ref(h); }

std::shared_ptr<Session> Module::session_ref(CK_SESSION_HANDLE h) {
  auto it = sessions_.find(h);
  require(it != sessions_.end(), CKR_SESSION_HANDLE_INVALID);
  return it->second;
}

bool Module::is_open(const Session& s) const {
  auto it = sessions_.find(s.handle);
  return it != sessions_.end() && it->second.get() == &s;
}

std::shared_ptr<SlotShared> Module::shared(CK_SLOT_ID id) {
  std::shared_ptr<SlotShared>& p = shared_[id];
  if (!p) p = std::make_shared<SlotShared>(token(id).path(), threads_);
  return p;
}

void Module::stop_audit() {
  for (auto& [id, p] : shared_) {
    try {
      p->audit.stop();
    } catch (const Error&) {  // unloading: nobody left to tell
    }
  }
}

void Module::lock_audit_for_fork() TK_NO_THREAD_SAFETY_ANALYSIS {
  for (auto& [id, p] : shared_) p->audit.lock_for_fork();
}

void Module::unlock_audit_after_fork() TK_NO_THREAD_SAFETY_ANALYSIS {
  for (auto& [id, p] : shared_) p->audit.unlock_after_fork();
}

CK_SESSION_HANDLE Module::open_session(CK_SLOT_ID id, CK_FLAGS flags) {
  Token& t = token(id);
  // 5.6: "For legacy reasons, the CKF_SERIAL_SESSION bit MUST always be set".
  require(flags & CKF_SERIAL_SESSION, CKR_SESSION_PARALLEL_NOT_SUPPORTED);
  require(!t.free() && !t.broken(), CKR_TOKEN_NOT_RECOGNIZED);
  bool rw = (flags & CKF_RW_SESSION) != 0;
  require(rw || t.role() != Role::kSO, CKR_SESSION_READ_WRITE_SO_EXISTS);
  CK_SESSION_HANDLE h = next_session_++;
  sessions_.emplace(h, std::make_shared<Session>(h, id, rw, shared(id)));
  return h;
}

void Module::close_session(CK_SESSION_HANDLE h) {
  Session& s = session(h);
  CK_SLOT_ID slot = s.slot;
  for (auto it = handles_.begin(); it != handles_.end();) {
    auto& obj = it->second.session_object;
    if (obj && obj->owner == h) {
      session_handles_.erase(it->first);
      it = handles_.erase(it);
    } else {
      ++it;
    }
  }
  // An operation still running in another thread keeps the session (and
  // its key) alive until it returns.
  sessions_.erase(h);
  flush_quietly(slot);
  // 5.6: when the last session of a token closes, the user is logged out.
  for (auto& [other, rest] : sessions_)
    if (rest->slot == slot) return;
  cancel_ops(slot);
  token(slot).logout();
}

// C_CloseSession and C_Logout write the queued key uses: an application
// that stops there has its record complete. A failure is not theirs to
// report: the rows stay queued, and the next key use reports it.
void Module::flush_quietly(CK_SLOT_ID slot) {
  try {
    shared(slot)->audit.flush();
  } catch (const Error&) {
  }
}

void Module::close_all(CK_SLOT_ID id) {
  token(id);
  std::vector<CK_SESSION_HANDLE> mine;
  for (auto& [h, s] : sessions_)
    if (s->slot == id) mine.push_back(h);
  for (auto h : mine) close_session(h);
  cancel_ops(id);
  token(id).logout();
}

void Module::session_info(CK_SESSION_HANDLE h, CK_SESSION_INFO* info) {
  Session& s = session(h);
  Role r = token(s.slot).role();
  info->slotID = s.slot;
  info->flags = CKF_SERIAL_SESSION | (s.rw ? CKF_RW_SESSION : 0);
  info->ulDeviceError = 0;
  if (r == Role::kSO) {
    info->state = CKS_RW_SO_FUNCTIONS;
  } else if (r == Role::kUser) {
    info->state = s.rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
  } else {
    info->state = s.rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
  }
}

void Module::login(CK_SESSION_HANDLE h, CK_USER_TYPE user, const Secret& pin) {
  Session& s = session(h);
  Token& t = token(s.slot);
  if (user == CKU_CONTEXT_SPECIFIC) {
    context_login(s, t, pin);
    return;
  }
  require(user == CKU_USER || user == CKU_SO, CKR_USER_TYPE_INVALID);
  Role want = user == CKU_SO ? Role::kSO : Role::kUser;
  if (t.role() == want) fail(CKR_USER_ALREADY_LOGGED_IN);
  require(t.role() == Role::kPublic, CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
  if (want == Role::kSO) {
    for (auto& [other, rest] : sessions_)
      require(rest->slot != s.slot || rest->rw, CKR_SESSION_READ_ONLY_EXISTS);
  }
  t.login(want, pin);
}

// 5.6 C_Login with CKU_CONTEXT_SPECIFIC: after C_SignInit or C_DecryptInit
// with a key that has CKA_ALWAYS_AUTHENTICATE, the user gives the PIN again
// for that one operation (4.9). The PIN is checked like any other, failures
// counted; a wrong PIN leaves the operation waiting for its login.
// The session's lock comes before the module lock (module.h): held here,
// it is only tried; a session busy in another thread is one the
// application is using from two threads at once (6.7.7 forbids it).
void Module::context_login(Session& s, Token& t, const Secret& pin) {
  require(t.role() == Role::kUser, CKR_USER_NOT_LOGGED_IN);
  if (!s.mu.try_lock()) fail(CKR_OPERATION_ACTIVE);
  MutexLock busy(s.mu, std::adopt_lock);
  s.drop_stale();
  ActiveOp* waiting = nullptr;
  for (OpKind k : {OpKind::kSign, OpKind::kDecrypt})
    if (s.op(k).op && s.op(k).needs_auth) waiting = &s.op(k);
  require(waiting != nullptr, CKR_OPERATION_NOT_INITIALIZED);
  t.verify_user_pin(pin);
  waiting->needs_auth = false;
}

// Advancing the epoch ends every operation of the token's sessions; those
// not busy in another thread drop theirs (and the key they hold) now, a
// busy one when its call returns (call_session).
void Module::cancel_ops(CK_SLOT_ID slot) {
  shared(slot)->epoch.fetch_add(1);
  for (auto& [h, s] : sessions_) {
    if (s->slot != slot) continue;
    s->find = FindOp{};
    if (!s->mu.try_lock()) continue;
    MutexLock busy(s->mu, std::adopt_lock);
    s->drop_stale();
  }
}

void Module::logout(CK_SESSION_HANDLE h) {
  Session& s = session(h);
  Token& t = token(s.slot);
  require(t.role() != Role::kPublic, CKR_USER_NOT_LOGGED_IN);
  // Operations holding private keys end with the login (5.6 allows either).
  cancel_ops(s.slot);
  flush_quietly(s.slot);
  t.logout();
}

}  // namespace tk
