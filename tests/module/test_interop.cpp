// Peers load the module: OpenSC's pkcs11-tool (its own test suite, key
// generation, signing checked by openssl) and NSS (modutil, certutil).
// Label "interop".
#include <pwd.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fixture.h"

namespace tkt {
namespace {

class InteropTest : public TokenTest {
 protected:
  void SetUp() override {
    TokenTest::SetUp();
    // The peers run in other processes; this one keeps out of their way.
    ASSERT_EQ(p11->C_Finalize(nullptr), CKR_OK);
    p11 = nullptr;
    tool = std::string("pkcs11-tool --module ") + TOKENKIT_MODULE_PATH;
    ASSERT_EQ(sh(tool + " --init-token --slot 0 --label interop --so-pin " + kSoPin), 0);
    ASSERT_EQ(
        sh(tool + " --token-label interop --init-pin --so-pin " + kSoPin + " --pin " + kUserPin),
        0);
    user = tool + " --token-label interop --login --pin " + kUserPin;
  }
  int sh(const std::string& cmd) {
    int rc = -1;
    last = run(cmd, &rc);
    return rc;
  }
  std::string tool, user, last;
};

TEST_F(InteropTest, PkcsToolTestSuitePasses) {
  ASSERT_EQ(sh(user + " --keypairgen --key-type rsa:2048 --id 01 --label rsa"), 0) << last;
  ASSERT_EQ(sh(user + " --keypairgen --key-type EC:prime256v1 --id 02 --label ec"), 0) << last;
  ASSERT_EQ(sh(user + " --test"), 0) << last;
  EXPECT_NE(last.find("No errors"), std::string::npos) << last;
  EXPECT_NE(last.find("RSA-PKCS-OAEP"), std::string::npos) << last;
}

TEST_F(InteropTest, PkcsToolTestEcPasses) {
  ASSERT_EQ(sh(user + " --session-rw --test-ec --id 03 --key-type EC:prime256v1"), 0) << last;
  EXPECT_NE(last.find("==> OK"), std::string::npos) << last;
}

// pkcs11-tool forks with the module initialised; the child's C_Initialize
// must work (its exit status is pkcs11-tool's verdict).
TEST_F(InteropTest, PkcsToolTestForkPasses) {
  ASSERT_EQ(sh(user + " --keypairgen --key-type EC:prime256v1 --id 04 --label forked"), 0) << last;
  ASSERT_EQ(sh(user + " --test-fork"), 0) << last;
  EXPECT_NE(last.find("Calling C_Initialize in forked child process"), std::string::npos) << last;
  EXPECT_EQ(last.find("error"), std::string::npos) << last;
}

// Three threads call C_Initialize (CKF_OS_LOCKING_OK), C_GetInfo,
// C_GetSlotList and C_GetTokenInfo at once, one after a pause, on a module
// pkcs11-tool initialised with locking.
TEST_F(InteropTest, PkcsToolTestThreadsWithLockingPasses) {
  ASSERT_EQ(sh(tool + " --use-locking --test-threads ILGISLT0 --test-threads ILGISLT0"
                      " --test-threads ILP1GISLT0SLT0"),
            0)
      << last;
  EXPECT_NE(last.find("test_threads all threads have ended with CKR_OK"), std::string::npos)
      << last;
  for (const char* t : {"Test thread 0 returning rv = 0", "Test thread 1 returning rv = 0",
                        "Test thread 2 returning rv = 0"})
    EXPECT_NE(last.find(t), std::string::npos) << last;
  EXPECT_NE(last.find("token label        : interop"), std::string::npos) << last;
}

// pkcs11-tool sees CKA_ALWAYS_AUTHENTICATE and gives the PIN again with
// C_Login(CKU_CONTEXT_SPECIFIC) before it signs; openssl checks the result.
TEST_F(InteropTest, PkcsToolSignsWithAlwaysAuthenticateKey) {
  std::string d = dir + "/";
  ASSERT_EQ(sh(user + " --keypairgen --key-type rsa:2048 --id 12 --label always --always-auth"), 0)
      << last;
  ASSERT_EQ(sh("printf 'once more with the PIN' > " + d + "data"), 0);
  ASSERT_EQ(sh(user + " --sign -m SHA256-RSA-PKCS --id 12 -i " + d + "data -o " + d + "sig"), 0)
      << last;
  ASSERT_EQ(
      sh(tool + " --token-label interop --read-object --type pubkey --id 12 -o " + d + "pub.der"),
      0)
      << last;
  ASSERT_EQ(sh("openssl dgst -sha256 -keyform DER -verify " + d + "pub.der -signature " + d +
               "sig " + d + "data"),
            0)
      << last;
}

TEST_F(InteropTest, SignatureByPkcsToolVerifiesWithOpenSSL) {
  std::string d = dir + "/";
  ASSERT_EQ(sh(user + " --keypairgen --key-type rsa:3072 --id 11 --label signer"), 0) << last;
  ASSERT_EQ(sh("printf 'signed data' > " + d + "data"), 0);
  ASSERT_EQ(sh(user + " --sign -m SHA256-RSA-PKCS --id 11 -i " + d + "data -o " + d + "sig"), 0)
      << last;
  ASSERT_EQ(
      sh(tool + " --token-label interop --read-object --type pubkey --id 11 -o " + d + "pub.der"),
      0)
      << last;
  ASSERT_EQ(sh("openssl dgst -sha256 -keyform DER -verify " + d + "pub.der -signature " + d +
               "sig " + d + "data"),
            0)
      << last;
  EXPECT_NE(last.find("Verified OK"), std::string::npos);
}

// A certificate written without a PIN is listed by NSS without a PIN: the
// token carries the CKP_PUBLIC_CERTIFICATES_TOKEN profile.
TEST_F(InteropTest, NssListsCertificateWithoutLogin) {
  std::string d = dir + "/";
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d +
               "k.pem -subj /CN=nss-test -days 2 -outform DER -out " + d + "c.der"),
            0)
      << last;
  ASSERT_EQ(sh(tool + " --token-label interop --write-object " + d +
               "c.der --type cert --label mycert --id 05"),
            0)
      << last;
  ASSERT_EQ(sh("mkdir -p " + d + "nss && certutil -N -d sql:" + d + "nss --empty-password"), 0)
      << last;
  ASSERT_EQ(sh(std::string("echo | modutil -force -add tokenkit -libfile ") + TOKENKIT_MODULE_PATH +
               " -dbdir sql:" + d + "nss"),
            0)
      << last;
  ASSERT_EQ(sh("certutil -L -h all -d sql:" + d + "nss </dev/null"), 0) << last;
  EXPECT_NE(last.find("interop:mycert"), std::string::npos) << last;
}

