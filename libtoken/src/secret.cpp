#include "token/secret.hpp"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <cstring>
#include <utility>

namespace token {

void wipe(void* p, std::size_t n) noexcept {
  if (p != nullptr && n > 0) OPENSSL_cleanse(p, n);
}

Secret::Secret(std::string_view value) : data_(new char[value.size() + 1]), size_(value.size()) {
  locked_ = mlock(data_, size_ + 1) == 0;
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
  if (locked_) munlock(data_, size_ + 1);
  delete[] data_;
  data_ = nullptr;
  size_ = 0;
  locked_ = false;
}

}  // namespace token
