// The asynchronous output writer (libtoken/src/smime/async_out.hpp) on its
// own, and `tokenkit smime sign|encrypt` of messages large enough to start
// its thread, with outputs that fail: a file over RLIMIT_FSIZE, /dev/full,
// a pipe closed early. Labelled "threads": scripts/checks/20-tsan.sh runs
// these under ThreadSanitizer.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/err.h>

#include <atomic>
#include <cerrno>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "process.hpp"
#include "smime/async_out.hpp"
#include "smime/crlf_bio.hpp"
#include "tokens.hpp"

using namespace tokenkit::test;
namespace sm = token::smime;

namespace {

// A sink BIO that takes at most `max_write` bytes per call and fails with
// `fail_errno` once `fail_after` bytes have been taken, as a full disk does.
struct Sink {
  std::string data;
  std::size_t max_write = 1 << 30;
  std::size_t fail_after = static_cast<std::size_t>(-1);
  int fail_errno = ENOSPC;
  int calls = 0;
  std::size_t flushes = 0;
};

int sink_write(BIO* b, const char* p, int len) {
  auto* s = static_cast<Sink*>(BIO_get_data(b));
  ++s->calls;
  if (s->data.size() >= s->fail_after) {
    errno = s->fail_errno;
    return -1;
  }
  std::size_t n =
      std::min({static_cast<std::size_t>(len), s->max_write, s->fail_after - s->data.size()});
  s->data.append(p, n);
  return static_cast<int>(n);
}

long sink_ctrl(BIO* b, int cmd, long, void*) {
  auto* s = static_cast<Sink*>(BIO_get_data(b));
  if (cmd == BIO_CTRL_FLUSH) {
    ++s->flushes;
    return 1;
  }
  if (cmd == BIO_C_FILE_TELL) return static_cast<long>(s->data.size());
  return 0;
}

BIO* new_sink(Sink& s) {
  static BIO_METHOD* m = [] {
    BIO_METHOD* bm = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "test sink");
    BIO_meth_set_write(bm, sink_write);
    BIO_meth_set_ctrl(bm, sink_ctrl);
    return bm;
  }();
  BIO* b = BIO_new(m);
  BIO_set_data(b, &s);
  BIO_set_init(b, 1);
  return b;
}

std::string random_bytes(std::size_t n, std::mt19937& rng) {
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng());
  return s;
}

// Writes `pieces` through an asynchronous writer on `sink`, every third one
// by reference if `refs`; returns what the writer says about itself.
struct Outcome {
  bool writes_ok = true;
  bool flushed = false;
  bool threaded = false;
  std::size_t peak = 0;
  std::string error;
  int refs_done = 0;
};

Outcome write_through(Sink& sink, const std::vector<std::string>& pieces, bool refs = true) {
  BIO* out = new_sink(sink);
  BIO* async = BIO_push(sm::new_async_out(), out);
  Outcome o;
  std::atomic<int> done{0};
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    const std::string& p = pieces[i];
    if (refs && i % 3 == 2) {
      o.writes_ok =
          sm::async_out_write_ref(async, p.data(), p.size(), [&done] { ++done; }) && o.writes_ok;
    } else {
      o.writes_ok =
          BIO_write(async, p.data(), static_cast<int>(p.size())) == static_cast<int>(p.size()) &&
          o.writes_ok;
    }
  }
  o.flushed = BIO_flush(async) == 1;
  o.threaded = sm::async_out_threaded(async);
  o.peak = sm::async_out_peak_bytes(async);
  o.error = sm::async_out_error(async);
  BIO_pop(async);
  BIO_free(async);
  BIO_free(out);
  o.refs_done = done.load();
  return o;
}

