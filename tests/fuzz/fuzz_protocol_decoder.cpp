// Fuzz target for the chat protocol: chat::decode_client_message on arbitrary text, then
// round trips for whatever it accepts.
//
// Input: one WebSocket text message, as a client would send it.
//
// Checked: a refusal carries one of the codes the protocol documents, and its `error`
// reply is valid JSON; an accepted message obeys the documented rules for names and
// texts (checked here independently of the decoder); every encode_* function fed the
// decoded fields produces valid JSON that gives them back unchanged; and a client message
// rebuilt from the decoded fields decodes to the same message.
#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "chat/protocol.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;

[[noreturn]] void violated(std::string_view what) {
  std::fprintf(stderr, "fuzz_protocol_decoder: invariant violated: %.*s\n",
               static_cast<int>(what.size()), what.data());
  std::abort();
}

void require(bool ok, std::string_view what) {
  if (!ok) violated(what);
}

constexpr std::int64_t kTimestampMs = 1'700'000'000'123;
constexpr std::string_view kUserId = "0f8fad5b-d9cb-469f-a165-70867728950e";

// Code points of valid UTF-8: every byte that is not a continuation byte starts one.
std::size_t code_points(std::string_view s) {
  std::size_t n = 0;
  for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80 ? 1 : 0;
  return n;
}

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

// Some characters that render as nothing, and the bidirectional controls, as UTF-8.
constexpr std::array<std::string_view, 6> kInvisible{"\u200b", "\u00a0", "\u3000",
                                                     "\ufeff", "\u3164", "\u2800"};
constexpr std::array<std::string_view, 5> kBidiControls{"\u202e", "\u202d", "\u2066", "\u200f",
                                                        "\u061c"};

bool starts_or_ends_invisible(std::string_view s) {
  if (s.empty() || is_space(s.front()) || is_space(s.back())) return true;
  return std::any_of(kInvisible.begin(), kInvisible.end(), [s](std::string_view invisible) {
    return s.starts_with(invisible) || s.ends_with(invisible);
  });
}

// Whether `s` is made only of ASCII whitespace and the characters of kInvisible.
bool only_invisible(std::string_view s) {
  while (!s.empty()) {
    if (is_space(s.front())) {
      s.remove_prefix(1);
      continue;
    }
    const auto it =
        std::find_if(kInvisible.begin(), kInvisible.end(),
                     [s](std::string_view invisible) { return s.starts_with(invisible); });
    if (it == kInvisible.end()) return false;
    s.remove_prefix(it->size());
  }
  return true;
}

// protocol.h: names are trimmed of what renders as nothing, non-empty, within the limit,
// free of control characters, of < > & " ' ` and of bidirectional controls. (That they are
// in NFC is checked by the round trip: decoding a decoded name gives it back unchanged.)
void check_name(std::string_view name, std::size_t max_chars, std::string_view what) {
  require(!name.empty(), what);
  require(!starts_or_ends_invisible(name), what);
  for (const std::string_view control : kBidiControls) {
    require(name.find(control) == std::string_view::npos, what);
  }
  require(code_points(name) <= max_chars, what);
  for (const char c : name) {
    const auto byte = static_cast<unsigned char>(c);
    require(byte >= 0x20 && byte != 0x7F, what);
    require(std::string_view("<>&\"'`").find(c) == std::string_view::npos, what);
  }
}

// Parses an encoder's output as strict JSON (no comments, no invalid UTF-8).
json::object parse_object(const std::string& text) {
  boost::system::error_code ec;
  json::value doc = json::parse(text, ec);
  require(!ec, "encoder produced invalid JSON");
  require(doc.is_object(), "encoder produced a non-object");
  return std::move(doc.as_object());
}

std::string_view string_at(const json::object& obj, std::string_view key) {
  const json::value* value = obj.if_contains(key);
  require(value != nullptr && value->is_string(), "encoded field missing or not a string");
  const json::string& s = value->get_string();
  return {s.data(), s.size()};
}

std::int64_t int_at(const json::object& obj, std::string_view key) {
  const json::value* value = obj.if_contains(key);
  require(value != nullptr && value->is_int64(), "encoded field missing or not an integer");
  return value->get_int64();
}

// Decodes a client message rebuilt from decoded fields; it must decode again.
ClientMessage redecode(const json::object& client_message) {
  auto again = decode_client_message(json::serialize(client_message), ProtocolLimits{});
  require(std::holds_alternative<ClientMessage>(again), "re-encoded message was refused");
  return std::get<ClientMessage>(std::move(again));
}

class RoundTrip {
 public:
  explicit RoundTrip(const ProtocolLimits& limits) : limits_(limits) {}

  void operator()(const JoinRoom& join) const {
    check_name(join.room, limits_.max_room_chars, "join_room: bad room");
    if (join.username) check_name(*join.username, limits_.max_username_chars, "bad username");
    check_system_message(join.room);
    const std::string username = join.username.value_or("alice");
    const auto list = parse_object(encode_user_list(join.room, {{kUserId, username}}));
    require(string_at(list, "type") == "user_list", "user_list type");
    require(string_at(list, "room") == join.room, "user_list room");
    const json::value* users = list.if_contains("users");
    require(users != nullptr && users->is_array() && users->get_array().size() == 1,
            "user_list users");
    const json::value& user = users->get_array()[0];
    require(user.is_object(), "user_list entry");
    require(string_at(user.get_object(), "id") == kUserId, "user_list id");
    require(string_at(user.get_object(), "username") == username, "user_list username");

    json::object rebuilt{{"type", "join_room"}, {"room", join.room}};
    if (join.username) rebuilt["username"] = *join.username;
    const ClientMessage again = redecode(rebuilt);
    const auto* same = std::get_if<JoinRoom>(&again);
    require(same != nullptr && same->room == join.room && same->username == join.username,
            "join_room does not survive a round trip");
  }

