// The chapter's JSON protocol: decoding client messages and encoding server messages.
// Field names are exactly the chapter's; see docs/protocol.md for the bytes on the wire.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace roomcast::chat {

class AppEvents;

// Limits a client message must respect; each is enforced with an `error` reply.
struct ProtocolLimits {
  std::size_t max_username_chars = 20;  // the browser client's limit, enforced here too
  std::size_t max_room_chars = 30;
  std::size_t max_message_chars = 500;
  int max_json_depth = 8;  // our messages are flat; deep nesting is only ever an attack
  std::size_t max_id_chars = 64;  // a chat_message's idempotency `id`
  // A refresh's `token`: an RS512 JWT with a few claims is about 1 KB; this leaves room for
  // bigger keys and claims while keeping a refresh far below the message size limit.
  std::size_t max_token_chars = 8192;
  // An app event (AppEvents), the whole JSON text as sent: the chapter's document changes and
  // position updates are small; 16 KiB bounds what one event costs every member's queue.
  std::size_t max_event_bytes = 16 * 1024;
  // A binary message (the chapter's position update is 13 bytes: a type byte, three float32).
  std::size_t max_binary_bytes = 16 * 1024;
  // A direct_message's `to`: a user id (chat::kMaxUserIdChars).
  std::size_t max_user_id_chars = 128;
};

// --- client -> server ---------------------------------------------------------------

struct JoinRoom {
  std::string room;
  std::optional<std::string> username;  // required on a connection's first join
  // Extension: the last seq this client has of the room; it gets exactly what followed.
  std::optional<std::uint64_t> since;
  // Extension: the connection takes part in the room's binary messages (the chapter's binary
  // protocol): what it sends as binary goes to the room's other binary members, and theirs to
  // it. Members that do not ask never receive a binary frame.
  bool binary = false;
  // Extension: the room's messages (chat messages, app events) reach this connection in
  // message_batch documents (HubOptions::batch_interval, batch_size) instead of one by one.
  bool batch = false;
};
struct LeaveRoom {
  std::string room;
};
struct ChatMessage {
  std::string message;
  std::optional<std::string> room;  // extension: send to one room instead of all
  // Extension: the client's idempotency key; the server acks and stores the message once.
  std::optional<std::string> id;
};
struct Typing {
  std::string room;
  bool started = false;  // typing_start or typing_stop
};
// Extension: a fresh token for this connection, before its current one expires.
struct Refresh {
  std::string token;
};
// Extension: an application event of a type the server relays (AppEvents). `fields` is the
// sender's JSON object minus the names the server sets or reads itself (type, room, userId,
// username, timestamp, seq, id, ref), re-serialized: e.g. {"change":{...}}.
struct AppEvent {
  std::string type;
  std::string room;
  std::string fields;
  std::optional<std::string> id;  // durable types: acked, and stored once, like a chat message
};
// Extension: a message to one user, on every connection they have (the chapter's sendToUser).
struct DirectMessage {
  std::string to;  // the recipient's userId
  std::string message;
  std::optional<std::string> id;
};
// Extension: the sender's conversation with user `with` (their direct messages): what followed
// `since`, or the recent messages (as a join's history).
struct DirectHistory {
  std::string with;
  std::optional<std::uint64_t> since;
};
// Extension: the sender's conversations (with whom, how far each has got).
struct ListConversations {};
using ClientMessage = std::variant<JoinRoom, LeaveRoom, ChatMessage, Typing, Refresh, AppEvent,
                                   DirectMessage, DirectHistory, ListConversations>;

// Why a client message was refused. `code` is one of the short codes below, `message`
// the human-readable text sent to the client.
struct ProtocolError {
  ProtocolError(std::string_view error_code, std::string text, std::string field_at_fault = {})
      : code(error_code), message(std::move(text)), field(std::move(field_at_fault)) {}

  std::string_view code;
  std::string message;
  // invalid_field: the field at fault ("username", "message", ...), sent as the error's
  // `field` (extension) so a client need not parse the text; empty for other codes.
  std::string field;
};