TEST(AsyncOut, KeepsTheOrderOfCopiedAndReferencedWrites) {
  std::mt19937 rng(5);
  std::vector<std::string> pieces;
  std::string expected;
  for (int i = 0; i < 60; ++i) {
    // From a byte to more than two blocks.
    const std::size_t n = i % 7 == 0 ? 1 + rng() % 16 : 1 + rng() % (2 * sm::kAsyncBlock + 999);
    pieces.push_back(random_bytes(n, rng));
    expected += pieces.back();
  }
  Sink sink;
  const Outcome o = write_through(sink, pieces);
  EXPECT_TRUE(o.writes_ok);
  EXPECT_TRUE(o.flushed);
  EXPECT_TRUE(o.threaded) << "an output of many blocks is written by the writer thread";
  EXPECT_EQ(o.error, "");
  EXPECT_EQ(o.refs_done, 20);
  ASSERT_EQ(sink.data.size(), expected.size());
  EXPECT_TRUE(sink.data == expected) << "bytes out of order";
  EXPECT_GE(sink.flushes, 1U) << "the flush reaches the BIO below";
  EXPECT_LE(o.peak, sm::kAsyncBlocks * sm::kAsyncBlock) << "memory is bounded";
  EXPECT_GT(o.peak, 0U);
}

TEST(AsyncOut, ShortWritesBelowAreCompleted) {
  std::mt19937 rng(7);
  std::vector<std::string> pieces;
  std::string expected;
  for (int i = 0; i < 12; ++i) {
    pieces.push_back(random_bytes(1 + rng() % sm::kAsyncBlock, rng));
    expected += pieces.back();
  }
  Sink sink;
  sink.max_write = 1000;  // as a pipe or a signal-interrupted write may do
  const Outcome o = write_through(sink, pieces);
  EXPECT_TRUE(o.writes_ok && o.flushed);
  EXPECT_TRUE(sink.data == expected);
  EXPECT_GT(sink.calls, static_cast<int>(expected.size() / 1000));
}

TEST(AsyncOut, SmallOutputIsWrittenWithoutAThread) {
  Sink sink;
  const Outcome o = write_through(sink, {"MIME-Version: 1.0\r\n", "\r\n", "hello\r\n"}, false);
  EXPECT_TRUE(o.writes_ok && o.flushed);
  EXPECT_FALSE(o.threaded);
  EXPECT_EQ(sink.data, "MIME-Version: 1.0\r\n\r\nhello\r\n");
}

TEST(AsyncOut, NothingIsWrittenUntilTheFlushOfASmallOutput) {
  Sink sink;
  BIO* out = new_sink(sink);
  BIO* async = BIO_push(sm::new_async_out(), out);
  ASSERT_EQ(BIO_write(async, "abc", 3), 3);
  EXPECT_EQ(BIO_wpending(async), 3);
  EXPECT_EQ(sink.data, "");
  // Any other control first writes what is queued: the position is right.
  EXPECT_EQ(BIO_tell(async), 3);
  EXPECT_EQ(sink.data, "abc");
  BIO_free_all(async);
}

TEST(AsyncOut, AFailedWriteInTheWriterThreadFailsTheCaller) {
  std::mt19937 rng(9);
  std::vector<std::string> pieces;
  for (int i = 0; i < 40; ++i) pieces.push_back(random_bytes(sm::kAsyncBlock / 3, rng));
  Sink sink;
  sink.fail_after = 3 * sm::kAsyncBlock + 17;  // in the middle of the fourth block
  sink.fail_errno = ENOSPC;
  ERR_clear_error();
  const Outcome o = write_through(sink, pieces);
  EXPECT_FALSE(o.writes_ok && o.flushed) << "the failure reaches the caller";
  EXPECT_FALSE(o.flushed);
  EXPECT_EQ(o.error, "No space left on device");
  EXPECT_EQ(o.refs_done, 13) << "every referenced piece is released, written or not";
  EXPECT_EQ(sink.data.size(), sink.fail_after) << "nothing is written after the failure";
  // The caller's thread has the error on its OpenSSL queue.
  const unsigned long e = ERR_peek_last_error();
  EXPECT_EQ(ERR_GET_LIB(e), ERR_LIB_SYS);
  EXPECT_EQ(ERR_GET_REASON(e), ENOSPC);
  ERR_clear_error();
}

