// A fresh token per test, for every provider in the matrix.
#pragma once

#include <gtest/gtest.h>

#include <memory>

#include "token/error.hpp"
#include "token/module.hpp"
#include "token/select.hpp"
#include "token/session.hpp"
#include "tokens.hpp"

namespace tokenkit::test {

class TokenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (unexpected_wrong_pin_seen()) {
      GTEST_FAIL() << "an earlier test got CKR_PIN_INCORRECT unexpectedly; stopping before a "
                      "token could be locked";
    }
    token_ = std::make_unique<FreshToken>(GetParam());
  }

  token::Module module() const { return token::Module::load(token_->module()); }

  token::SlotInfo slot(const token::Module& m) const {
    token::TokenSelector sel;
    sel.label = token_->label();
    return token::select_token(m, sel);
  }

  // Logs in with the right PIN; a CKR_PIN_INCORRECT here stops the suite.
  void login(token::Session& s) const {
    try {
      s.login(token::Secret(kUserPin));
    } catch (const token::Error& e) {
      if (e.kind() == token::ErrorKind::PinIncorrect) note_unexpected_wrong_pin();
      throw;
    }
  }

  std::unique_ptr<FreshToken> token_;
};

inline std::string provider_name(const ::testing::TestParamInfo<std::string>& info) {
  return info.param;
}

}  // namespace tokenkit::test

#define TOKENKIT_TOKEN_SUITE(Suite)                                                          \
  INSTANTIATE_TEST_SUITE_P(Tokens, Suite, ::testing::ValuesIn(tokenkit::test::token_providers()), \
                           tokenkit::test::provider_name)
