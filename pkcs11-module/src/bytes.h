// Byte buffers. Secret holds key material and PINs: its storage is wiped
// (OPENSSL_cleanse) whenever it is released.
#pragma once

#include <openssl/crypto.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace tk {

template <class T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() = default;
  template <class U>
  WipingAllocator(const WipingAllocator<U>&) {}  // NOLINT: allocator rebind
  T* allocate(std::size_t n) { return std::allocator<T>().allocate(n); }
  void deallocate(T* p, std::size_t n) {
    OPENSSL_cleanse(p, n * sizeof(T));
    std::allocator<T>().deallocate(p, n);
  }
  template <class U>
  bool operator==(const WipingAllocator<U>&) const {
    return true;
  }
};

using Bytes = std::vector<uint8_t>;
using Secret = std::vector<uint8_t, WipingAllocator<uint8_t>>;

inline Bytes to_bytes(const void* p, size_t n) {
  auto* b = static_cast<const uint8_t*>(p);
  return n ? Bytes(b, b + n) : Bytes();
}

inline Bytes to_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

}  // namespace tk
