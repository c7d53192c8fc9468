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
  if (auto broken = check_user_id(id, kMaxUserIdChars)) return "the user id " + *broken;
  if (id.starts_with(kReservedUserIdPrefix)) {
    return "user ids starting with '" + std::string(kReservedUserIdPrefix) +
           "' are the server's own";
  }
  if (auto broken = check_username(identity.username, limits)) return broken;
  return std::nullopt;
}

}  // namespace roomcast::chat
