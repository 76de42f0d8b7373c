// token::Secret keeps a secret out of swap (mlock) and wipes it when dropped.
#include <gtest/gtest.h>

#include <unistd.h>

#include <fstream>
#include <string>

#include "token/secret.hpp"

namespace {

// The sanitizers' runtimes intercept mlock() and make it a no-op that
// reports success, so what is locked can only be seen without them.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kMlockIntercepted = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr bool kMlockIntercepted = true;
#else
constexpr bool kMlockIntercepted = false;
#endif
#else
constexpr bool kMlockIntercepted = false;
#endif

// VmLck of this process, in kB (/proc/self/status).
long locked_kb() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmLck:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

TEST(Secret, IsLockedInMemory) {
  if (kMlockIntercepted) GTEST_SKIP() << "mlock() is a no-op under sanitizers";
  const long before = locked_kb();
  ASSERT_GE(before, 0) << "no VmLck in /proc/self/status";
  token::Secret s("hygiene-secret-7731");
  EXPECT_TRUE(s.locked()) << "mlock failed: RLIMIT_MEMLOCK too small?";
  EXPECT_GT(locked_kb(), before) << "Secret::locked() says true but no page is locked";
  EXPECT_EQ(s.view(), "hygiene-secret-7731");
}

TEST(Secret, MovedSecretStaysLockedAndTheSourceIsEmpty) {
  token::Secret a("hygiene-move-1");
  token::Secret b(std::move(a));
  EXPECT_TRUE(b.locked());
  // Checking the moved-from state is the point here.
  EXPECT_TRUE(a.empty());    // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_FALSE(a.locked());  // NOLINT(bugprone-use-after-move,clang-analyzer-cplusplus.Move)
  EXPECT_EQ(b.view(), "hygiene-move-1");
}

// Memory locks do not nest (mlock(2): "Memory locks do not stack"): dropping
// one Secret must not unlock the page another live Secret is on.
// (Found by the checks branch: Secret munlock()ed its own bytes, which
// unlocked the page of every other live Secret on it; libtoken now counts
// locks per page, secret.cpp.)
TEST(Secret, DroppingOneSecretKeepsAnotherLocked) {
  if (kMlockIntercepted) GTEST_SKIP() << "mlock() is a no-op under sanitizers";
  const long before = locked_kb();
  token::Secret keep("hygiene-keep-1111");
  {
    token::Secret drop("hygiene-drop-2222");
    ASSERT_TRUE(keep.locked());
    ASSERT_TRUE(drop.locked());
  }
  EXPECT_TRUE(keep.locked());
  EXPECT_GT(locked_kb(), before) << "the page holding a live Secret was unlocked when another "
                                    "Secret on the same page was dropped";
}

}  // namespace
