#include "chat/protocol.h"

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <boost/json/basic_parser_impl.hpp>  // basic_parser with a handler of our own

#include "chat/app_events.h"
#include "chat/unicode_text.h"

namespace roomcast::chat {
namespace {

namespace json = boost::json;

// "Field 'KEY' RULE", naming KEY in the error's `field` too (the client need not parse the text).
ProtocolError invalid_field(std::string_view key, std::string_view rule) {
  std::string message = "Field '";
  message += key;
  message += "' ";
  message += rule;
  return {error_code::kInvalidField, std::move(message), std::string(key)};
}

// Appends `s` as a JSON string literal.
void append_quoted(std::string& out, std::string_view s) {
  out += json::serialize(json::string_view(s.data(), s.size()));
}

// Number of code points in valid UTF-8 (the WebSocket layer has validated it already).
std::size_t utf8_length(std::string_view s) {
  std::size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool is_forbidden_in_name(unsigned char c) {
  if (c < 0x20 || c == 0x7F) return true;  // control characters
  switch (c) {
    case '<':
    case '>':
    case '&':
    case '"':
    case '\'':
    case '`':
      return true;
    default:
      return false;
  }
}

// Reads a required or optional string field; nullptr result means "absent".
const json::string* string_field(const json::object& obj, std::string_view key,
                                 std::optional<ProtocolError>& error) {
  const auto* value = obj.if_contains(key);
  if (value == nullptr || value->is_null()) return nullptr;
  if (!value->is_string()) {
    error = invalid_field(key, "must be a string");
    return nullptr;
  }
  return &value->get_string();
}

// Validates a room or user name; returns the name as it is kept and shown to others (trimmed,
// in NFC) or an error. Pure ASCII names, the common case, never reach ICU.
std::variant<std::string, ProtocolError> check_name(std::string_view raw, std::string_view key,
                                                    std::size_t max_chars) {
  // The refusal, "Field 'KEY' <rule>"; built only when a rule is broken.
  const auto refuse = [key](std::string_view rule) { return invalid_field(key, rule); };
  const auto too_long = [&] {
    return refuse("must be at most " + std::to_string(max_chars) + " characters");
  };
  const bool ascii = is_ascii(raw);
  // A cheap bound before any ICU work, so that a hostile megabyte of a name costs no more than
  // a glance. It allows for invisible padding, and for NFC composing a few code points into
  // one (a Hangul syllable from three jamo, a letter from its base and two marks).
  if (!ascii && utf8_length(raw) > 4 * max_chars + 8) return too_long();
  // Trimmed of everything that renders as nothing, so a name of zero-width or non-ASCII
  // spaces is as empty as one of ASCII spaces.
  const std::string_view trimmed = trim_invisible(raw);
  if (trimmed.empty()) return refuse("must not be empty or invisible");
  std::string name;
  if (ascii) {
    name = trimmed;
  } else {
    // Anywhere, ends included: trimming one away in silence would hide what the client sent.
    if (has_bidi_control(raw)) {
      return refuse(
          "must not contain bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E, "
          "U+200F, U+061C)");
    }
    switch (find_name_flaw(trimmed)) {
      case NameFlaw::kNone:
        break;
      case NameFlaw::kIllFormed:
        return refuse("must be valid UTF-8");
      case NameFlaw::kControl:
        return refuse("must not contain control characters or line breaks");
    }
    // One name, one spelling: "e" + U+0301 and U+00E9 are the same name to everyone.
    name = to_nfc(trimmed);
  }
  if (utf8_length(name) > max_chars) return too_long();
  for (unsigned char c : name) {
    if (is_forbidden_in_name(c)) {
      return refuse("must not contain control characters or any of < > & \" ' `");
    }
  }
  return name;
}

std::variant<std::string, ProtocolError> check_name(const json::string* raw, std::string_view key,
                                                    std::size_t max_chars) {
  if (raw == nullptr) return invalid_field(key, "is required");
  return check_name(std::string_view(raw->data(), raw->size()), key, max_chars);
}

template <typename Message>
std::variant<ClientMessage, ProtocolError> with_room(const json::object& obj,
                                                     const ProtocolLimits& limits,
                                                     Message message) {
  std::optional<ProtocolError> error;
  const auto* raw_room = string_field(obj, "room", error);
  if (error) return *std::move(error);
  auto room = check_name(raw_room, "room", limits.max_room_chars);
  if (auto* e = std::get_if<ProtocolError>(&room)) return std::move(*e);
  message.room = std::get<std::string>(std::move(room));
  return ClientMessage{std::move(message)};
}

// The optional `since` of join_room and direct_history: the last seq the client has.
std::optional<ProtocolError> read_since(const json::object& obj,
                                        std::optional<std::uint64_t>& out) {
  const auto* since = obj.if_contains("since");
  if (since == nullptr || since->is_null()) return std::nullopt;
  if (since->is_uint64()) out = since->get_uint64();
  if (since->is_int64() && since->get_int64() >= 0) {
    out = static_cast<std::uint64_t>(since->get_int64());
  }
  if (!out) return invalid_field("since", "must be a non-negative integer (a seq)");
  return std::nullopt;
}

std::variant<ClientMessage, ProtocolError> decode_join(const json::object& obj,
                                                       const ProtocolLimits& limits) {
  auto decoded = with_room(obj, limits, JoinRoom{});
  if (std::holds_alternative<ProtocolError>(decoded)) return decoded;
  std::optional<ProtocolError> error;
  const auto* raw_name = string_field(obj, "username", error);
  if (error) return *std::move(error);
  if (raw_name != nullptr) {
    auto name = check_name(raw_name, "username", limits.max_username_chars);
    if (auto* e = std::get_if<ProtocolError>(&name)) return std::move(*e);
    std::get<JoinRoom>(std::get<ClientMessage>(decoded)).username =
        std::get<std::string>(std::move(name));
  }
  if (auto e = read_since(obj, std::get<JoinRoom>(std::get<ClientMessage>(decoded)).since)) {
    return *std::move(e);
  }
  if (const auto* binary = obj.if_contains("binary"); binary && !binary->is_null()) {
    if (!binary->is_bool()) return invalid_field("binary", "must be true or false");
    std::get<JoinRoom>(std::get<ClientMessage>(decoded)).binary = binary->get_bool();
  }
  if (const auto* batch = obj.if_contains("batch"); batch && !batch->is_null()) {
    if (!batch->is_bool()) return invalid_field("batch", "must be true or false");
    std::get<JoinRoom>(std::get<ClientMessage>(decoded)).batch = batch->get_bool();
  }
  return decoded;
}

// The optional idempotency `id` of chat messages, durable app events and direct messages.
std::optional<ProtocolError> read_id(const json::object& obj, const ProtocolLimits& limits,
                                     std::optional<std::string>& out) {
  std::optional<ProtocolError> error;
  const auto* raw_id = string_field(obj, "id", error);
  if (error) return error;
  if (raw_id == nullptr) return std::nullopt;
  const std::string_view id(raw_id->data(), raw_id->size());
  if (id.empty() || utf8_length(id) > limits.max_id_chars) {
    return invalid_field(
        "id", "must be a string of 1 to " + std::to_string(limits.max_id_chars) + " characters");
  }
  out = std::string(id);
  return std::nullopt;
}

// The text a message must carry, at most limits.max_message_chars and visible.
std::variant<std::string, ProtocolError> read_text(const json::object& obj,
                                                   const ProtocolLimits& limits) {
  std::optional<ProtocolError> error;
  const auto* text = string_field(obj, "message", error);
  if (error) return *std::move(error);
  if (text == nullptr) return invalid_field("message", "is required");
  const std::string_view body(text->data(), text->size());
  if (auto broken = check_message_text(body, limits)) return *std::move(broken);
  return std::string(body);
}

// Names an app event's sender may not set: the server sets them (room, userId, username,
// timestamp, seq) or reads them (type, id, ref). Dropped from what is relayed, so that nobody can
// pass for another user, another time or another place in the room's order.
bool is_server_field(std::string_view name) {
  return name == "type" || name == "room" || name == "userId" || name == "username" ||
         name == "timestamp" || name == "seq" || name == "id" || name == "ref";
}

std::variant<ClientMessage, ProtocolError> decode_app_event(std::string_view type,
                                                            const json::object& obj,
                                                            std::size_t text_bytes,
                                                            const ProtocolLimits& limits) {
  if (text_bytes > limits.max_event_bytes) {
    return ProtocolError{error_code::kTooLarge, "An app event must be at most " +
                                                    std::to_string(limits.max_event_bytes) +
                                                    " bytes of JSON"};
  }
  auto decoded = with_room(obj, limits, AppEvent{});
  if (std::holds_alternative<ProtocolError>(decoded)) return decoded;
  auto& event = std::get<AppEvent>(std::get<ClientMessage>(decoded));
  event.type = type;
  if (auto e = read_id(obj, limits, event.id)) return *std::move(e);
  std::string& fields = event.fields;
  fields.reserve(text_bytes);
  fields += '{';
  for (const auto& member : obj) {
    const std::string_view name(member.key().data(), member.key().size());
    if (is_server_field(name)) continue;
    if (fields.size() > 1) fields += ',';
    append_quoted(fields, name);
    fields += ':';
    fields += json::serialize(member.value());
  }
  fields += '}';
  return decoded;
}

// A required user id (direct_message's `to`, direct_history's `with`), by check_user_id.
std::variant<std::string, ProtocolError> read_user_id(const json::object& obj, std::string_view key,
                                                      const ProtocolLimits& limits) {
  std::optional<ProtocolError> error;
  const auto* raw = string_field(obj, key, error);
  if (error) return *std::move(error);
  if (raw == nullptr) return invalid_field(key, "is required (a userId)");
  std::string id(raw->data(), raw->size());
  if (auto broken = check_user_id(id, limits.max_user_id_chars)) {
    return invalid_field(key, *broken);
  }
  return id;
}

std::variant<ClientMessage, ProtocolError> decode_direct_history(const json::object& obj,
                                                                 const ProtocolLimits& limits) {
  auto with = read_user_id(obj, "with", limits);
  if (auto* e = std::get_if<ProtocolError>(&with)) return std::move(*e);
  DirectHistory request{std::get<std::string>(std::move(with)), std::nullopt};
  if (auto e = read_since(obj, request.since)) return *std::move(e);
  return ClientMessage{std::move(request)};
}

std::variant<ClientMessage, ProtocolError> decode_direct(const json::object& obj,
                                                         const ProtocolLimits& limits) {
  std::optional<ProtocolError> error;
  auto to = read_user_id(obj, "to", limits);
  if (auto* e = std::get_if<ProtocolError>(&to)) return std::move(*e);
  auto text = read_text(obj, limits);
  if (auto* e = std::get_if<ProtocolError>(&text)) return std::move(*e);
  DirectMessage message{std::get<std::string>(std::move(to)),
                        std::get<std::string>(std::move(text)), std::nullopt};
  if (auto e = read_id(obj, limits, message.id)) return *std::move(e);
  return ClientMessage{std::move(message)};
}

std::variant<ClientMessage, ProtocolError> decode_chat(const json::object& obj,
                                                       const ProtocolLimits& limits) {
  auto text = read_text(obj, limits);
  if (auto* e = std::get_if<ProtocolError>(&text)) return std::move(*e);
  if (const auto* ts = obj.if_contains("timestamp"); ts && !ts->is_null() && !ts->is_number()) {
    return invalid_field("timestamp", "must be a number (milliseconds since the epoch)");
  }
  std::optional<ProtocolError> error;
  ChatMessage message{std::get<std::string>(std::move(text)), std::nullopt, std::nullopt};
  if (auto e = read_id(obj, limits, message.id)) return *std::move(e);
  const auto* raw_room = string_field(obj, "room", error);
  if (error) return *std::move(error);
  if (raw_room != nullptr) {
    auto room = check_name(raw_room, "room", limits.max_room_chars);
    if (auto* e = std::get_if<ProtocolError>(&room)) return std::move(*e);
    message.room = std::get<std::string>(std::move(room));
  }
  return ClientMessage{std::move(message)};
}

std::variant<ClientMessage, ProtocolError> decode_refresh(const json::object& obj,
                                                          const ProtocolLimits& limits) {
  std::optional<ProtocolError> error;
  const auto* raw = string_field(obj, "token", error);
  if (error) return *std::move(error);
  if (raw == nullptr) return invalid_field("token", "is required");
  // A token is ASCII (base64url and dots): its bytes are its characters.
  if (raw->empty() || raw->size() > limits.max_token_chars) {
    return invalid_field("token", "must be a string of 1 to " +
                                      std::to_string(limits.max_token_chars) + " characters");
  }
  return ClientMessage{Refresh{std::string(raw->data(), raw->size())}};
}

// Small builder for the flat objects the server sends: {"type":"...", "k":v, ...}.
class ObjectWriter {
 public:
  explicit ObjectWriter(std::string_view type) {
    out_.reserve(128);
    out_ += "{\"type\":";
    append_quoted(out_, type);
  }
  ObjectWriter& field(std::string_view key, std::string_view value) {
    key_(key);
    append_quoted(out_, value);
    return *this;
  }
  ObjectWriter& field(std::string_view key, std::int64_t value) {
    key_(key);
    out_ += std::to_string(value);
    return *this;
  }
  // A number field that is left out when absent.
  ObjectWriter& optional(std::string_view key, std::optional<std::chrono::milliseconds> value) {
    return value ? field(key, static_cast<std::int64_t>(value->count())) : *this;
  }
  // A string field that is left out when empty (the protocol's optional extensions).
  ObjectWriter& optional(std::string_view key, std::string_view value) {
    return value.empty() ? *this : field(key, value);
  }
  ObjectWriter& raw(std::string_view key, std::string_view json_value) {
    key_(key);
    out_ += json_value;
    return *this;
  }
  // Members already in JSON ("k":v,...), appended as they are.
  ObjectWriter& members(std::string_view json_members) {
    out_ += ',';
    out_ += json_members;
    return *this;
  }
  std::string finish() {
    out_ += '}';
    return std::move(out_);
  }

 private:
  void key_(std::string_view key) {
    out_ += ',';
    append_quoted(out_, key);
    out_ += ':';
  }
  std::string out_;
};

// Finds a name that appears twice in one object. Boost.JSON keeps the last of duplicate
// names, while other readers (a proxy, a logger, the sender's own code) may take the first:
// {"type":"leave_room","type":"chat_message"} must not mean two things. RFC 8259 section 4
// leaves duplicates to the receiver; we refuse them. A basic_parser handler that only
// collects each object's names; sorted at the object's end, so a hostile object of many
// names costs n log n, not n squared.
class DuplicateNameFinder {
 public:
  static constexpr std::size_t max_array_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_object_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_string_size = static_cast<std::size_t>(-1);
  static constexpr std::size_t max_key_size = static_cast<std::size_t>(-1);

  // The duplicated name, if one was found.
  const std::optional<std::string>& duplicate() const { return duplicate_; }

  bool on_document_begin(boost::system::error_code&) { return true; }
  bool on_document_end(boost::system::error_code&) { return true; }
  bool on_array_begin(boost::system::error_code&) { return true; }
  bool on_array_end(std::size_t, boost::system::error_code&) { return true; }
  bool on_object_begin(boost::system::error_code&) {
    names_.emplace_back();
    return true;
  }
  bool on_object_end(std::size_t, boost::system::error_code& ec) {
    auto& names = names_.back();
    std::sort(names.begin(), names.end());
    if (const auto twice = std::adjacent_find(names.begin(), names.end()); twice != names.end()) {
      duplicate_ = *twice;
      ec = json::error::syntax;  // stops the parse; duplicate() says why
      return false;
    }
    names_.pop_back();
    return true;
  }
  bool on_string_part(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_string(json::string_view, std::size_t, boost::system::error_code&) { return true; }
  bool on_key_part(json::string_view s, std::size_t, boost::system::error_code&) {
    name_.append(s.data(), s.size());
    return true;
  }
  bool on_key(json::string_view s, std::size_t, boost::system::error_code&) {
    name_.append(s.data(), s.size());
    names_.back().push_back(std::move(name_));
    name_.clear();
    return true;
  }
  bool on_number_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_int64(std::int64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_uint64(std::uint64_t, json::string_view, boost::system::error_code&) { return true; }
  bool on_double(double, json::string_view, boost::system::error_code&) { return true; }
  bool on_bool(bool, boost::system::error_code&) { return true; }
  bool on_null(boost::system::error_code&) { return true; }
  bool on_comment_part(json::string_view, boost::system::error_code&) { return true; }
  bool on_comment(json::string_view, boost::system::error_code&) { return true; }

 private:
  std::vector<std::vector<std::string>> names_;  // of each open object, innermost last
  std::string name_;  // the name being read
  std::optional<std::string> duplicate_;
};

// A name that `text` (valid JSON) has twice in one object, if any.
std::optional<std::string> duplicate_name(std::string_view text) {
  json::basic_parser<DuplicateNameFinder> parser{json::parse_options{}};
  boost::system::error_code ec;
  parser.write_some(false, text.data(), text.size(), ec);
  return parser.handler().duplicate();
}

}  // namespace

std::optional<ProtocolError> check_message_text(std::string_view text,
                                                const ProtocolLimits& limits) {
  if (utf8_length(text) > limits.max_message_chars) {
    return invalid_field(
        "message", "must be at most " + std::to_string(limits.max_message_chars) + " characters");
  }
  // Only spaces, zero-width or other invisible characters: nothing anyone would see. (After
  // the length check, so the scan is bounded.)
  if (!has_visible(text)) return invalid_field("message", "must not be empty");
  return std::nullopt;
}

std::variant<std::string, ProtocolError> check_room_name(std::string_view name,
                                                         const ProtocolLimits& limits) {
  return check_name(name, "room", limits.max_room_chars);
}

std::variant<ClientMessage, ProtocolError> decode_client_message(std::string_view text,
                                                                 const ProtocolLimits& limits,
                                                                 const AppEvents* events,
                                                                 std::string* ref) {
  // Client messages are small and flat: parse into a stack buffer, no heap in the common case.
  std::array<unsigned char, 2048> scratch;
  json::monotonic_resource resource(scratch.data(), scratch.size());
  json::parse_options options;
  options.max_depth = static_cast<std::size_t>(limits.max_json_depth);
  boost::system::error_code ec;
  const json::value doc =
      json::parse(json::string_view(text.data(), text.size()), ec, &resource, options);
  if (ec == json::error::too_deep) {
    return ProtocolError{
        error_code::kInvalidJson,
        "Invalid JSON: nested deeper than " + std::to_string(limits.max_json_depth) + " levels"};
  }
  if (ec) return ProtocolError{error_code::kInvalidJson, "Invalid JSON: " + ec.message()};
  if (auto name = duplicate_name(text)) {
    return ProtocolError{error_code::kInvalidJson,
                         "Invalid JSON: the name '" + *name + "' appears twice in one object"};
  }
  if (!doc.is_object()) {
    return ProtocolError{error_code::kUnknownType,
                         "A message must be a JSON object with a 'type' field"};
  }
  const json::object& obj = doc.get_object();
  if (const auto* raw_ref = obj.if_contains("ref"); raw_ref != nullptr && !raw_ref->is_null()) {
    const json::string* value = raw_ref->if_string();
    if (value == nullptr || value->empty() ||
        utf8_length(std::string_view(value->data(), value->size())) > kMaxRefChars) {
      return invalid_field(
          "ref", "must be a string of 1 to " + std::to_string(kMaxRefChars) + " characters");
    }
    if (ref != nullptr) ref->assign(value->data(), value->size());
  }
  const auto* type = obj.if_contains("type");
  if (type == nullptr || !type->is_string()) {
    return ProtocolError{error_code::kUnknownType, "Field 'type' is required and must be a string"};
  }
  const json::string& t = type->get_string();
  if (t == "join_room") return decode_join(obj, limits);
  if (t == "leave_room") return with_room(obj, limits, LeaveRoom{});
  if (t == "chat_message") return decode_chat(obj, limits);
  if (t == "typing_start") return with_room(obj, limits, Typing{{}, true});
  if (t == "typing_stop") return with_room(obj, limits, Typing{{}, false});
  if (t == "refresh") return decode_refresh(obj, limits);
  if (t == "direct_message") return decode_direct(obj, limits);
  if (t == "direct_history") return decode_direct_history(obj, limits);
  if (t == "conversations") return ClientMessage{ListConversations{}};
  if (const std::string_view name(t.data(), t.size());
      events != nullptr && events->find(name) != nullptr) {
    return decode_app_event(name, obj, text.size(), limits);
  }
  return ProtocolError{error_code::kUnknownType,
                       "Unknown message type '" + std::string(t.data(), t.size()) + "'"};
}

std::optional<std::string> check_username(std::string_view name, const ProtocolLimits& limits) {
  if (trim_invisible(name).size() != name.size()) {
    return "Field 'username' must not start or end with whitespace or invisible characters";
  }
  auto checked = check_name(name, "username", limits.max_username_chars);
  if (auto* e = std::get_if<ProtocolError>(&checked)) return std::move(e->message);
  return std::nullopt;
}

std::optional<std::string> check_user_id(std::string_view id, std::size_t max_chars) {
  if (id.empty() || id.size() > max_chars) {
    return "must be 1 to " + std::to_string(max_chars) + " characters";
  }
  // An id travels in messages and may end up in other clients' pages: the markup characters
  // refused in names are refused here too, and spaces (it is an id; conversation keys, see
  // chat/conversation.h, rely on it).
  constexpr std::string_view kForbidden = "<>&\"'`";
  for (const char c : id) {
    if (c <= 0x20 || c >= 0x7F || kForbidden.find(c) != std::string_view::npos) {
      return "must be printable ASCII without spaces or any of < > & \" ' `";
    }
  }
  return std::nullopt;
}

std::string encode_connection_established(std::string_view user_id) {
  return ObjectWriter("connection_established").field("userId", user_id).finish();
}

std::string encode_system_message(std::string_view room, std::string_view text,
                                  std::int64_t timestamp_ms) {
  return ObjectWriter("system_message")
      .field("room", room)
      .field("message", text)
      .field("timestamp", timestamp_ms)
      .finish();
}

namespace {
// The `users` array of user_list and joined.
std::string users_array(const std::vector<UserEntry>& users) {
  std::string list = "[";
  list.reserve(2 + users.size() * 64);
  for (const auto& user : users) {
    if (list.size() > 1) list += ',';
    list += "{\"id\":";
    append_quoted(list, user.id);
    list += ",\"username\":";
    append_quoted(list, user.username);
    list += '}';
  }
  list += ']';
  return list;
}
}  // namespace

std::string encode_user_list(std::string_view room, const std::vector<UserEntry>& users) {
  return ObjectWriter("user_list").field("room", room).raw("users", users_array(users)).finish();
}

std::string encode_chat_message(std::string_view room, std::string_view user_id,
                                std::string_view username, std::string_view message,
                                std::int64_t timestamp_ms, std::uint64_t seq) {
  return ObjectWriter("chat_message")
      .field("room", room)
      .field("userId", user_id)
      .field("username", username)
      .field("message", message)
      .field("timestamp", timestamp_ms)
      .field("seq", static_cast<std::int64_t>(seq))
      .finish();
}

std::string encode_app_event(std::string_view type, std::string_view room, std::string_view user_id,
                             std::string_view username, std::string_view fields,
                             std::int64_t timestamp_ms, std::optional<std::uint64_t> seq) {
  ObjectWriter writer(type);
  writer.field("room", room)
      .field("userId", user_id)
      .field("username", username)
      .field("timestamp", timestamp_ms);
  if (seq) writer.field("seq", static_cast<std::int64_t>(*seq));
  // `fields` is an object's text, "{}" at least: its members follow the server's.
  if (fields.size() > 2) writer.members(fields.substr(1, fields.size() - 2));
  return writer.finish();
}

std::string encode_direct_message(std::string_view from, std::string_view username,
                                  std::string_view to, std::string_view message,
                                  std::int64_t timestamp_ms, std::uint64_t seq) {
  return ObjectWriter("direct_message")
      .field("from", from)
      .field("username", username)
      .field("to", to)
      .field("message", message)
      .field("timestamp", timestamp_ms)
      .field("seq", static_cast<std::int64_t>(seq))
      .finish();
}

namespace {
// An ack: the message `id` is stored as `seq` of what `subject` names ("room", or "to" for a
// direct message's conversation).
std::string encode_ack_about(std::string_view subject, std::string_view value, std::string_view id,
                             std::uint64_t seq, std::string_view ref) {
  return ObjectWriter("ack")
      .field(subject, value)
      .field("id", id)
      .field("seq", static_cast<std::int64_t>(seq))
      .optional("ref", ref)
      .finish();
}
}  // namespace

std::string encode_direct_ack(std::string_view to, std::string_view id, std::uint64_t seq,
                              std::string_view ref) {
  return encode_ack_about("to", to, id, seq, ref);
}

namespace {
// An error about one request among others in flight: names what it was about (`subject`:
// "room" or "to") and the request's `id`, if it had one, so the client can tell which.
std::string encode_error_about(std::string_view code, std::string_view message,
                               std::string_view subject, std::string_view value,
                               std::string_view id, std::string_view ref,
                               std::optional<std::chrono::milliseconds> retry_after) {
  return ObjectWriter("error")
      .field("message", message)
      .field("code", code)
      .field(subject, value)
      .optional("id", id)
      .optional("ref", ref)
      .optional("retryAfterMs", retry_after)
      .finish();
}
}  // namespace

std::string encode_direct_error(std::string_view code, std::string_view message,
                                std::string_view to, std::string_view id, std::string_view ref,
                                std::optional<std::chrono::milliseconds> retry_after) {
  return encode_error_about(code, message, "to", to, id, ref, retry_after);
}

std::string encode_typing(bool started, std::string_view room, std::string_view user_id,
                          std::string_view username) {
  return ObjectWriter(started ? "typing_start" : "typing_stop")
      .field("room", room)
      .field("userId", user_id)
      .field("username", username)
      .finish();
}

std::string encode_error(std::string_view code, std::string_view message, std::string_view field,
                         std::string_view ref,
                         std::optional<std::chrono::milliseconds> retry_after) {
  return ObjectWriter("error")
      .field("message", message)
      .field("code", code)
      .optional("field", field)
      .optional("ref", ref)
      .optional("retryAfterMs", retry_after)
      .finish();
}

std::string encode_message_error(std::string_view code, std::string_view message,
                                 std::string_view room, std::string_view id, std::string_view ref,
                                 std::optional<std::chrono::milliseconds> retry_after) {
  return encode_error_about(code, message, "room", room, id, ref, retry_after);
}

std::string encode_ack(std::string_view room, std::string_view id, std::uint64_t seq,
                       std::string_view ref) {
  return encode_ack_about("room", room, id, seq, ref);
}

std::string encode_token_refreshed(std::optional<std::int64_t> expires_at_ms,
                                   std::string_view ref) {
  ObjectWriter writer("token_refreshed");
  if (expires_at_ms) writer.field("expiresAt", *expires_at_ms);
  return writer.optional("ref", ref).finish();
}

std::string encode_history_page(std::string_view room, std::uint64_t last_seq,
                                const std::vector<std::string>& messages) {
  std::string out = "{\"room\":";
  append_quoted(out, room);
  out += ",\"last_seq\":";
  out += std::to_string(last_seq);
  out += ",\"messages\":[";
  for (std::size_t i = 0; i < messages.size(); ++i) {
    if (i > 0) out += ',';
    out += messages[i];
  }
  out += "]}";
  return out;
}

namespace {

// A JSON array of documents given as text, spliced in as they are.
template <typename Texts>
std::string json_array(const Texts& documents) {
  std::size_t bytes = 2;
  for (const auto& m : documents) bytes += m.size() + 1;
  std::string list;
  list.reserve(bytes);
  list += '[';
  for (const auto& m : documents) {
    if (list.size() > 1) list += ',';
    list += m;
  }
  list += ']';
  return list;
}

}  // namespace

std::string encode_message_batch(std::string_view room, const std::vector<std::string>& messages) {
  return ObjectWriter("message_batch")
      .field("room", room)
      .raw("messages", json_array(messages))
      .finish();
}

std::string encode_history(std::string_view room, const std::vector<std::string_view>& messages,
                           std::optional<bool> recovered) {
  const std::string list = json_array(messages);
  ObjectWriter writer("history");
  writer.field("room", room).raw("messages", list);
  if (recovered) writer.raw("recovered", *recovered ? "true" : "false");
  return writer.finish();
}

std::string encode_joined(std::string_view room, std::string_view ref, std::uint64_t last_seq,
                          const std::vector<UserEntry>& users,
                          const std::vector<std::string_view>& messages,
                          std::optional<bool> recovered) {
  ObjectWriter writer("joined");
  writer.field("room", room)
      .field("ref", ref)
      .field("lastSeq", static_cast<std::int64_t>(last_seq))
      .raw("users", users_array(users))
      .raw("messages", json_array(messages));
  if (recovered) writer.raw("recovered", *recovered ? "true" : "false");
  return writer.finish();
}

std::string encode_direct_history(std::string_view with, std::uint64_t last_seq,
                                  const std::vector<std::string_view>& messages,
                                  std::optional<bool> recovered, std::string_view ref) {
  ObjectWriter writer("direct_history");
  writer.field("with", with)
      .field("lastSeq", static_cast<std::int64_t>(last_seq))
      .raw("messages", json_array(messages));
  if (recovered) writer.raw("recovered", *recovered ? "true" : "false");
  return writer.optional("ref", ref).finish();
}

std::string encode_conversations(const std::vector<ConversationEntry>& conversations,
                                 std::string_view ref) {
  std::string list = "[";
  for (const ConversationEntry& c : conversations) {
    if (list.size() > 1) list += ',';
    list += "{\"with\":";
    append_quoted(list, c.with);
    if (!c.username.empty()) {
      list += ",\"username\":";
      append_quoted(list, c.username);
    }
    list += ",\"lastSeq\":" + std::to_string(c.last_seq);
    list += ",\"lastTimestamp\":" + std::to_string(c.last_timestamp_ms) + "}";
  }
  list += ']';
  return ObjectWriter("conversations").raw("conversations", list).optional("ref", ref).finish();
}

}  // namespace roomcast::chat