// NSS makes a key and a self-signed certificate on the token, signs mail
// with it (openssl checks the signature) and decrypts mail encrypted to it:
// C_UnwrapKey(CKM_RSA_PKCS) into an AES key, then streamed C_DecryptUpdate.
TEST_F(InteropTest, NssSignsAndDecryptsMailOnTheToken) {
  std::string d = dir + "/", db = " -d sql:" + d + "nss";
  ASSERT_EQ(sh("mkdir -p " + d + "nss && certutil -N" + db + " --empty-password"), 0) << last;
  ASSERT_EQ(sh(std::string("echo | modutil -force -add tokenkit -libfile ") + TOKENKIT_MODULE_PATH +
               " -dbdir sql:" + d + "nss"),
            0)
      << last;
  ASSERT_EQ(sh(std::string("echo ") + kUserPin + " > " + d + "pw && head -c 64 /dev/urandom > " +
               d + "noise && printf 'Subject: hi\r\n\r\nsecret body\r\n' > " + d + "msg"),
            0);
  ASSERT_EQ(sh("certutil -S -s CN=mail-user -n me -x -t CTu,CTu,CTu -h interop -k rsa -g 2048"
               " -Z SHA256 -f " +
               d + "pw -z " + d + "noise" + db),
            0)
      << last;
  ASSERT_EQ(sh("certutil -K -h interop -f " + d + "pw" + db), 0) << last;
  EXPECT_NE(last.find("interop:me"), std::string::npos) << last;
  std::string pin = std::string(" -p ") + kUserPin;
  ASSERT_EQ(sh("cmsutil -S -N interop:me -i " + d + "msg -o " + d + "sig.p7m" + db + pin), 0)
      << last;
  ASSERT_EQ(sh("openssl cms -verify -noverify -inform DER -in " + d + "sig.p7m"), 0) << last;
  EXPECT_NE(last.find("secret body"), std::string::npos) << last;
  ASSERT_EQ(sh("cmsutil -E -r interop:me -i " + d + "msg -o " + d + "enc.p7m" + db + pin), 0)
      << last;
  ASSERT_EQ(sh("cmsutil -D -i " + d + "enc.p7m" + db + pin), 0) << last;
  EXPECT_NE(last.find("secret body"), std::string::npos) << last;
}