TEST(AsyncOut, AFailureOfASmallOutputShowsAtTheFlush) {
  Sink sink;
  sink.fail_after = 0;
  sink.fail_errno = EPIPE;
  const Outcome o = write_through(sink, {"short"});
  EXPECT_TRUE(o.writes_ok) << "nothing was written yet";
  EXPECT_FALSE(o.flushed);
  EXPECT_EQ(o.error, "Broken pipe");
  ERR_clear_error();
}

// Sign's fast path (sign.cpp, write_detached_mapped): a block that
// scan_block() finds canonical and pass_through() takes is written as it
// is; the result must be what feed() makes of the same bytes, whatever the
// block boundaries (a CRLF split between blocks, lines longer than
// OpenSSL's 1023-byte pieces, bare LFs, lone and doubled CRs).
TEST(CanonicalFastPath, GivesWhatFeedGives) {
  std::mt19937 rng(11);
  int total_passed = 0;
  for (int round = 0; round < 200; ++round) {
    std::string in;
    const int lines = 50 + static_cast<int>(rng() % 400);
    for (int i = 0; i < lines; ++i) {
      const std::size_t len = rng() % 50 == 0 ? 900 + rng() % 2300 : rng() % 90;
      for (std::size_t k = 0; k < len; ++k) in += static_cast<char>('a' + rng() % 26);
      const unsigned e = rng() % (round % 2 == 0 ? 400 : 12);
      in += e == 0 ? "\n" : e == 1 ? "\r\r\n" : e == 2 ? "\r" : e == 3 ? "\r\n\n" : "\r\n";
    }
    if (rng() % 3 == 0) in += "tail without a line end";
    if (rng() % 4 == 0) in += "\r";
    sm::Canonicalizer slow;
    std::string want;
    slow.feed(in.data(), in.size(), want);
    slow.finish();
    sm::Canonicalizer fast;
    std::string got;
    int passed = 0;
    for (std::size_t pos = 0; pos < in.size();) {
      const std::size_t k = std::min<std::size_t>(in.size() - pos, 1 + rng() % 3000);
      const char* p = in.data() + pos;
      const sm::BlockScan scan = sm::scan_block(p, k);
      EXPECT_FALSE(scan.eight_bit);
      if (scan.canonical && fast.pass_through(p, k)) {
        got.append(p, k);
        ++passed;
      } else {
        fast.feed(p, k, got);
      }
      pos += k;
    }
    fast.finish();
    ASSERT_TRUE(got == want) << "round " << round;
    total_passed += passed;
  }
  EXPECT_GT(total_passed, 1000) << "the fast path was taken";
}

TEST(CanonicalFastPath, ScanFindsEightBitBytesAndNonCanonicalEnds) {
  std::string block(100, 'a');
  block += "\r\n";
  EXPECT_TRUE(sm::scan_block(block.data(), block.size()).canonical);
  EXPECT_FALSE(sm::scan_block(block.data(), block.size()).eight_bit);
  for (std::size_t at : {0UL, 15UL, 16UL, 17UL, 99UL}) {
    std::string b = block;
    b[at] = static_cast<char>(0xe9);
    EXPECT_TRUE(sm::scan_block(b.data(), b.size()).eight_bit) << at;
    b = block;
    b[at] = '\n';
    EXPECT_FALSE(sm::scan_block(b.data(), b.size()).canonical) << "bare LF at " << at;
    b = block;
    b[at] = '\r';
    EXPECT_FALSE(sm::scan_block(b.data(), b.size()).canonical) << "lone CR at " << at;
  }
  EXPECT_FALSE(sm::scan_block("\nabc\r\n", 6).canonical) << "an LF whose CR is in the block before";
  EXPECT_FALSE(sm::scan_block("abc\r", 4).canonical) << "a CR whose LF is in the next block";
}

// tokenkit itself, with a message of a few blocks -----------------------------

