// token::certs::judge_values: what turns a directory's attribute values
// (userCertificate;binary, userSMIMECertificate) into checked certificates.
// Input: one byte choosing the address, then values framed as a 2-byte
// big-endian length and the bytes. Invariants: no crash or leak; accepted
// certificates have no problems, carry the address and come newest first;
// rejected ones say why; every value is read, refused or counted as skipped.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "token/certcheck.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  static const char* kEmails[] = {"alice@example.org", "leaf@example.com", "bob@example.org"};
  const std::string email = kEmails[data[0] % 3];
  std::vector<std::string_view> values;
  std::size_t i = 1;
  while (i + 2 <= size) {
    const std::size_t n = (std::size_t{data[i]} << 8) | data[i + 1];
    i += 2;
    const std::size_t take = n < size - i ? n : size - i;
    values.emplace_back(reinterpret_cast<const char*>(data + i), take);
    i += take;
  }
  token::certs::ValueLimits limits;
  limits.max_values = 8;
  limits.max_value_bytes = 16 * 1024;
  limits.max_certs_per_value = 4;
  // A fixed "now" (2026-01-01): the same input always gives the same verdict.
  const std::time_t now = 1767225600;
  const auto j = token::certs::judge_values(values, email, now, nullptr, limits);
  FUZZ_CHECK(j.values_skipped == (values.size() > 8 ? values.size() - 8 : 0));
  FUZZ_CHECK(j.unreadable.size() <= values.size());
  FUZZ_CHECK(j.accepted.size() + j.rejected.size() <= 8 * 4);
  for (std::size_t k = 0; k < j.accepted.size(); ++k) {
    const auto& a = j.accepted[k];
    FUZZ_CHECK(a.problems.empty());
    const auto emails = token::certs::emails(a.cert.get());
    bool has = false;
    for (const auto& e : emails) has = has || e == email;
    FUZZ_CHECK(has);
    if (k > 0) {
      FUZZ_CHECK(token::certs::not_before(j.accepted[k - 1].cert.get()) >=
                 token::certs::not_before(a.cert.get()));
    }
  }
  for (const auto& r : j.rejected) FUZZ_CHECK(!r.problems.empty());
  return 0;
}
