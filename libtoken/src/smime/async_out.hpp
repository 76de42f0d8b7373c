// An output BIO that writes in a thread of its own, so that write(2) (the
// kernel copying a 100 MB message into the page cache) overlaps hashing,
// encryption and base64 instead of following them. The machine has two
// cores and the issue measures wall time; see docs/bench-smime.md.
//
//   BIO* async = BIO_push(new_async_out(), out);
//   ... BIO_write(async, ...) ...
//   if (BIO_flush(async) != 1) ... async_out_error(async) says why
//   BIO_pop(async); BIO_free(async);
//
// Writes are copied into blocks of kAsyncBlock bytes; a full block goes to
// the writer thread, which writes it to the next BIO while the caller fills
// the next one. At most kAsyncBlocks blocks exist (the one being filled and
// those queued or being written): the memory it holds is bounded, and a
// caller that outruns the disk waits for a free block. The thread starts
// with the first full block: an output smaller than a block is written by
// the caller's thread at the flush, as a plain BIO would.
//
// Ordering: bytes reach the next BIO in the order they were written,
// including those passed by async_out_write_ref(). Only one thread at a time
// uses the next BIO: the writer while blocks are queued, the caller's
// thread after a drain (flush, pop, any other ctrl, which are passed down
// once everything queued is written).
//
// Errors: the first failed write (errno, e.g. ENOSPC, EPIPE with SIGPIPE
// ignored, EFBIG) stops the writer; later writes and the flush fail, the
// error is raised on the caller's OpenSSL error queue (ERR_LIB_SYS) and kept
// for async_out_error(). Nothing is written after a failed block.
#pragma once

#include <openssl/bio.h>

#include <cstddef>
#include <functional>
#include <string>

#include "token/error.hpp"

namespace token::smime {

// 128 KiB blocks: write(2) of that size costs no more per byte than larger
// ones here (800 calls for 100 MB), and three of them (384 KiB, the most
// the writer holds) keep it busy while the caller fills the next. 256 KiB
// blocks cost 0.4 MB more peak RSS, for no difference in time measurable
// on the (loaded) machine where this was written.
constexpr std::size_t kAsyncBlock = std::size_t{128} * 1024;
constexpr std::size_t kAsyncBlocks = 3;

// A new asynchronous output filter; push it on the BIO it writes to.
BIO* new_async_out();

// Whether `b` is a BIO made by new_async_out().
bool is_async_out(BIO* b);

// Queues `n` bytes at `p` for writing without copying them: `p` must stay
// valid until `done` has run. `done` runs once the bytes are written (or
// dropped after an error), on the writer thread or, before the thread
// started or after an error, on the caller's. Bytes written before are
// written first; with `n` == 0, `done` runs once they are. False when the
// output has failed.
bool async_out_write_ref(BIO* b, const char* p, std::size_t n, std::function<void()> done);

// Writes everything queued and waits for it, without flushing the next BIO;
// false when the output has failed.
bool async_out_drain(BIO* b);

// Why the output failed ("No space left on device"), or "" if it has not.
std::string async_out_error(BIO* b);

// The largest number of bytes the filter held in its blocks at once (for
// tests of the memory bound).
std::size_t async_out_peak_bytes(BIO* b);

// Whether the writer thread was started (the output was larger than a
// block).
bool async_out_threaded(BIO* b);

// An asynchronous writer pushed on `out` for a scope, popped (its thread
// ended) when the scope ends; drain() and flush() throw Error(Io) naming
// why the output failed.
class AsyncOutput {
 public:
  explicit AsyncOutput(BIO* out);
  ~AsyncOutput();
  AsyncOutput(const AsyncOutput&) = delete;
  AsyncOutput& operator=(const AsyncOutput&) = delete;
  BIO* bio() const { return top_; }
  // Everything written so far is in the BIO below.
  void drain();
  // Drains and flushes the BIO below.
  void flush();

 private:
  [[noreturn]] void fail();
  BIO* top_;
};

}  // namespace token::smime
