// The reference for tokenkit's base64 decoder (libtoken/src/smime/base64.hpp):
// the decoder tokenkit had before it, over OpenSSL's EVP_DecodeBlock, applied
// to the whole input at once. Lines end at LF; each line's trailing CR,
// space and tab are dropped; the text up to the first '=' is kept and its
// last quantum completed with '='; EVP_DecodeBlock decodes the rest and
// fails for anything outside the alphabet, and the bytes the padding stands
// for are dropped. Header-only, for the unit tests and the fuzz target.
#pragma once

#include <openssl/evp.h>

#include <optional>
#include <string>
#include <string_view>

namespace token::smime::testing {

inline std::optional<std::string> reference_decode(std::string_view in) {
  std::string quads;
  std::size_t pos = 0;
  while (pos < in.size()) {
    const std::size_t nl = in.find('\n', pos);
    const std::size_t stop = nl == std::string_view::npos ? in.size() : nl;
    std::size_t last = stop;
    while (last > pos && (in[last - 1] == '\r' || in[last - 1] == ' ' || in[last - 1] == '\t')) {
      --last;
    }
    const std::string_view line = in.substr(pos, last - pos);
    if (const std::size_t eq = line.find('='); eq != std::string_view::npos) {
      quads.append(line.substr(0, eq));
      while (quads.size() % 4 != 0) quads += '=';
      break;
    }
    quads.append(line);
    pos = stop + 1;
  }
  if (quads.size() % 4 != 0) return std::nullopt;
  if (quads.empty()) return std::string();
  const std::size_t n = quads.size();
  std::size_t pad = 0;
  if (quads[n - 1] == '=') pad = quads[n - 2] == '=' ? 2 : 1;
  std::string out(n / 4 * 3, '\0');
  const int k =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(quads.data()), static_cast<int>(n));
  if (k < 0 || static_cast<std::size_t>(k) != n / 4 * 3) return std::nullopt;
  out.resize(out.size() - pad);
  return out;
}

}  // namespace token::smime::testing
