// A mutex clang's -Wthread-safety can reason about (the house build turns
// the warning on for clang): state behind the module lock is only reached
// through functions that require it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>

#if defined(__clang__)
#define TK_TSA(x) __attribute__((x))
#else
#define TK_TSA(x)
#endif
#define TK_CAPABILITY(name) TK_TSA(capability(name))
#define TK_SCOPED_CAPABILITY TK_TSA(scoped_lockable)
#define TK_ACQUIRE(...) TK_TSA(acquire_capability(__VA_ARGS__))
#define TK_RELEASE(...) TK_TSA(release_capability(__VA_ARGS__))
#define TK_TRY_ACQUIRE(...) TK_TSA(try_acquire_capability(__VA_ARGS__))
#define TK_REQUIRES(...) TK_TSA(requires_capability(__VA_ARGS__))
#define TK_EXCLUDES(...) TK_TSA(locks_excluded(__VA_ARGS__))
#define TK_GUARDED_BY(x) TK_TSA(guarded_by(x))
#define TK_NO_THREAD_SAFETY_ANALYSIS TK_TSA(no_thread_safety_analysis)

namespace tk {

class TK_CAPABILITY("mutex") Mutex {
 public:
  // The locks of the signing path (the module lock for a key lookup, a
  // token's audit queue) are held for well under a microsecond: a thread
  // that finds one taken tries again for about as long before it sleeps
  // (as glibc's adaptive mutexes do), so that two signing threads taking
  // turns do not each pay a futex sleep and wake-up, which cost more than
  // the wait.
  void lock() TK_ACQUIRE() {
    for (int i = 0; i < kSpins; ++i) {
      if (m_.try_lock()) return;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    m_.lock();
  }
  void unlock() TK_RELEASE() { m_.unlock(); }
  bool try_lock() TK_TRY_ACQUIRE(true) { return m_.try_lock(); }

 private:
  friend class CondVar;
  static constexpr int kSpins = 64;
  std::mutex m_;
};

// A condition variable waited on with a held Mutex (released while waiting,
// held again on return, as std::condition_variable does).
class CondVar {
 public:
  void wait(Mutex& m) TK_REQUIRES(m) {
    std::unique_lock<std::mutex> l(m.m_, std::adopt_lock);
    cv_.wait(l);
    l.release();
  }
  void wait_until(Mutex& m, std::chrono::steady_clock::time_point t) TK_REQUIRES(m) {
    std::unique_lock<std::mutex> l(m.m_, std::adopt_lock);
    cv_.wait_until(l, t);
    l.release();
  }
  void notify_one() { cv_.notify_one(); }

 private:
  std::condition_variable cv_;
};

class TK_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) TK_ACQUIRE(m) : m_(m) { m_.lock(); }
  // Takes over a lock already held (after a successful try_lock).
  MutexLock(Mutex& m, std::adopt_lock_t) TK_REQUIRES(m) : m_(m) {}
  ~MutexLock() TK_RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace tk
