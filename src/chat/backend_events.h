// BackendEvents: what the Hubs tell the application's backend (webhooks, hooks/webhooks.h):
// who joined and left a room, whose last connection closed, which message the store numbered.
// Each event is reported by the one Hub where it happens (the joiner's, the leaver's, the
// sender's), so a node or cluster reports it once, however many Hubs follow the room.
// Thread-safe: every worker's Hub calls it, on its own thread. Implementations must return at
// once (queue, never send): the callers are I/O workers.
#pragma once

#include <string_view>

#include "chat/history_store.h"
#include "chat/member.h"

namespace roomcast::chat {

class BackendEvents {
 public:
  virtual ~BackendEvents() = default;
  // `member` came into `room` where no connection of its user was (the "joined the chat" of
  // the room's members), or its user's last connection in the room left it.
  virtual void user_joined(std::string_view room, const MemberInfo& member) = 0;
  virtual void user_left(std::string_view room, const MemberInfo& member) = 0;
  // A connection of `member`'s user opened or closed on this node (each reported once).
  virtual void user_connected(const MemberInfo& member) = 0;
  virtual void user_disconnected(const MemberInfo& member) = 0;
  // The store numbered `message`, published by a connection (or the server API) of this node.
  virtual void message_published(const StoredMessage& message) = 0;
};

}  // namespace roomcast::chat