namespace error_code {
inline constexpr std::string_view kInvalidJson = "invalid_json";
inline constexpr std::string_view kUnknownType = "unknown_type";
inline constexpr std::string_view kInvalidField = "invalid_field";
inline constexpr std::string_view kNotInRoom = "not_in_room";
inline constexpr std::string_view kAlreadyInRoom = "already_in_room";
inline constexpr std::string_view kUsernameMismatch = "username_mismatch";
inline constexpr std::string_view kUnsupportedBinary = "unsupported_binary";
inline constexpr std::string_view kUnavailable = "unavailable";
// Cluster mode: Redis cannot be reached; nothing was stored or acknowledged.
inline constexpr std::string_view kClusterUnavailable = "cluster_unavailable";
inline constexpr std::string_view kForbiddenRoom = "forbidden_room";
// HTTP API only (the WebSocket closes with 4001 instead): no token where one is required.
inline constexpr std::string_view kAuthenticationRequired = "authentication_required";
inline constexpr std::string_view kTooManyRooms = "too_many_rooms";
inline constexpr std::string_view kRateLimited = "rate_limited";
// refresh: from a connection opened without a token (there is nothing to refresh).
inline constexpr std::string_view kNotAuthenticated = "not_authenticated";
// A token that does not verify (signature, expiry, claims): a refresh's, or the HTTP
// API's (where the WebSocket closes with 4001 instead).
inline constexpr std::string_view kInvalidToken = "invalid_token";
// refresh: the new token names another user (`sub`) than the connection's.
inline constexpr std::string_view kTokenMismatch = "token_mismatch";
// An app event over --max-event-bytes, a binary message over --max-binary-bytes.
inline constexpr std::string_view kTooLarge = "too_large";
// direct_message: the recipient has no connection on this server.
inline constexpr std::string_view kUserOffline = "user_offline";
// The server API took the connection's user out of a room (POST /api/unsubscribe); the
// error names the room.
inline constexpr std::string_view kRemovedFromRoom = "removed_from_room";
// The backend's publish hook (--publish-hook) refused the message; the error carries its
// reason. Nothing was stored or relayed; the message's `id` is not spent.
inline constexpr std::string_view kDenied = "denied";
}  // namespace error_code

// Close codes the chat itself asks for (Sink::close), in the application range 4000-4999
// of RFC 6455 section 7.4.2. The net layer's ws::CloseCode holds the same values.
namespace close_code {
// The connection's token expired and no fresh one came in time (see Hub's refresh).
inline constexpr std::uint16_t kTokenExpired = 4002;
// The server API disconnected the user (POST /api/disconnect): clients must not reconnect.
inline constexpr std::uint16_t kDisconnected = 4003;
// The chat cannot serve the connection now (its room could not be loaded: Redis unreachable).
inline constexpr std::uint16_t kUnavailable = 1011;
}  // namespace close_code

// Parses and validates one text message. Names (room, username) are trimmed of whatever
// renders as nothing at either end (whitespace, zero-width and other invisible characters;
// see trim_invisible), must have something visible left, contain no control characters,
// none of < > & " ' ` (so nothing a client names can be markup in another client) and no
// bidirectional controls, and are put in NFC: the name decoded is the name others see. A
// message of nothing visible is refused as empty. (Whether a username looks like another
// member's is the Hub's rule: it needs the room.)
// A message whose type is not the protocol's is an AppEvent when `events` allows its type (it
// must then name a `room` and be at most limits.max_event_bytes), else `unknown_type`.
// Extension: any request may carry `ref`, a string of 1 to kMaxRefChars characters the
// client picks; the server echoes it on the replies the request causes (error, ack,
// joined, token_refreshed) so a client matches them exactly. A valid `ref` is written to
// *ref (if given) even when the rest of the message is refused; an invalid one is refused
// itself (invalid_field, field "ref") and not echoed.
std::variant<ClientMessage, ProtocolError> decode_client_message(std::string_view text,
                                                                 const ProtocolLimits& limits,
                                                                 const AppEvents* events = nullptr,
                                                                 std::string* ref = nullptr);
inline constexpr std::size_t kMaxRefChars = 64;

// A chat message's text by the rules of chat_message's `message` (at most
// limits.max_message_chars, something visible): the broken rule, or nullopt. For a text that
// comes from elsewhere (the publish hook's rewrite). `text` must be valid UTF-8.
std::optional<ProtocolError> check_message_text(std::string_view text,
                                                const ProtocolLimits& limits);

// The rule for a user id (a token's `sub`, a direct message's `to`): 1 to `max_chars`
// printable ASCII characters, no spaces, none of < > & " ' `. Returns the broken rule (to
// follow "Field 'to' " or "the user id "), or nullopt.
std::optional<std::string> check_user_id(std::string_view id, std::size_t max_chars);

// Validates a room name (from a URL, say) by the same rules as `room` in a message;
// returns the trimmed name or the error.
std::variant<std::string, ProtocolError> check_room_name(std::string_view name,
                                                         const ProtocolLimits& limits);
// The username rules of join_room, for names that come from elsewhere (a token): returns
// the broken rule, or nullopt. Surrounding whitespace or invisible characters are refused
// rather than trimmed; a name not in NFC passes (whoever keeps it keeps to_nfc(name)).
std::optional<std::string> check_username(std::string_view name, const ProtocolLimits& limits);

// --- server -> client ---------------------------------------------------------------
// Each returns one complete JSON document.

struct UserEntry {
  std::string_view id;
  std::string_view username;
};

std::string encode_connection_established(std::string_view user_id);
std::string encode_system_message(std::string_view room, std::string_view text,
                                  std::int64_t timestamp_ms);
std::string encode_user_list(std::string_view room, const std::vector<UserEntry>& users);
std::string encode_chat_message(std::string_view room, std::string_view user_id,
                                std::string_view username, std::string_view message,
                                std::int64_t timestamp_ms, std::uint64_t seq);
