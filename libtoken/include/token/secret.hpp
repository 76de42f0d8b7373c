// Secrets held on the host (PINs, passwords): one buffer, locked in memory
// where the system allows it, wiped when dropped, never copied implicitly.
#pragma once

#include <cstddef>
#include <string_view>

namespace token {

class Secret {
 public:
  Secret() = default;
  explicit Secret(std::string_view value);
  ~Secret();
  Secret(Secret&& other) noexcept;
  Secret& operator=(Secret&& other) noexcept;
  Secret(const Secret&) = delete;
  Secret& operator=(const Secret&) = delete;

  const char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  std::string_view view() const noexcept { return {data_, size_}; }
  // Whether mlock() succeeded (it may not, under RLIMIT_MEMLOCK).
  bool locked() const noexcept { return locked_; }

 private:
  void release() noexcept;
  char* data_ = nullptr;
  std::size_t size_ = 0;
  bool locked_ = false;
};

// Overwrites memory in a way the compiler cannot drop (OPENSSL_cleanse).
void wipe(void* p, std::size_t n) noexcept;

}  // namespace token
