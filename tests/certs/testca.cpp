#include "testca.hpp"

#include <algorithm>
#include <filesystem>

#include "process.hpp"
#include "tokens.hpp"

namespace tokenkit::test {

TestCa::TestCa(const std::string& dir, const std::string& tag) : dir_(dir) {
  std::filesystem::create_directories(dir + "/newcerts");
  write_file(dir + "/index.txt", "");
  write_file(dir + "/serial", "1000\n");
  cnf_ = dir + "/ca.cnf";
  write_file(cnf_,
             "[ca]\ndefault_ca = tk\n[tk]\ndir = " + dir +
                 "\ndatabase = $dir/index.txt\nnew_certs_dir = $dir/newcerts\n"
                 "certificate = $dir/ca.pem\nprivate_key = $dir/ca.key\nserial = $dir/serial\n"
                 "default_md = sha256\npolicy = any\nunique_subject = no\nemail_in_dn = yes\n"
                 "[any]\ncommonName = supplied\nemailAddress = optional\n");
  cert_ = dir + "/ca.pem";
  run_ok({"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/ca.key",
          "-out", cert_, "-days", "9000", "-subj", "/CN=Test Mail CA " + tag, "-addext",
          "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"});
}

Issued TestCa::issue(const CertSpec& s) {
  Issued i{dir_ + "/" + s.name + ".pem", dir_ + "/" + s.name + ".der",
           dir_ + "/" + s.name + ".key"};
  const std::string csr = dir_ + "/" + s.name + ".csr";
  std::string subj = "/CN=" + s.name;
  if (!s.subject_email.empty()) subj += "/emailAddress=" + s.subject_email;
  if (s.key == "ec") {
    run_ok({"openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out",
            i.key});
  } else {
    run_ok({"openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out",
            i.key});
  }
  run_ok({"openssl", "req", "-new", "-key", i.key, "-subj", subj, "-out", csr});
  std::string ext = "[e]\nbasicConstraints = CA:FALSE\n";
  std::string san;
  for (const auto& e : s.emails) san += (san.empty() ? "" : ",") + std::string("email:") + e;
  if (!s.extra_san.empty()) san += (san.empty() ? "" : ",") + s.extra_san;
  if (!san.empty()) ext += "subjectAltName = " + san + "\n";
  if (!s.key_usage.empty()) ext += "keyUsage = " + s.key_usage + "\n";
  if (!s.ext_key_usage.empty()) ext += "extendedKeyUsage = " + s.ext_key_usage + "\n";
  write_file(dir_ + "/" + s.name + ".ext", ext);
  run_ok({"openssl", "ca", "-batch", "-config", cnf_, "-in", csr, "-out", i.pem, "-notext",
          "-startdate", s.start, "-enddate", s.end, "-extfile", dir_ + "/" + s.name + ".ext",
          "-extensions", "e"});
  run_ok({"openssl", "x509", "-in", i.pem, "-outform", "DER", "-out", i.der});
  return i;
}

std::string openssl_fingerprint(const std::string& pem) {
  std::string out = run_ok({"openssl", "x509", "-in", pem, "-noout", "-fingerprint", "-sha256"});
  std::string fp = out.substr(out.find('=') + 1);
  std::string r;
  for (char c : fp) {
    if (std::isxdigit(static_cast<unsigned char>(c))) r += static_cast<char>(std::tolower(c));
  }
  return r;
}

}  // namespace tokenkit::test
