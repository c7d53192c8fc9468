// Conversations: the direct messages between two users, kept as a private two-member room of
// the store. Its key is made from both user ids here and nowhere else; every store, the Hub,
// the Exchange and the cluster name a conversation by it and tell it from a room by it.
//
// No client can name a conversation as a room: the key starts with '<', which room names
// may never contain (check_room_name), so neither a join nor the HTTP API (history, event
// streams, long-polls, sends) reaches one. User ids have no spaces (check_user_id), so the
// one space between them is unambiguous: two pairs of ids never share a key.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace roomcast::chat {

inline constexpr std::string_view kConversationPrefix = "<dm>";

// The conversation of users `a` and `b` (the same whoever of them asks): "<dm>" + the smaller
// id + " " + the larger. Both must pass check_user_id. A user may write to themselves.
inline std::string conversation_key(std::string_view a, std::string_view b) {
  if (b < a) std::swap(a, b);
  std::string key;
  key.reserve(kConversationPrefix.size() + a.size() + 1 + b.size());
  key += kConversationPrefix;
  key += a;
  key += ' ';
  key += b;
  return key;
}

inline bool is_conversation(std::string_view key) {
  return key.starts_with(kConversationPrefix);
}

// The two users of a conversation key (smaller id first); nullopt for a room's name.
inline std::optional<std::pair<std::string_view, std::string_view>> conversation_users(
    std::string_view key) {
  if (!is_conversation(key)) return std::nullopt;
  key.remove_prefix(kConversationPrefix.size());
  const std::size_t space = key.find(' ');
  if (space == std::string_view::npos) return std::nullopt;
  return std::pair{key.substr(0, space), key.substr(space + 1)};
}

// The other user of the conversation than `user` (`user` itself when they write to
// themselves); empty if `key` is no conversation.
inline std::string_view conversation_peer(std::string_view key, std::string_view user) {
  const auto users = conversation_users(key);
  if (!users) return {};
  return users->first == user ? users->second : users->first;
}

}  // namespace roomcast::chat
