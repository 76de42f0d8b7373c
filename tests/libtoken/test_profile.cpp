// The token-profile table and PIV slot ids, without a token: what
// C_GetInfo/C_GetTokenInfo report (as the modules really fill them) picks the
// profile.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "token/profile.hpp"

namespace {

template <std::size_t N>
void pad(unsigned char (&field)[N], const char* text) {
  std::fill(std::begin(field), std::end(field), ' ');
  std::memcpy(field, text, std::min(N, std::strlen(text)));
}

const token::TokenProfile& profile(const char* library, const char* manufacturer,
                                   const char* model) {
  CK_INFO info{};
  CK_TOKEN_INFO ti{};
  pad(info.manufacturerID, library);
  pad(ti.manufacturerID, manufacturer);
  pad(ti.model, model);
  return token::token_profile(info, ti);
}

TEST(TokenProfiles, ChosenFromWhatTheModuleSays) {
  // ykcs11 2.2 on a YubiKey 5
  const auto& yk = profile("Yubico (www.yubico.com)", "Yubico (www.yubico.com)", "YubiKey YK5");
  EXPECT_EQ(yk.import, token::ImportSupport::Yes);
  EXPECT_TRUE(yk.so_login_to_write);
  EXPECT_TRUE(yk.piv_slot_ids);
  EXPECT_FALSE(yk.key_attributes.empty());
  // OpenSC 0.23's PIV driver on the same card
  const auto& sc = profile("OpenSC Project", "piv_II", "PKCS#15 emulated");
  EXPECT_EQ(sc.import, token::ImportSupport::NotImplemented);
  EXPECT_NE(sc.refusal.find("ykcs11"), std::string_view::npos);
  // tpm2-pkcs11 (its LIBRARY_MANUFACTURER)
  const auto& tpm = profile("tpm2-software.github.io", "IBM", "SW   TPM");
  EXPECT_EQ(tpm.import, token::ImportSupport::GeneratedOnly);
  EXPECT_NE(tpm.refusal.find("tokenkit keygen"), std::string_view::npos);
  // SoftHSM2 and anything else: the generic profile
  const auto& soft = profile("SoftHSM", "SoftHSM project", "SoftHSM v2");
  EXPECT_EQ(soft.import, token::ImportSupport::Yes);
  EXPECT_FALSE(soft.so_login_to_write);
  EXPECT_TRUE(soft.key_attributes.empty());
}

TEST(PivSlots, NamesAndIdsAsYkcs11MapsThem) {
  EXPECT_EQ(token::piv_slot_id("9a"), token::Bytes{1});
  EXPECT_EQ(token::piv_slot_id("9c"), token::Bytes{2});
  EXPECT_EQ(token::piv_slot_id("9d"), token::Bytes{3});
  EXPECT_EQ(token::piv_slot_id("9e"), token::Bytes{4});
  EXPECT_EQ(token::piv_slot_id("82"), token::Bytes{5});
  EXPECT_EQ(token::piv_slot_id("95"), token::Bytes{24});
  for (const char* bad : {"9b", "96", "81", "", "9", "9a0", "f9"}) {
    EXPECT_FALSE(token::piv_slot_id(bad)) << bad;
  }
  EXPECT_EQ(token::piv_slot_name(token::Bytes{3}), "9d");
  EXPECT_EQ(token::piv_slot_name(token::Bytes{24}), "95");
  EXPECT_EQ(token::piv_slot_name(token::Bytes{25}), "");
  EXPECT_EQ(token::piv_slot_name(token::Bytes(20, 0xab)), "");
}

}  // namespace