class AsyncOutCommand : public ::testing::Test {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) GTEST_FAIL() << "stopped after an unexpected wrong PIN";
    // SoftHSM2: under ThreadSanitizer (scripts/checks/20-tsan.sh) tokenkit's
    // own module is instrumented too, and the pkcs11-tool that fills the
    // token cannot load it.
    token_ = std::make_unique<FreshToken>("softhsm2");
    token_->write_rsa();
    dir_ = token_->dir();
    write_file(path("pin"), std::string(kUserPin) + "\n");
    // About 3 MB: several of the writer's blocks. Lines of base64 text with
    // CRLF ends (as mail has), plus bare LF lines to canonicalise.
    std::mt19937 rng(3);
    std::string body;
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int line = 0; line < 45000; ++line) {
      for (int i = 0; i < 64; ++i) body += b64[rng() % 64];
      body += line % 1000 == 999 ? "\n" : "\r\n";
    }
    write_file(path("big.eml"),
               "From: Alice <alice@example.org>\r\nContent-Type: text/plain\r\n\r\n" + body);
  }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string key() const { return "pkcs11:token=" + token_->label() + ";id=%01"; }
  // Runs tokenkit through bash with `shell_prefix` before it (a trap, a
  // ulimit) and `shell_suffix` after it (a redirection, a pipe); the exit
  // code is tokenkit's.
  ProcessResult tool_in_shell(const std::vector<std::string>& args, const std::string& prefix,
                              const std::string& suffix) {
    std::string cmd = prefix + " '" + std::string(TOKENKIT_BINARY) + "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " " + suffix + "; exit ${PIPESTATUS[0]}";
    Env env = token_->env();
    env["TOKENKIT_MODULE"] = token_->module();
    ProcessResult r = run({"bash", "-c", cmd}, env);
    if (r.exit_code == 5) note_unexpected_wrong_pin();
    return r;
  }
  std::vector<std::string> sign_args() const {
    return {"smime", "sign", "--key", key(), "--pin-file", path("pin"), "--in", path("big.eml")};
  }
  std::vector<std::string> encrypt_args() const {
    return {"smime", "encrypt", "--recipient", test_keys().rsa_cert_pem, "--in", path("big.eml")};
  }
  void expect_no_output_left(const std::string& target) {
    EXPECT_FALSE(std::filesystem::exists(target)) << target;
    for (const auto& e : std::filesystem::directory_iterator(dir_)) {
      EXPECT_EQ(e.path().filename().string().rfind(".tokenkit-", 0), std::string::npos)
          << "temporary file left behind: " << e.path();
    }
  }

  std::unique_ptr<FreshToken> token_;
  std::string dir_;
};

