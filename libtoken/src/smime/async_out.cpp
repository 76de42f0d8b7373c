#include "async_out.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace token::smime {

namespace {

// One piece of output: a block of our own, or bytes of the caller's.
struct Block {
  std::vector<char> own;  // a kAsyncBlock buffer, or empty for a reference
  const char* ref = nullptr;
  std::size_t len = 0;
  std::function<void()> done;
  const char* data() const { return own.empty() ? ref : own.data(); }
};

// Writes a block below; 0 or the errno of the failure.
int write_block(BIO* next, const char* p, std::size_t n) {
  while (n > 0) {
    errno = 0;
    const int w = BIO_write(next, p, static_cast<int>(std::min<std::size_t>(n, 1 << 30)));
    if (w <= 0) return errno != 0 ? errno : EIO;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

class AsyncOut {
 public:
  AsyncOut() = default;
  AsyncOut(const AsyncOut&) = delete;
  AsyncOut& operator=(const AsyncOut&) = delete;
  ~AsyncOut() { stop(); }

  // The caller's side ---------------------------------------------------

  bool write(BIO* b, const char* p, std::size_t n) {
    if (failed()) return false;
    while (n > 0) {
      if (fill_.empty() && !take_buffer()) return false;
      const std::size_t k = std::min(n, kAsyncBlock - fill_len_);
      std::memcpy(fill_.data() + fill_len_, p, k);
      fill_len_ += k;
      p += k;
      n -= k;
      if (fill_len_ == kAsyncBlock && !submit_fill(b)) return false;
    }
    return true;
  }

  bool write_ref(BIO* b, const char* p, std::size_t n, std::function<void()> done) {
    bool ok = !failed() && (fill_len_ == 0 || submit_fill(b));
    // What was not queued comes back here, to run now (`done` itself is
    // moved from once queued, and a moved-from std::function is unspecified).
    std::function<void()> back;
    if (ok) {  // also with n == 0: `done` then runs in order
      Block blk;
      blk.ref = p;
      blk.len = n;
      blk.done = std::move(done);
      ok = enqueue(b, std::move(blk), &back);
    } else {
      back = std::move(done);
    }
    if (back) back();  // not queued: nothing refers to `p` any more
    return ok;
  }

  // Everything written so far reaches the next BIO.
  bool drain(BIO* b) {
    if (thread_.joinable()) {
      if (fill_len_ > 0 && !submit_fill(b)) return false;
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
    } else if (fill_len_ > 0) {
      // Small output: no thread, written here as a plain BIO would.
      BIO* next = BIO_next(b);
      const int err = next == nullptr ? EBADF : write_block(next, fill_.data(), fill_len_);
      fill_len_ = 0;
      if (err != 0) {
        std::lock_guard lk(mu_);
        if (error_ == 0) error_ = err;
      }
    }
    return !failed();
  }

  // Drains, then ends the writer thread: the next BIO is the caller's again.
  void stop() {
    if (!thread_.joinable()) return;
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return queue_.empty() && !busy_; });
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

  std::size_t pending() const {
    std::lock_guard lk(mu_);
    std::size_t n = fill_len_;
    for (const Block& blk : queue_) n += blk.len;
    return n;
  }

  // Whether the output failed; raises the error on this thread's OpenSSL
  // error queue the first time it is seen.
  bool failed() {
    int err = 0;
    {
      std::lock_guard lk(mu_);
      err = error_;
    }
    if (err != 0 && !reported_) {
      ERR_raise_data(ERR_LIB_SYS, err, "writing the output");
      reported_ = true;
    }
    return err != 0;
  }

  std::string error() const {
    std::lock_guard lk(mu_);
    return error_ == 0 ? std::string() : std::string(std::strerror(error_));
  }

  std::size_t peak() const {
    std::lock_guard lk(mu_);
    return buffers_peak_ * kAsyncBlock;
  }
  bool threaded() const { return thread_.joinable(); }

 private:
  // A free buffer to fill; waits for the writer when all kAsyncBlocks exist.
  bool take_buffer() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return !spare_.empty() || buffers_ < kAsyncBlocks || error_ != 0; });
    if (error_ != 0) {
      lk.unlock();
      return !failed();
    }
    if (!spare_.empty()) {
      fill_ = std::move(spare_.back());
      spare_.pop_back();
    } else {
      ++buffers_;
      buffers_peak_ = std::max(buffers_peak_, buffers_);
      lk.unlock();
      fill_.resize(kAsyncBlock);
    }
    fill_len_ = 0;
    return true;
  }

  bool submit_fill(BIO* b) {
    Block blk;
    blk.len = fill_len_;
    blk.own = std::move(fill_);
    fill_.clear();
    fill_len_ = 0;
    return enqueue(b, std::move(blk), nullptr);
  }

  // Hands a block to the writer (started here the first time); waits while
  // kAsyncBlocks - 1 are queued or being written. `done_back` receives the
  // block's callback when it was not queued.
  bool enqueue(BIO* b, Block blk, std::function<void()>* done_back) {
    if (!thread_.joinable() && !start(b)) {
      // No thread (none could be started): written here.
      BIO* next = BIO_next(b);
      const int err = next == nullptr ? EBADF : write_block(next, blk.data(), blk.len);
      std::lock_guard lk(mu_);
      if (!blk.own.empty()) spare_.push_back(std::move(blk.own));
      if (err != 0 && error_ == 0) error_ = err;
      if (done_back != nullptr) *done_back = std::move(blk.done);
      cv_.notify_all();
      return error_ == 0;
    }
    {
      std::unique_lock lk(mu_);
      cv_.wait(lk, [&] { return queue_.size() + (busy_ ? 1 : 0) + 1 < kAsyncBlocks; });
      queue_.push_back(std::move(blk));
    }
    cv_.notify_all();
    return true;
  }

  bool start(BIO* b) {
    next_ = BIO_next(b);
    if (next_ == nullptr) return false;
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      return false;
    }
    return true;
  }

  // The writer's side ----------------------------------------------------

  void run() {
    std::unique_lock lk(mu_);
    for (;;) {
      cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) break;
      Block blk = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      const bool skip = error_ != 0;  // nothing is written after a failure
      lk.unlock();
      const int err = skip ? 0 : write_block(next_, blk.data(), blk.len);
      if (blk.done) blk.done();
      lk.lock();
      if (err != 0 && error_ == 0) error_ = err;
      if (!blk.own.empty()) spare_.push_back(std::move(blk.own));
      busy_ = false;
      cv_.notify_all();
    }
    lk.unlock();
    // The BIO below may have left errors on this thread's queue; the
    // caller's thread reports the errno instead.
    ERR_clear_error();
    OPENSSL_thread_stop();
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  // Guarded by mu_:
  std::deque<Block> queue_;
  std::vector<std::vector<char>> spare_;  // written blocks, for reuse
  std::size_t buffers_ = 0;               // blocks allocated
  std::size_t buffers_peak_ = 0;
  bool busy_ = false;  // the writer holds a block
  bool stop_ = false;
  int error_ = 0;  // errno of the first failed write
  // The caller's thread only:
  std::vector<char> fill_;
  std::size_t fill_len_ = 0;
  bool reported_ = false;
  std::thread thread_;
  BIO* next_ = nullptr;  // set before the thread starts, read by it
};

