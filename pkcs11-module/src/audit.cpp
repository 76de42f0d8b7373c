#include "audit.h"

#include <unistd.h>

#include <ctime>
#include <iterator>
#include <system_error>

#include "error.h"

namespace tk {

AuditLog::AuditLog(std::string path, bool threads) : path_(std::move(path)), threads_(threads) {}

AuditLog::~AuditLog() {
  try {
    stop();
  } catch (...) {  // nobody to tell: the rows could not be written
  }
}

void AuditLog::record(const Bytes& ckaid, CK_MECHANISM_TYPE mech, const char* op) {
  AuditRow row{static_cast<int64_t>(std::time(nullptr)), ckaid, mech, op,
               static_cast<int64_t>(getpid())};
  {
    MutexLock l(mu_);
    if (threads_ && !failed_ && queue_.size() < kMaxQueued) {
      if (!writer_.joinable()) {
        try {
          writer_ = std::thread([this] { run(); });
        } catch (const std::system_error&) {
          threads_ = false;  // no thread: write synchronously from now on
        }
      }
      if (threads_) {
        if (queue_.empty()) oldest_ = std::chrono::steady_clock::now();
        queue_.push_back(std::move(row));
        if (queue_.size() == 1 || queue_.size() == kBatch) wake_.notify_one();
        return;
      }
    }
  }
  // Synchronously: no writer thread, a full queue, or the last write failed.
  // This row is kept only if it is written; the others stay queued.
  MutexLock w(write_mu_);
  std::vector<AuditRow> rows;
  {
    MutexLock l(mu_);
    rows.swap(queue_);
  }
  rows.push_back(std::move(row));
  write(rows, 1);
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
