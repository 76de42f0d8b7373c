#include "audit.h"

#include <unistd.h>

#include <cstring>
#include <ctime>
#include <iterator>
#include <system_error>

#include "error.h"

namespace tk {

AuditLog::AuditLog(std::string path, bool threads)
    : path_(std::move(path)), pid_(static_cast<int64_t>(getpid())), threads_(threads) {}

AuditLog::~AuditLog() {
  try {
    stop();
  } catch (...) {  // nobody to tell: the rows could not be written
  }
}

void AuditLog::record(const Bytes& ckaid, CK_MECHANISM_TYPE mech, const char* op) {
  const auto now = static_cast<int64_t>(std::time(nullptr));
  {
    MutexLock l(mu_);
    if (threads_ && !failed_) {
      // A use like the last one queued (same second, key, mechanism and
      // operation) adds to its count: at thousands of signatures a second
      // the writer has a few rows to write, not one per use.
      if (!queue_.empty()) {
        AuditRow& last = queue_.back();
        if (last.time == now && last.mech == mech && std::strcmp(last.op, op) == 0 &&
            last.ckaid == ckaid) {
          ++last.count;
          return;
        }
      }
      if (queue_.size() < kMaxQueued && start_writer()) {
        if (queue_.empty()) oldest_ = std::chrono::steady_clock::now();
        queue_.push_back(AuditRow{now, ckaid, mech, op, pid_, 1});
        if (queue_.size() == 1 || queue_.size() == kBatch) wake_.notify_one();
        return;
      }
    }
  }
  // Synchronously: no writer thread, a full queue, or the last write failed.
  // This use is kept only if it is written (its own row, last); the others
  // stay queued.
  MutexLock w(write_mu_);
  std::vector<AuditRow> rows;
  {
    MutexLock l(mu_);
    rows.swap(queue_);
  }
  rows.push_back(AuditRow{now, ckaid, mech, op, pid_, 1});
  write(rows, 1);
}

bool AuditLog::start_writer() {
  if (!writer_.joinable()) {
    try {
      writer_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      threads_ = false;  // no thread: write synchronously from now on
    }
  }
  return threads_;
}

void AuditLog::flush() {
  MutexLock w(write_mu_);
  std::vector<AuditRow> rows;
  {
    MutexLock l(mu_);
    rows.swap(queue_);
  }
  if (!rows.empty()) write(rows, 0);
}

void AuditLog::stop() {
  std::thread writer;
  {
    MutexLock l(mu_);
    stop_ = true;
    threads_ = false;
    writer = std::move(writer_);
    wake_.notify_one();
  }
  if (writer.joinable()) writer.join();
  flush();
}

void AuditLog::close() {
  flush();
  MutexLock w(write_mu_);
  store_.reset();
}

bool AuditLog::wait_for_work() {
  MutexLock l(mu_);
  for (;;) {
    if (stop_) return false;
    if (queue_.empty()) {
      wake_.wait(mu_);
      continue;
    }
    // After a failed write, wait the full delay before trying again.
    auto due = oldest_ + kMaxDelay;
    if ((queue_.size() >= kBatch && !failed_) || std::chrono::steady_clock::now() >= due)
      return true;
    wake_.wait_until(mu_, due);
  }
}

void AuditLog::run() {
  while (wait_for_work()) {
    try {
      flush();
    } catch (...) {  // kept queued; record() reports it from now on
    }
  }
}

void AuditLog::write(std::vector<AuditRow>& rows, size_t own) {
  try {
    if (!store_) store_ = std::make_unique<AuditStore>(path_);
    store_->append(rows);
  } catch (...) {
    store_.reset();  // opened afresh for the next try
    MutexLock l(mu_);
    rows.resize(rows.size() - own);
    queue_.insert(queue_.begin(), std::make_move_iterator(rows.begin()),
                  std::make_move_iterator(rows.end()));
    oldest_ = std::chrono::steady_clock::now();
    failed_ = true;
    throw;
  }
  MutexLock l(mu_);
  failed_ = false;
}

}  // namespace tk
