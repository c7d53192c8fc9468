// The few bytes of the chat protocol the load generator writes and reads (docs/protocol.md).
// Pure functions, no I/O. Incoming messages are classified by looking at fixed prefixes and
// markers only: the server's JSON is never parsed, which keeps a delivery cheap to count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace roomcast::bench {

// The chat protocol limits a message text to 500 characters.
inline constexpr std::size_t kMaxChatText = 500;

// What the generator sends (--message-kind). Every kind carries its send time and step, so
// each receiver computes the latency itself.
enum class MessageKind {
  kChat,  // {"type":"chat_message","message":TEXT}, TEXT the stamp (below)
  kEvent,  // an app event {"type":TYPE,"room":ROOM,"message":TEXT}: the chat text as an event
  kPosition,  // an app event {"type":TYPE,"room":ROOM,"x":X,"y":Y,"z":Z,"stamp":TEXT}: the JSON
              // twin of kBinary
  kBinary,  // a binary position update: the chapter's 13 bytes, then the stamp (below)
};

// The chapter's binary position update (docs/protocol.md, Binary messages): a type byte, then
// x, y, z as float32. The generator appends its stamp, the send time (uint64 ns) and the step
// (uint32); everything little-endian: 25 bytes in all.
inline constexpr std::uint8_t kPositionUpdateType = 0x01;
inline constexpr std::size_t kPositionUpdateBytes = 1 + 3 * 4;
inline constexpr std::size_t kStampedPositionBytes = kPositionUpdateBytes + 8 + 4;

struct Position {
  float x = 0;
  float y = 0;
  float z = 0;
};

// What an incoming server message is, as far as the generator cares.
enum class ServerMessageKind {
  kConnectionEstablished,
  kWelcome,  // system_message "Welcome to ROOM!" (our join was acknowledged)
  kChat,  // chat_message
  kEvent,  // an app event of the type the generator sends (--event-type)
  kBatch,  // message_batch (joined with "batch": true): several chat_messages or events in one
  kError,  // error
  kUserList,  // user_list
  kOther,  // other system messages, typing
};

// The send time and step a chat message carries in its text ("t=<ns> s=<step> ...").
struct ChatStamp {
  std::uint64_t sent_ns = 0;
  std::uint32_t step = 0;
};

// `event_type`: the app event type the generator sends ("" when it sends none).
ServerMessageKind classify(std::string_view message, std::string_view event_type = {});

// Members in a server user_list (counts its "username" keys).
std::size_t count_users(std::string_view user_list);

// Finds "t=<ns> s=<step>" at the start of a JSON string value (a chat_message's "message", an
// event's "message" or "stamp"; the first one, in a message_batch). Empty if the message was
// not written by this tool. With `end`, sets it to the offset just past the stamp, where the
// next one may be looked for.
std::optional<ChatStamp> find_stamp(std::string_view chat_message, std::size_t* end = nullptr);

// Room for any message the writers below write (an event type is at most 64 characters, a
// room name at most 30).
constexpr std::size_t message_capacity() {
  return kMaxChatText + 256;
}

// Writes {"type":"chat_message","message":"t=<ns> s=<step> xxx"} into `out` (at least
// message_capacity() bytes) and returns its length. The text is padded with 'x' to
// `text_bytes` characters when that is longer than the stamp. With `with_id`, the message
// also carries "id":"<ns>" (unique per sender), as the browser library's messages do: the
// server then acks it and checks it against the resends it keeps.
std::size_t write_chat_json(char* out, std::uint64_t sent_ns, std::uint32_t step,
                            std::size_t text_bytes, bool with_id = false);

// {"type":"<type>","room":"<room>","message":"t=<ns> s=<step> xxx"}: the chat text of
// write_chat_json() as an app event (`with_id` as there).
std::size_t write_event_json(char* out, std::string_view type, std::string_view room,
                             std::uint64_t sent_ns, std::uint32_t step, std::size_t text_bytes,
                             bool with_id = false);

// {"type":"<type>","room":"<room>","x":X,"y":Y,"z":Z,"stamp":"t=<ns> s=<step>"}: a position
// update as a JSON app event (the chapter's player_moved), floats in their shortest form.
std::size_t write_position_json(char* out, std::string_view type, std::string_view room,
                                const Position& position, std::uint64_t sent_ns,
                                std::uint32_t step);

// The binary position update with the stamp appended (kStampedPositionBytes).
std::size_t write_position_binary(char* out, const Position& position, std::uint64_t sent_ns,
                                  std::uint32_t step);

// The stamp of a binary message written by write_position_binary(); empty for anything else
// (another size or type byte: not ours).
std::optional<ChatStamp> read_binary_stamp(std::string_view payload);

// The k-th position of a player walking a square of 100 units: numbers of the sizes a game
// sends, the same for the JSON and the binary kinds.
Position position_at(std::uint64_t k);

// {"type":"join_room","room":"<room>","username":"<user>"}, with "batch":true when `batch`
// (the room's messages then come in message_batch) and "binary":true when `binary` (the
// connection takes part in the room's binary messages); both names are plain ASCII generated
// by the tool, so no escaping is needed.
std::string join_json(std::string_view room, std::string_view username, bool batch = false,
                      bool binary = false);

// base64 of arbitrary bytes (the Sec-WebSocket-Key is base64 of 16 random bytes).
std::string base64(const std::uint8_t* data, std::size_t len);

}  // namespace roomcast::bench
