// Text and JSON renderings of slots, tokens and objects, shared by commands.
#pragma once

#include <ostream>

#include "cli.hpp"
#include "token/objects.hpp"

namespace tokenkit {

std::vector<std::string> token_flags(CK_FLAGS f);
std::vector<std::string> mechanism_flags(CK_FLAGS f);
Json token_json(const token::SlotInfo& s);
void print_token(std::ostream& out, const token::SlotInfo& s, const std::string& indent);
Json object_json(const token::ObjectInfo& o);
void print_object(std::ostream& out, const token::ObjectInfo& o, const std::string& indent);

}  // namespace tokenkit
