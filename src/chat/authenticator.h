// Authenticator: what the chat needs to know about who is connecting, without knowing how
// tokens are made. chat/ declares it; auth/ implements it (JWT) and main.cpp plugs it in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "chat/protocol.h"

namespace roomcast::chat {

// A verified user. Every field comes from a token the server trusts.
struct Identity {
  // The user's stable id (the token's `sub`); replaces the random userId of anonymous users.
  // At most kMaxUserIdChars printable ASCII characters (see check_identity).
  std::string user_id;
  // The user's name (the token's `name`); the connection cannot pick another one.
  std::string username;
  // Rooms the user may join: exact names, or prefixes written "support:*" ("*" alone: any).
  // nullopt when the token does not restrict rooms.
  std::optional<std::vector<std::string>> rooms;
  // When this server stops accepting the token, in seconds since the Unix epoch: for a JWT,
  // its `exp` plus the clock leeway the verifier grants. 0: never. The Hub closes a
  // connection at that moment unless the client has refreshed its token in-band.
  std::int64_t expires_at_unix_s = 0;
};

// Whether `room` matches one of `patterns`: an exact name, or a prefix ending in '*'.
bool rooms_allow(const std::vector<std::string>& patterns, std::string_view room);

// The verdict on a user's use of a room: joining it over the WebSocket, reading its history
// over HTTP. Both ask room_access(), so the two can never disagree.
enum class RoomAccess {
  kAllowed,
  kAuthenticationRequired,  // anonymous, and the server requires a token
  kForbidden,  // the token's room claims (Identity::rooms) do not include the room
};

// The one rule for who may use `room`. `authenticated`: the user holds a verified token;
// `room_claims`: that token's room patterns (nullptr: it does not restrict rooms, or the user
// is anonymous). An anonymous user may use every room unless `require_auth`.
RoomAccess room_access(bool authenticated, const std::vector<std::string>* room_claims,
                       bool require_auth, std::string_view room);

// The Hub stores user ids inline (no heap block per user); a UUID is 36 characters.
inline constexpr std::size_t kMaxUserIdChars = 64;

// User ids the server gives itself: no token may name one (check_identity refuses the
// prefix), so a message from the server user cannot be forged by a client.
inline constexpr std::string_view kReservedUserIdPrefix = "roomcast:";
// The user a backend speaks as through the server API (POST /api/publish, docs/api.md).
inline constexpr std::string_view kServerUserId = "roomcast:server";

// Why a token was refused, for the log. Clients only ever learn "Invalid token".
struct AuthFailure {
  std::string reason;
};

using AuthResult = std::variant<Identity, AuthFailure>;

// Thread-safe: workers call verify() concurrently, so implementations keep no mutable state.
class Authenticator {
 public:
  virtual ~Authenticator() = default;
  // Verifies a token (signature, algorithm, expiry, claims) and returns who it names.
  virtual AuthResult verify(std::string_view token) const = 0;
};

// The rules a verified identity must meet before the Hub takes it, whatever made it:
// user_id 1..kMaxUserIdChars printable ASCII without spaces or markup characters, not starting
// with kReservedUserIdPrefix, and a
// username that follows the same rules as a username sent in join_room. Returns the broken
// rule, or nullopt.
std::optional<std::string> check_identity(const Identity& identity, const ProtocolLimits& limits);

}  // namespace roomcast::chat
