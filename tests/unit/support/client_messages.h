// Client messages as the Hub tests send them: the JSON a client writes, built in one place.
#pragma once

#include <string>
#include <string_view>

namespace roomcast::test_support {

// {"type":"join_room","room":ROOM[,"username":NAME]}; no username when `username` is empty.
// The names are written as given (tests pass names that need no escaping, or escapes).
inline std::string join_json(std::string_view room, std::string_view username = "") {
  std::string msg = R"({"type":"join_room","room":")" + std::string(room) + "\"";
  if (!username.empty()) msg += R"(,"username":")" + std::string(username) + "\"";
  return msg + "}";
}

}  // namespace roomcast::test_support