// pk12util moves an OpenSSL-made PKCS#12 onto the token; the key signs
// mail through NSS and the certificate is paired with it.
TEST_F(InteropTest, Pk12utilImportsOntoTheToken) {
  std::string d = dir + "/", db = " -d sql:" + d + "nss";
  ASSERT_EQ(sh("openssl req -x509 -newkey rsa:2048 -nodes -keyout " + d +
               "k.pem -subj /CN=p12-user -days 2 -out " + d +
               "c.pem && openssl pkcs12 -export"
               " -inkey " +
               d + "k.pem -in " + d +
               "c.pem -name p12user -passout pass:p12pass"
               " -out " +
               d + "u.p12"),
            0)
      << last;
  ASSERT_EQ(sh("mkdir -p " + d + "nss && certutil -N" + db + " --empty-password"), 0) << last;
  ASSERT_EQ(sh(std::string("echo | modutil -force -add tokenkit -libfile ") + TOKENKIT_MODULE_PATH +
               " -dbdir sql:" + d + "nss"),
            0)
      << last;
  ASSERT_EQ(sh(std::string("echo ") + kUserPin + " > " + d + "pw && echo p12pass > " + d +
               "p12pw && printf 'imported key signs\\r\\n' > " + d + "msg"),
            0);
  ASSERT_EQ(sh("pk12util -i " + d + "u.p12 -h interop -k " + d + "pw -w " + d + "p12pw" + db), 0)
      << last;
  ASSERT_EQ(sh("certutil -K -h interop -f " + d + "pw" + db), 0) << last;
  EXPECT_NE(last.find("p12user"), std::string::npos) << last;
  // Self-signed: trust it so NSS will sign with it (the trust lives in NSS's db).
  ASSERT_EQ(sh("certutil -M -n interop:p12user -t CTu,CTu,CTu -f " + d + "pw" + db), 0) << last;
  ASSERT_EQ(sh("cmsutil -S -N interop:p12user -i " + d + "msg -o " + d + "sig.p7m" + db + " -p " +
               kUserPin),
            0)
      << last;
  ASSERT_EQ(
      sh("openssl cms -verify -noverify -inform DER -in " + d + "sig.p7m -signer " + d +
         "signer.pem && openssl x509 -noout -pubkey -in " + d + "signer.pem > " + d +
         "a && openssl pkey -pubout -in " + d + "k.pem > " + d + "b && cmp " + d + "a " + d + "b"),
      0)
      << last;
}

// A .module file in the user's p11-kit configuration registers the module:
// `p11-kit list-modules` and GnuTLS's `p11tool --list-all` (which loads the
// registered modules) see it and its token. p11-kit ignores user
// configuration for root, so the peers run as the unprivileged user 65534.
TEST_F(InteropTest, P11KitRegistrationAsOrdinaryUser) {
  if (getuid() != 0) GTEST_SKIP() << "needs root to run the peers as another user";
  if (getpwuid(65534) == nullptr) GTEST_SKIP() << "no user 65534 (nobody) on this system";
  if (sh("command -v setpriv") != 0) GTEST_SKIP() << "setpriv (util-linux) is not installed";
  ASSERT_EQ(sh(user + " --keypairgen --key-type EC:prime256v1 --id 21 --label registered"), 0)
      << last;
  namespace fs = std::filesystem;
  // The user's own copy of the module, readable wherever the build tree is.
  std::string so = dir + "/tokenkit-pkcs11.so", conf = dir + "/home/.config";
  fs::copy_file(TOKENKIT_MODULE_PATH, so);
  fs::create_directories(conf + "/pkcs11/modules");
  std::ofstream(conf + "/pkcs11/modules/tokenkit.module") << "module: " << so << "\n";
  ASSERT_EQ(sh("chown -R 65534:65534 " + dir + " && chmod 0755 " + dir), 0) << last;
  std::string env = "env HOME=" + dir + "/home XDG_CONFIG_HOME=" + conf + " ";
  std::string as_user = "setpriv --reuid=65534 --regid=65534 --clear-groups " + env;

  ASSERT_EQ(sh(as_user + "p11-kit list-modules"), 0) << last;
  EXPECT_NE(last.find("tokenkit: " + so), std::string::npos) << last;
  EXPECT_NE(last.find("token: interop"), std::string::npos) << last;
  EXPECT_NE(last.find("library-manufacturer: tokenkit"), std::string::npos) << last;

  ASSERT_EQ(sh(as_user + "p11tool --list-all 'pkcs11:token=interop' 2>/dev/null"), 0) << last;
  EXPECT_NE(last.find("token=interop;id=%21;object=registered;type=public"), std::string::npos)
      << last;

  // The reason for the user: the same configuration is ignored for root.
  ASSERT_EQ(sh(env + "p11-kit list-modules"), 0) << last;
  EXPECT_EQ(last.find("tokenkit: " + so), std::string::npos) << last;
}

// GnuTLS's p11tool signs with token keys (PKCS#1, PSS, ECDSA) and checks
// each signature against the key and the token's public key.
TEST_F(InteropTest, GnutlsP11toolTestSign) {
  ASSERT_EQ(sh(user + " --keypairgen --key-type rsa:2048 --id 31 --label grsa"), 0) << last;
  ASSERT_EQ(sh(user + " --keypairgen --key-type EC:secp384r1 --id 32 --label gec"), 0) << last;
  std::string p11tool = std::string("GNUTLS_PIN=") + kUserPin + " p11tool --provider " +
                        TOKENKIT_MODULE_PATH + " --login --test-sign ";
  for (std::string args : {"", "--sign-params RSA-PSS "}) {
    ASSERT_EQ(sh(p11tool + args + "'pkcs11:token=interop;object=grsa;type=private' </dev/null"), 0)
        << last;
    EXPECT_NE(last.find("Verifying against public key in the token... ok"), std::string::npos)
        << last;
  }
  ASSERT_EQ(sh(p11tool + "'pkcs11:token=interop;object=gec;type=private' </dev/null"), 0) << last;
  EXPECT_NE(last.find("Verifying against public key in the token... ok"), std::string::npos)
      << last;
}

}  // namespace
}  // namespace tkt
