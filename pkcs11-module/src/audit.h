// The key-access record of one token, written in batches: a use of a
// private or secret key queues a row in memory (or adds to the count of the
// last queued row, when it is a use of the same second, key, mechanism and
// operation), and a writer thread appends the queued rows to the store's
// audit table in one transaction, at most kMaxDelay after the oldest was
// queued or as soon as kBatch are waiting.
// What a crash can lose is written down in docs/store-format.md.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "mutex.h"
#include "store.h"

namespace tk {

class AuditLog {
 public:
  // How long a row may wait in memory, and how many may: past kBatch the
  // writer is woken at once; at kMaxQueued (the writer cannot keep up, the
  // store is locked by another process) record() writes them itself.
  static constexpr std::chrono::milliseconds kMaxDelay{100};
  static constexpr size_t kBatch = 256;
  static constexpr size_t kMaxQueued = 4096;

  // `threads`: whether the module may start a thread (not when the
  // application passed CKF_LIBRARY_CANT_CREATE_OS_THREADS). Without one,
  // every row is written before record() returns.
  AuditLog(std::string path, bool threads);
  // Stops the writer and writes what is queued.
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  // Records one use of the key with CKA_ID `ckaid`, now, by this process.
  // CKR_DEVICE_ERROR when the record cannot be kept: rows could not be
  // written (the store is gone or locked too long) and none may be queued
  // until they are; the caller must then not release the key's result.
  void record(const Bytes& ckaid, CK_MECHANISM_TYPE mech, const char* op) TK_EXCLUDES(mu_);
  // Writes every queued row now (C_Logout, C_CloseSession, process exit).
  // CKR_DEVICE_ERROR if that fails; the rows stay queued for the next try.
  void flush() TK_EXCLUDES(mu_, write_mu_);
  // Stops the writer thread for good (flushing first): for C_Finalize and
  // for the module's unloading, after which no code of ours may run in it.
  // Rows recorded afterwards are written synchronously.
  void stop() TK_EXCLUDES(mu_, write_mu_);
  // Writes what is queued and closes the connection, so that the next row
  // opens the file again (a token initialised anew is a new file).
  void close() TK_EXCLUDES(mu_, write_mu_);

  // fork(): the parent holds write_mu_ across it, so that no thread of ours
  // is inside SQLite when the child is made (pthread_atfork).
  void lock_for_fork() TK_ACQUIRE(write_mu_) { write_mu_.lock(); }
  void unlock_after_fork() TK_RELEASE(write_mu_) { write_mu_.unlock(); }

 private:
  void run() TK_EXCLUDES(mu_, write_mu_);
  bool wait_for_work() TK_EXCLUDES(mu_);
  // Starts the writer thread if it is not running; false when there is
  // none and cannot be (rows are then written synchronously).
  bool start_writer() TK_REQUIRES(mu_);
  // Appends `rows` (taken from the queue) to the store. On failure puts them
  // back at the front of the queue, but for the last `own` (the caller's,
  // not kept), and throws.
  void write(std::vector<AuditRow>& rows, size_t own) TK_REQUIRES(write_mu_) TK_EXCLUDES(mu_);

  const std::string path_;
  // This process: an AuditLog is made by C_Initialize, and a forked child
  // makes its own (entry_general.cpp), so this is asked once, not per use.
  const int64_t pid_;
  Mutex write_mu_;  // one writer of the connection at a time
  std::unique_ptr<AuditStore> store_ TK_GUARDED_BY(write_mu_);
  Mutex mu_;  // the queue
  CondVar wake_;
  std::vector<AuditRow> queue_ TK_GUARDED_BY(mu_);
  std::chrono::steady_clock::time_point oldest_ TK_GUARDED_BY(mu_);
  bool threads_ TK_GUARDED_BY(mu_);
  bool failed_ TK_GUARDED_BY(mu_) = false;  // the last write failed
  bool stop_ TK_GUARDED_BY(mu_) = false;
  std::thread writer_ TK_GUARDED_BY(mu_);
};

}  // namespace tk