  void operator()(const LeaveRoom& leave) const {
    check_name(leave.room, limits_.max_room_chars, "leave_room: bad room");
    check_system_message(leave.room);
    const ClientMessage again = redecode({{"type", "leave_room"}, {"room", leave.room}});
    const auto* same = std::get_if<LeaveRoom>(&again);
    require(same != nullptr && same->room == leave.room,
            "leave_room does not survive a round trip");
  }

  void operator()(const ChatMessage& chat) const {
    require(code_points(chat.message) <= limits_.max_message_chars, "chat_message too long");
    require(!only_invisible(chat.message), "chat_message is blank");
    if (chat.room) check_name(*chat.room, limits_.max_room_chars, "chat_message: bad room");
    const std::string room = chat.room.value_or("lobby");
    const auto encoded =
        parse_object(encode_chat_message(room, kUserId, "alice", chat.message, kTimestampMs, 42));
    require(string_at(encoded, "type") == "chat_message", "chat_message type");
    require(string_at(encoded, "room") == room, "chat_message room");
    require(string_at(encoded, "userId") == kUserId, "chat_message userId");
    require(string_at(encoded, "message") == chat.message, "chat_message text changed");
    require(int_at(encoded, "timestamp") == kTimestampMs, "chat_message timestamp");
    require(int_at(encoded, "seq") == 42, "chat_message seq");

    json::object rebuilt{{"type", "chat_message"}, {"message", chat.message}};
    if (chat.room) rebuilt["room"] = *chat.room;
    const ClientMessage again = redecode(rebuilt);
    const auto* same = std::get_if<ChatMessage>(&again);
    require(same != nullptr && same->message == chat.message && same->room == chat.room,
            "chat_message does not survive a round trip");
  }

  void operator()(const Typing& typing) const {
    check_name(typing.room, limits_.max_room_chars, "typing: bad room");
    const auto encoded = parse_object(encode_typing(typing.started, typing.room, kUserId, "bob"));
    require(string_at(encoded, "type") == (typing.started ? "typing_start" : "typing_stop"),
            "typing type");
    require(string_at(encoded, "room") == typing.room, "typing room");
    require(string_at(encoded, "username") == "bob", "typing username");

    const ClientMessage again = redecode(
        {{"type", typing.started ? "typing_start" : "typing_stop"}, {"room", typing.room}});
    const auto* same = std::get_if<Typing>(&again);
    require(same != nullptr && same->room == typing.room && same->started == typing.started,
            "typing does not survive a round trip");
  }

  void operator()(const Refresh& refresh) const {
    // A token is ASCII: its bytes are its characters.
    require(!refresh.token.empty() && refresh.token.size() <= limits_.max_token_chars,
            "refresh: bad token length");
    const ClientMessage again = redecode({{"type", "refresh"}, {"token", refresh.token}});
    const auto* same = std::get_if<Refresh>(&again);
    require(same != nullptr && same->token == refresh.token,
            "refresh does not survive a round trip");
  }

  void operator()(const AppEvent& event) const {
    // An app event's type is not the protocol's, its room a room name, its fields one JSON
    // object of at most max_event_bytes (they are relayed as they are).
    require(!event.type.empty(), "app event without a type");
    check_name(event.room, limits_.max_room_chars, "app event: bad room");
    require(event.fields.size() <= limits_.max_event_bytes, "app event too large");
    boost::system::error_code ec;
    const json::value fields = json::parse(event.fields, ec);
    require(!ec && fields.is_object(), "app event fields are not one JSON object");
  }

  void operator()(const DirectMessage& direct) const {
    require(!direct.to.empty(), "direct_message without a recipient");
    require(code_points(direct.message) <= limits_.max_message_chars, "direct_message too long");
    require(!only_invisible(direct.message), "direct_message is blank");
    require(!check_user_id(direct.to, limits_.max_user_id_chars), "direct_message: bad recipient");
  }

  void operator()(const DirectHistory& history) const {
    require(!check_user_id(history.with, limits_.max_user_id_chars), "direct_history: bad with");
  }

  void operator()(const ListConversations&) const {}

 private:
  static void check_system_message(const std::string& room) {
    const std::string text = "Welcome to " + room + "!";
    const auto encoded = parse_object(encode_system_message(room, text, kTimestampMs));
    require(string_at(encoded, "type") == "system_message", "system_message type");
    require(string_at(encoded, "room") == room, "system_message room");
    require(string_at(encoded, "message") == text, "system_message text");
    require(int_at(encoded, "timestamp") == kTimestampMs, "system_message timestamp");
  }

  const ProtocolLimits& limits_;
};

void check_error(const ProtocolError& error) {
  require(error.code == error_code::kInvalidJson || error.code == error_code::kUnknownType ||
              error.code == error_code::kInvalidField || error.code == error_code::kTooLarge,
          "decoder refused with an undocumented code");
  require(!error.message.empty(), "refusal without a message");
  const auto encoded = parse_object(encode_error(error.code, error.message));
  require(string_at(encoded, "type") == "error", "error type");
  require(string_at(encoded, "code") == error.code, "error code");
  require(string_at(encoded, "message") == error.message, "error message");
}

}  // namespace
}  // namespace roomcast::chat

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace roomcast::chat;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ProtocolLimits limits;
  const auto decoded = decode_client_message(text, limits);
  if (const auto* error = std::get_if<ProtocolError>(&decoded)) {
    check_error(*error);
  } else {
    std::visit(RoundTrip(limits), std::get<ClientMessage>(decoded));
  }
  return 0;
}