// An app event as members receive it: {"type":TYPE,"room":...,"userId":...,"username":...,
// "timestamp":MS[,"seq":N]} followed by the sender's `fields` (a JSON object's text, spliced
// in); `seq` only for durable types.
std::string encode_app_event(std::string_view type, std::string_view room, std::string_view user_id,
                             std::string_view username, std::string_view fields,
                             std::int64_t timestamp_ms, std::optional<std::uint64_t> seq);
// {"type":"direct_message","from":...,"username":...,"to":...,"message":...,"timestamp":MS,
// "seq":N}: `seq` numbers the conversation of `from` and `to` (chat/conversation.h).
std::string encode_direct_message(std::string_view from, std::string_view username,
                                  std::string_view to, std::string_view message,
                                  std::int64_t timestamp_ms, std::uint64_t seq);
// The ack of a stored direct_message with an `id`: {"type":"ack","to":...,"id":...,"seq":N}.
std::string encode_direct_ack(std::string_view to, std::string_view id, std::uint64_t seq,
                              std::string_view ref = {});
// A refused direct_message: {"type":"error","message":...,"code":...,"to":...[,"id":...]}.
// `retry_after` (a rate_limited error's `retryAfterMs`, as for encode_error) is left out when
// absent.
std::string encode_direct_error(std::string_view code, std::string_view message,
                                std::string_view to, std::string_view id, std::string_view ref = {},
                                std::optional<std::chrono::milliseconds> retry_after = {});
std::string encode_typing(bool started, std::string_view room, std::string_view user_id,
                          std::string_view username);
// {"type":"error","message":...,"code":...[,"field":...][,"ref":...]}: `field` names the
// field at fault of an invalid_field, `ref` the request's (both extensions, omitted if empty);
// a rate_limited error's `retryAfterMs` says how long until the budget that refused admits
// again (omitted when absent).
std::string encode_error(std::string_view code, std::string_view message,
                         std::string_view field = {}, std::string_view ref = {},
                         std::optional<std::chrono::milliseconds> retry_after = {});
// The error for a chat_message refused after it was accepted for a room (cluster mode:
// Redis unreachable): names the room and, if the message had one, its `id`, since other
// replies may have come in between.
std::string encode_message_error(std::string_view code, std::string_view message,
                                 std::string_view room, std::string_view id,
                                 std::string_view ref = {},
                                 std::optional<std::chrono::milliseconds> retry_after = {});
std::string encode_ack(std::string_view room, std::string_view id, std::uint64_t seq,
                       std::string_view ref = {});
// The reply to an accepted refresh: {"type":"token_refreshed","expiresAt":MS}, `expiresAt`
// being when the server will close the connection unless refreshed again; without it
// (nullopt) the new token never expires.
std::string encode_token_refreshed(std::optional<std::int64_t> expires_at_ms,
                                   std::string_view ref = {});
// {"type":"history","room":...,"messages":[...]} with `messages` the given chat_message
// documents spliced in as they are; `recovered` only when the join asked with `since`.
// The HTTP history API's body: {"room":...,"last_seq":N,"messages":[...]}.
std::string encode_history_page(std::string_view room, std::uint64_t last_seq,
                                const std::vector<std::string>& messages);
std::string encode_history(std::string_view room, const std::vector<std::string_view>& messages,
                           std::optional<bool> recovered);
// The reply to a join_room that carried a `ref` (extension), in place of the `history` a
// join without one gets: {"type":"joined","room":...,"ref":...,"lastSeq":N,"users":[...],
// "messages":[...][,"recovered":B]}: the room's state as the joiner enters it. `users` as in
// user_list, `messages` and `recovered` as in history.
std::string encode_joined(std::string_view room, std::string_view ref, std::uint64_t last_seq,
                          const std::vector<UserEntry>& users,
                          const std::vector<std::string_view>& messages,
                          std::optional<bool> recovered);
// The answer to direct_history: {"type":"direct_history","with":...,"lastSeq":N,
// "messages":[...][,"recovered":B][,"ref":...]}, `messages` the direct_message documents spliced
// in, `recovered` as in history (only when asked with `since`).
std::string encode_direct_history(std::string_view with, std::uint64_t last_seq,
                                  const std::vector<std::string_view>& messages,
                                  std::optional<bool> recovered, std::string_view ref = {});
// One conversation as `conversations` lists it: the peer, their name as their latest message
// in it gave it (empty: they have not written, left out), its last seq and that message's time.
struct ConversationEntry {
  std::string_view with;
  std::string_view username;
  std::uint64_t last_seq = 0;
  std::int64_t last_timestamp_ms = 0;
};
// {"type":"conversations","conversations":[{"with":...,"username":...,"lastSeq":N,
// "lastTimestamp":MS},...][,"ref":...]}.
std::string encode_conversations(const std::vector<ConversationEntry>& conversations,
                                 std::string_view ref = {});
// {"type":"message_batch","room":...,"messages":[...]}: room messages, each as it would have
// been sent alone, spliced in in order.
std::string encode_message_batch(std::string_view room, const std::vector<std::string>& messages);

}  // namespace roomcast::chat
