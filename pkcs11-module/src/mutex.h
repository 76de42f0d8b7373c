// A mutex clang's -Wthread-safety can reason about (the house build turns
// the warning on for clang): state behind the module lock is only reached
// through functions that require it.
#pragma once

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
#define TK_REQUIRES(...) TK_TSA(requires_capability(__VA_ARGS__))
#define TK_GUARDED_BY(x) TK_TSA(guarded_by(x))
#define TK_NO_THREAD_SAFETY_ANALYSIS TK_TSA(no_thread_safety_analysis)

namespace tk {

class TK_CAPABILITY("mutex") Mutex {
 public:
  void lock() TK_ACQUIRE() { m_.lock(); }
  void unlock() TK_RELEASE() { m_.unlock(); }

 private:
  std::mutex m_;
};

class TK_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& m) TK_ACQUIRE(m) : m_(m) { m_.lock(); }
  ~MutexLock() TK_RELEASE() { m_.unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex& m_;
};

}  // namespace tk
