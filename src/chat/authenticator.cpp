#include "chat/authenticator.h"

#include <algorithm>

namespace roomcast::chat {

bool rooms_allow(const std::vector<std::string>& patterns, std::string_view room) {
  return std::any_of(patterns.begin(), patterns.end(), [room](std::string_view pattern) {
    if (pattern.ends_with('*')) return room.starts_with(pattern.substr(0, pattern.size() - 1));
    return room == pattern;
  });
}

RoomAccess room_access(bool authenticated, const std::vector<std::string>* room_claims,
                       bool require_auth, std::string_view room) {
  if (!authenticated)
    return require_auth ? RoomAccess::kAuthenticationRequired : RoomAccess::kAllowed;
  if (room_claims != nullptr && !rooms_allow(*room_claims, room)) return RoomAccess::kForbidden;
  return RoomAccess::kAllowed;
}

std::optional<std::string> check_identity(const Identity& identity, const ProtocolLimits& limits) {
  const std::string_view id = identity.user_id;
  if (id.empty() || id.size() > kMaxUserIdChars) {
    return "the user id must be 1 to " + std::to_string(kMaxUserIdChars) + " characters";
  }
  // The id travels in every message the user sends and may end up in other clients' pages:
  // the same markup characters as in names are refused, and spaces too (it is an id).
  constexpr std::string_view kForbidden = "<>&\"'`";
  for (const char c : id) {
    if (c <= 0x20 || c >= 0x7F || kForbidden.find(c) != std::string_view::npos) {
      return "the user id must be printable ASCII without spaces or any of < > & \" ' `";
    }
  }
  if (id.starts_with(kReservedUserIdPrefix)) {
    return "user ids starting with '" + std::string(kReservedUserIdPrefix) +
           "' are the server's own";
  }
  if (auto broken = check_username(identity.username, limits)) return broken;
  return std::nullopt;
}

}  // namespace roomcast::chat