AsyncOut* state(BIO* b) { return static_cast<AsyncOut*>(BIO_get_data(b)); }

int write_async(BIO* b, const char* data, int len) {
  AsyncOut* s = state(b);
  if (s == nullptr || len < 0) return -1;
  if (len == 0) return 0;
  return s->write(b, data, static_cast<std::size_t>(len)) ? len : -1;
}

int puts_async(BIO* b, const char* str) {
  return write_async(b, str, static_cast<int>(std::strlen(str)));
}

long ctrl_async(BIO* b, int cmd, long num, void* ptr) {
  AsyncOut* s = state(b);
  BIO* next = BIO_next(b);
  if (s == nullptr) return 0;
  switch (cmd) {
    case BIO_CTRL_PUSH:
      return 1;
    case BIO_CTRL_POP:
      (void)s->drain(b);
      s->stop();
      return 1;
    case BIO_CTRL_WPENDING:
      return static_cast<long>(s->pending()) + (next != nullptr ? BIO_wpending(next) : 0);
    case BIO_CTRL_FLUSH:
      if (!s->drain(b)) return 0;
      return next == nullptr ? 1 : BIO_ctrl(next, cmd, num, ptr);
    default:
      // Anything else (tell, seek, get_fp, ...) sees the output as written.
      if (!s->drain(b)) return 0;
      return next == nullptr ? 0 : BIO_ctrl(next, cmd, num, ptr);
  }
}

