#include "token/secret.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <map>
#include <mutex>
#include <utility>

namespace token {

namespace {

// Memory locks do not stack (mlock(2): "memory locks do not stack"): one
// munlock unlocks a page however many times it was locked. Small Secrets
// share heap pages, so each page is locked once, counted, and unlocked when
// the last Secret on it goes.
class PageLocks {
 public:
  bool lock(const void* p, std::size_t n) {
    std::lock_guard guard(mutex_);
    const auto [first, last] = pages(p, n);
    for (std::uintptr_t page = first; page <= last; page += page_size_) {
      int& count = counts_[page];
      // NOLINTNEXTLINE(performance-no-int-to-ptr): pages are counted by address
      if (count == 0 && mlock(reinterpret_cast<void*>(page), page_size_) != 0) {
        counts_.erase(page);
        unlock_range(first, page);  // the pages before this one
        return false;
      }
      ++count;
    }
    return true;
  }
  void unlock(const void* p, std::size_t n) {
    std::lock_guard guard(mutex_);
    const auto [first, last] = pages(p, n);
    unlock_range(first, last + page_size_);
  }

 private:
  std::pair<std::uintptr_t, std::uintptr_t> pages(const void* p, std::size_t n) const {
    const auto begin = reinterpret_cast<std::uintptr_t>(p);
    return {begin & ~(page_size_ - 1), (begin + n - 1) & ~(page_size_ - 1)};
  }
  // Pages in [first, end): one lock fewer each.
  void unlock_range(std::uintptr_t first, std::uintptr_t end) {
    for (std::uintptr_t page = first; page < end; page += page_size_) {
      auto it = counts_.find(page);
      if (it == counts_.end()) continue;
      if (--it->second == 0) {
        // NOLINTNEXTLINE(performance-no-int-to-ptr): pages are counted by address
        munlock(reinterpret_cast<void*>(page), page_size_);
        counts_.erase(it);
      }
    }
  }
  const std::uintptr_t page_size_ = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  std::mutex mutex_;
  std::map<std::uintptr_t, int> counts_;  // guarded by mutex_
};

// Never destroyed: Secrets in other static objects may outlive any order.
PageLocks& page_locks() {
  static auto* locks = new PageLocks;
  return *locks;
}

}  // namespace

void wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}

Secret::Secret(std::string_view value) : data_(new char[value.size() + 1]), size_(value.size()) {
  locked_ = page_locks().lock(data_, size_ + 1);
  std::memcpy(data_, value.data(), value.size());
  data_[size_] = '\0';
}

Secret::~Secret() { release(); }

Secret::Secret(Secret&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      locked_(std::exchange(other.locked_, false)) {}

Secret& Secret::operator=(Secret&& other) noexcept {
  if (this != &other) {
    release();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    locked_ = std::exchange(other.locked_, false);
  }
  return *this;
}

void Secret::release() noexcept {
  if (data_ == nullptr) return;
  wipe(data_, size_ + 1);
  if (locked_) page_locks().unlock(data_, size_ + 1);
  delete[] data_;
  data_ = nullptr;
  size_ = 0;
  locked_ = false;
}

}  // namespace token
