// Output files that appear whole or not at all.
#pragma once

#include <openssl/bio.h>

#include <memory>
#include <optional>
#include <string>

namespace tokenkit {

struct BioCloser {
  void operator()(BIO* b) const { BIO_free_all(b); }
};

// A file written under a temporary name beside its target and renamed onto
// it by commit(); removed if the command fails first. Without a target, a
// temporary file that commit() copies to stdout (so that verify never lets
// unverified content out).
class Output {
 public:
  explicit Output(const std::optional<std::string>& target);
  ~Output();
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  BIO* bio() const { return bio_.get(); }
  void commit();

 private:
  std::string where() const { return target_ ? *target_ : "standard output"; }
  std::optional<std::string> target_;
  std::string tmp_;
  std::unique_ptr<BIO, BioCloser> bio_;
};

}  // namespace tokenkit
