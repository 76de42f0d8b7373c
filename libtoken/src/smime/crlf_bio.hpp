// Filter BIOs and copy loops for S/MIME output. They sit on every byte of
// a 100 MB message, so they work on large blocks: one memchr per line, one
// BIO call per block, never one per line or per byte.
#pragma once

#include <openssl/bio.h>
#include <openssl/cms.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace token::smime {

// A new filter BIO that turns every bare LF into CRLF; push it on the
// output (BIO_push(filter, out)).
BIO* new_crlf_filter();

// RFC 8551 section 3.1.1 canonical form, exactly as OpenSSL's
// SMIME_crlf_copy() makes it (so that `openssl cms -verify`, which
// canonicalises again, sees the same bytes): every line ends in CRLF, the
// CRs before a line's LF are dropped, and so are CRs at the end of the
// input and at the end of each 1023-byte piece of a longer line (where
// OpenSSL's 1024-byte line buffer splits it). Other CRs are content.
class Canonicalizer {
 public:
  // Appends the canonical form of `n` more bytes to `out`.
  void feed(const char* p, std::size_t n, std::string& out);
  // The end of the input: CRs held back are dropped.
  void finish() { held_cr_ = 0; }
  // For a block that scan_block() found canonical: when its canonical form
  // is the block itself (no CR held from the block before, a line end in
  // it), takes it in as feed() would and returns true; else false, and the
  // caller feed()s it (canonical_scan.cpp).
  bool pass_through(const char* p, std::size_t n);

 private:
  static constexpr std::size_t kPiece = 1023;
  std::size_t piece_pos_ = 0;  // bytes of the current piece seen so far
  std::size_t held_cr_ = 0;    // CRs seen but not yet written
};

// Reads `in` to its end and writes it to `out` in large blocks, in the
// canonical form above unless `binary`. Throws Error(Io) when `out` fails.
// With `stop_at_eight_bit`, returns false (having written only 7-bit
// blocks) at the first block with a byte over 127; else returns true.
bool copy_canonical(BIO* in, BIO* out, bool binary, bool stop_at_eight_bit = false);

// One pass over a block (16 bytes at a time): whether a byte has its top
// bit set, and whether it is canonical as it is: every CR followed by an LF
// and every LF preceded by a CR, within the block (so it does not begin
// with an LF nor end with a CR).
struct BlockScan {
  bool eight_bit = false;
  bool canonical = false;
};
BlockScan scan_block(const char* p, std::size_t n);

// Whether a byte of `p` has its top bit set (eight bytes at a time).
bool has_eight_bit(const char* p, std::size_t n);

// Writes all `n` bytes at `p` to `out`, in as many BIO_write calls as it
// takes; false when `out` fails (OpenSSL's error queue may say why).
bool write_fully(BIO* out, const void* p, std::size_t n);

// Writes all of `s` to `out`; throws Error(Io) when it cannot.
void write_all(BIO* out, std::string_view s);

// A new write-only filter BIO that base64-encodes what is written through
// it (RFC 2045 section 6.8) in 76-character lines ended by CRLF, encoding
// large blocks at a time (base64.hpp). BIO_flush() writes the last, short
// line and flushes the BIO below; push it on the output.
BIO* new_base64_filter();

// A new read-only filter BIO that decodes the base64 read from the BIO
// below it (RFC 2045 section 6.8; exactly what base64::Decoder accepts):
// line ends and a line's trailing blanks are skipped, blocks of 64 KiB are
// decoded at a time, and decoding ends at the padding or the end of the
// input. A character outside the alphabet makes BIO_read fail (nothing of
// the block it is in is given out), and the BIO's BIO_CTRL_EOF answer is
// then -1.
BIO* new_base64_decoder();

// The rest of a regular file read through a FILE BIO (from its current
// position), mapped into memory: its bytes are not copied by the kernel on
// each pass. Read it through bio(), or scan it with scan(); either gives the
// pages it has passed back as it goes, so that the process's memory stays
// flat. Null when `in` is anything else (a pipe, a terminal, a memory BIO)
// or the file is over 1 GiB; the caller then reads `in` itself. The file
// must not shrink while it is mapped.
class MappedInput {
 public:
  static std::unique_ptr<MappedInput> map(BIO* in);
  // The regular file open as `fd` from offset `pos` on (the same limits).
  static std::unique_ptr<MappedInput> map_fd(int fd, long pos);
  ~MappedInput();
  MappedInput(const MappedInput&) = delete;
  MappedInput& operator=(const MappedInput&) = delete;
  // A source BIO (read, gets) over the mapping, from its start; owned.
  BIO* bio() const { return bio_; }
  // Whether any byte of the mapping has its top bit set.
  bool any_eight_bit();

  // For the BIO: the bytes from `pos` on; release() gives back the pages
  // before `pos`.
  const char* data() const { return static_cast<const char*>(addr_) + skip_; }
  std::size_t size() const { return size_; }
  std::size_t pos = 0;
  void release(std::size_t upto);
  // The mapping is read again from its start (after a first pass that
  // gave its pages back): release() gives them back anew.
  void reread() { released_ = 0; }

 private:
  MappedInput() = default;
  void* addr_ = nullptr;
  std::size_t length_ = 0;    // of the mapping
  std::size_t skip_ = 0;      // from the mapping's page-aligned start to the position
  std::size_t size_ = 0;      // bytes from the position to the file's end
  std::size_t released_ = 0;  // mapping bytes given back
  BIO* bio_ = nullptr;
};

// Reads a byte of each page of `p`, so that the kernel maps them (a
// writer thread does it ahead of the thread that hashes a mapping).
void touch_pages(const char* p, std::size_t n);

// Pops and frees the filters of `chain` above `bottom` (CMS's digest or
// cipher BIOs over our output); `bottom` stays.
void free_filters(BIO* chain, BIO* bottom);

// Writes `cms` as an application/pkcs7-mime entity (RFC 8551 section 3.2)
// of `smime_type` to `out`, in base64, with the content read from `content`
// streamed into it (canonicalised unless `binary`). Returns false when
// OpenSSL fails (its error queue says why); throws Error(Io). `der_filter`,
// when given, is a filter BIO the DER passes through before base64 (the
// X25519 recipient rewriter); it is freed here.
bool write_pkcs7_mime(BIO* out, CMS_ContentInfo* cms, const char* smime_type, BIO* content,
                      bool binary, BIO* der_filter = nullptr);

}  // namespace token::smime