int create_async(BIO* b) {
  BIO_set_data(b, new AsyncOut);
  BIO_set_init(b, 1);
  return 1;
}

int destroy_async(BIO* b) {
  AsyncOut* s = state(b);
  if (s != nullptr) {
    (void)s->drain(b);
    delete s;
  }
  BIO_set_data(b, nullptr);
  return 1;
}

const int kAsyncType = BIO_get_new_index() | BIO_TYPE_FILTER;

BIO_METHOD* async_method() {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(kAsyncType, "tokenkit async out");
    BIO_meth_set_write(bm, write_async);
    BIO_meth_set_puts(bm, puts_async);
    BIO_meth_set_ctrl(bm, ctrl_async);
    BIO_meth_set_create(bm, create_async);
    BIO_meth_set_destroy(bm, destroy_async);
    return bm;
  }();
  return m;
}

}  // namespace

BIO* new_async_out() { return BIO_new(async_method()); }

bool is_async_out(BIO* b) { return b != nullptr && BIO_method_type(b) == kAsyncType; }

bool async_out_write_ref(BIO* b, const char* p, std::size_t n, std::function<void()> done) {
  AsyncOut* s = is_async_out(b) ? state(b) : nullptr;
  if (s == nullptr) {
    if (done) done();
    return false;
  }
  return s->write_ref(b, p, n, std::move(done));
}

bool async_out_drain(BIO* b) {
  AsyncOut* s = is_async_out(b) ? state(b) : nullptr;
  return s != nullptr && s->drain(b);
}

std::string async_out_error(BIO* b) {
  AsyncOut* s = is_async_out(b) ? state(b) : nullptr;
  return s == nullptr ? std::string() : s->error();
}

std::size_t async_out_peak_bytes(BIO* b) {
  AsyncOut* s = is_async_out(b) ? state(b) : nullptr;
  return s == nullptr ? 0 : s->peak();
}

bool async_out_threaded(BIO* b) {
  AsyncOut* s = is_async_out(b) ? state(b) : nullptr;
  return s != nullptr && s->threaded();
}

AsyncOutput::AsyncOutput(BIO* out) : top_(new_async_out()) {
  if (top_ == nullptr) throw Error(ErrorKind::Internal, "cannot make the output writer");
  BIO_push(top_, out);
}

AsyncOutput::~AsyncOutput() {
  BIO_pop(top_);
  BIO_free(top_);
}

void AsyncOutput::drain() {
  if (!async_out_drain(top_)) fail();
}

void AsyncOutput::flush() {
  if (BIO_flush(top_) != 1) fail();
}

void AsyncOutput::fail() {
  const std::string why = async_out_error(top_);
  ERR_clear_error();
  throw Error(ErrorKind::Io, "cannot write the output" + (why.empty() ? "" : ": " + why));
}

}  // namespace token::smime