TEST_F(AsyncOutCommand, BigSignAndEncryptAreReadByOpenssl) {
  auto a = sign_args();
  a.insert(a.end(), {"--out", path("s.eml")});
  auto r = tool_in_shell(a, "", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  run_ok({"openssl", "cms", "-verify", "-CAfile", test_keys().rsa_cert_pem, "-in", path("s.eml"),
          "-out", path("s.content")});
  // openssl hands back the canonical form: CRLF everywhere.
  std::string want = read_file(path("big.eml"));
  for (std::size_t i = 0; (i = want.find('\n', i)) != std::string::npos; i += 2) {
    if (i == 0 || want[i - 1] != '\r') want.insert(i, 1, '\r');
  }
  EXPECT_TRUE(read_file(path("s.content")) == want) << "the signed part is the canonical input";

  auto e = encrypt_args();
  e.insert(e.end(), {"--out", path("e.eml")});
  r = tool_in_shell(e, "", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  run_ok({"openssl", "pkey", "-inform", "DER", "-in", test_keys().rsa_key_der, "-out",
          path("rsa.key")});
  run_ok({"openssl", "cms", "-decrypt", "-inkey", path("rsa.key"), "-in", path("e.eml"), "-out",
          path("e.content")});
  EXPECT_TRUE(read_file(path("e.content")) == want);
}

// verify writes the signed content through the writer too, from a mapped
// file and from a pipe (the body spooled, then mapped); a write error in
// the writer fails it with exit 9 and leaves no output.
TEST_F(AsyncOutCommand, BigVerifyFromAFileAndAPipeAndAWriteError) {
  auto a = sign_args();
  a.insert(a.end(), {"--out", path("s.eml")});
  auto r = tool_in_shell(a, "", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string want = read_file(path("big.eml"));
  for (std::size_t i = 0; (i = want.find('\n', i)) != std::string::npos; i += 2) {
    if (i == 0 || want[i - 1] != '\r') want.insert(i, 1, '\r');
  }
  const std::vector<std::string> verify{"smime", "verify", "--no-system-cas", "--ca-file",
                                        test_keys().rsa_cert_pem};
  auto from_file = verify;
  from_file.insert(from_file.end(), {"--in", path("s.eml"), "--out", path("file.txt")});
  r = tool_in_shell(from_file, "", "");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(read_file(path("file.txt")) == want) << "the signed part, canonical";
  auto from_pipe = verify;
  from_pipe.insert(from_pipe.end(), {"--out", path("pipe.txt")});
  r = tool_in_shell(from_pipe, "", "< <(cat '" + path("s.eml") + "')");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(read_file(path("pipe.txt")) == want);
  auto limited = verify;
  limited.insert(limited.end(), {"--in", path("s.eml"), "--out", path("never.txt")});
  r = tool_in_shell(limited, "trap '' XFSZ; ulimit -f 1024;", "");
  EXPECT_EQ(r.exit_code, 9) << r.err;
  EXPECT_NE(r.err.find("cannot write the signed content: File too large"), std::string::npos)
      << r.err;
  expect_no_output_left(path("never.txt"));
}

// A file size limit (RLIMIT_FSIZE, SIGXFSZ ignored) makes write(2) fail
// with EFBIG in the middle of the message, in the writer thread.
TEST_F(AsyncOutCommand, WriteErrorInTheWriterFailsTheCommandAndLeavesNoFile) {
  for (const bool encrypt : {false, true}) {
    auto a = encrypt ? encrypt_args() : sign_args();
    const std::string target = path(encrypt ? "e.eml" : "s.eml");
    a.insert(a.end(), {"--out", target});
    // 1 MiB in 1024-byte units: the message is three.
    auto r = tool_in_shell(a, "trap '' XFSZ; ulimit -f 1024;", "");
    EXPECT_EQ(r.exit_code, 9) << r.err;
    EXPECT_NE(r.err.find("cannot write the output: File too large"), std::string::npos) << r.err;
    expect_no_output_left(target);
  }
}

TEST_F(AsyncOutCommand, FullDeviceOnStandardOutputFailsTheCommand) {
  for (const bool encrypt : {false, true}) {
    auto r = tool_in_shell(encrypt ? encrypt_args() : sign_args(), "", "> /dev/full");
    EXPECT_EQ(r.exit_code, 9) << r.err;
    EXPECT_NE(r.err.find("cannot write the output: No space left on device"), std::string::npos)
        << r.err;
  }
}

TEST_F(AsyncOutCommand, PipeClosedEarlyFailsTheCommand) {
  for (const bool encrypt : {false, true}) {
    // With SIGPIPE ignored (as some mail programs run their filters), the
    // write fails with EPIPE and tokenkit says so; by default SIGPIPE ends
    // it, as it ends any program writing to a closed pipe.
    auto r = tool_in_shell(encrypt ? encrypt_args() : sign_args(), "trap '' PIPE;",
                           "| head -c 1000 > /dev/null");
    EXPECT_EQ(r.exit_code, 9) << r.err;
    EXPECT_NE(r.err.find("cannot write the output: Broken pipe"), std::string::npos) << r.err;
    r = tool_in_shell(encrypt ? encrypt_args() : sign_args(), "", "| head -c 1000 > /dev/null");
    EXPECT_NE(r.exit_code, 0) << r.err;
  }
}

}  // namespace
