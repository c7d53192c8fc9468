#include "wire.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

namespace roomcast::bench {
namespace {

constexpr std::string_view kTypePrefix = R"({"type":")";
// A server chat_message is {"type":"chat_message","room":..,"userId":..,"username":..,
// "message":"t=..." ...}, an app event has the sender's fields after the server's; the marker
// below finds our stamp, a string value starting "t=", whatever came before it (no name, room
// or id the generator or the server writes starts so).
constexpr std::string_view kStampMarker = R"(":"t=)";
constexpr std::string_view kWelcomeMarker = R"("message":"Welcome to )";

bool starts_with_type(std::string_view message, std::string_view type) {
  if (message.size() < kTypePrefix.size() + type.size() + 1) return false;
  if (message.substr(0, kTypePrefix.size()) != kTypePrefix) return false;
  const std::string_view rest = message.substr(kTypePrefix.size());
  return rest.substr(0, type.size()) == type && rest[type.size()] == '"';
}

char* append(char* p, std::string_view text) {
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

// Writes the text "t=<ns> s=<step>", padded with " xxx..." to `text_bytes` characters when
// that is longer; returns the end.
char* write_stamp_text(char* p, std::uint64_t sent_ns, std::uint32_t step, std::size_t text_bytes) {
  char* const text_begin = p;
  p = append(p, "t=");
  p = std::to_chars(p, p + 20, sent_ns).ptr;
  p = append(p, " s=");
  p = std::to_chars(p, p + 10, step).ptr;
  const auto stamp_len = static_cast<std::size_t>(p - text_begin);
  const std::size_t target = std::min(text_bytes, kMaxChatText);
  if (target > stamp_len + 1) {
    *p++ = ' ';
    const std::size_t pad = target - stamp_len - 1;
    std::memset(p, 'x', pad);
    p += pad;
  }
  return p;
}

// {"type":"<type>","room":"<room>", the head of every app event the generator writes.
char* write_event_head(char* p, std::string_view type, std::string_view room) {
  p = append(p, kTypePrefix);
  p = append(p, type);
  p = append(p, R"(","room":")");
  p = append(p, room);
  return append(p, R"(",)");
}

void put_le(char* p, std::uint64_t value, std::size_t bytes) {
  for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<char>((value >> (8 * i)) & 0xFF);
}

std::uint64_t get_le(const char* p, std::size_t bytes) {
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < bytes; ++i) {
    value |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  }
  return value;
}

}  // namespace

ServerMessageKind classify(std::string_view message, std::string_view event_type) {
  if (starts_with_type(message, "chat_message")) return ServerMessageKind::kChat;
  if (!event_type.empty() && starts_with_type(message, event_type)) {
    return ServerMessageKind::kEvent;
  }
  if (starts_with_type(message, "message_batch")) return ServerMessageKind::kBatch;
  if (starts_with_type(message, "system_message")) {
    return message.find(kWelcomeMarker) != std::string_view::npos ? ServerMessageKind::kWelcome
                                                                  : ServerMessageKind::kOther;
  }
  if (starts_with_type(message, "connection_established")) {
    return ServerMessageKind::kConnectionEstablished;
  }
  if (starts_with_type(message, "user_list")) return ServerMessageKind::kUserList;
  if (starts_with_type(message, "error")) return ServerMessageKind::kError;
  return ServerMessageKind::kOther;
}

std::size_t count_users(std::string_view user_list) {
  constexpr std::string_view kKey = R"("username":)";
  std::size_t count = 0;
  for (auto at = user_list.find(kKey); at != std::string_view::npos;
       at = user_list.find(kKey, at + kKey.size())) {
    ++count;
  }
  return count;
}

std::optional<ChatStamp> find_stamp(std::string_view chat_message, std::size_t* end_offset) {
  // '=' is rare in a server chat_message (JSON has none of its own), so scanning for it
  // and checking the marker behind it is much cheaper than a substring search that stops at
  // every '"'. This is the generator's per-delivery hot spot.
  const char* begin = chat_message.data();
  const char* end = begin + chat_message.size();
  const char* p = nullptr;
  for (const char* at = begin + kStampMarker.size() - 1; at < end; ++at) {
    at = static_cast<const char*>(std::memchr(at, '=', static_cast<std::size_t>(end - at)));
    if (at == nullptr) return std::nullopt;
    const char* marker = at + 1 - kStampMarker.size();
    if (marker >= begin && std::string_view(marker, kStampMarker.size()) == kStampMarker) {
      p = at + 1;
      break;
    }
  }
  if (p == nullptr) return std::nullopt;
  ChatStamp stamp;
  auto sent = std::from_chars(p, end, stamp.sent_ns);
  if (sent.ec != std::errc() || end - sent.ptr < 3 || sent.ptr[0] != ' ' || sent.ptr[1] != 's' ||
      sent.ptr[2] != '=') {
    return std::nullopt;
  }
  auto step = std::from_chars(sent.ptr + 3, end, stamp.step);
  if (step.ec != std::errc()) return std::nullopt;
  if (end_offset != nullptr) *end_offset = static_cast<std::size_t>(step.ptr - begin);
  return stamp;
}

namespace {

// `"}` closing the text and the message, or `","id":"<ns>"}` before that.
char* close_text(char* p, std::uint64_t sent_ns, bool with_id) {
  if (with_id) {
    p = append(p, R"(","id":")");
    p = std::to_chars(p, p + 24, sent_ns).ptr;
  }
  return append(p, R"("})");
}

}  // namespace

std::size_t write_chat_json(char* out, std::uint64_t sent_ns, std::uint32_t step,
                            std::size_t text_bytes, bool with_id) {
  char* p = append(out, R"({"type":"chat_message","message":")");
  p = write_stamp_text(p, sent_ns, step, text_bytes);
  p = close_text(p, sent_ns, with_id);
  return static_cast<std::size_t>(p - out);
}

std::size_t write_event_json(char* out, std::string_view type, std::string_view room,
                             std::uint64_t sent_ns, std::uint32_t step, std::size_t text_bytes,
                             bool with_id) {
  char* p = write_event_head(out, type, room);
  p = append(p, R"("message":")");
  p = write_stamp_text(p, sent_ns, step, text_bytes);
  p = close_text(p, sent_ns, with_id);
  return static_cast<std::size_t>(p - out);
}

std::size_t write_position_json(char* out, std::string_view type, std::string_view room,
                                const Position& position, std::uint64_t sent_ns,
                                std::uint32_t step) {
  char* p = write_event_head(out, type, room);
  p = append(p, R"("x":)");
  p = std::to_chars(p, p + 24, position.x).ptr;
  p = append(p, R"(,"y":)");
  p = std::to_chars(p, p + 24, position.y).ptr;
  p = append(p, R"(,"z":)");
  p = std::to_chars(p, p + 24, position.z).ptr;
  p = append(p, R"(,"stamp":")");
  p = write_stamp_text(p, sent_ns, step, 0);
  p = append(p, R"("})");
  return static_cast<std::size_t>(p - out);
}

std::size_t write_position_binary(char* out, const Position& position, std::uint64_t sent_ns,
                                  std::uint32_t step) {
  out[0] = static_cast<char>(kPositionUpdateType);
  std::size_t at = 1;
  for (const float value : {position.x, position.y, position.z}) {
    put_le(out + at, std::bit_cast<std::uint32_t>(value), 4);
    at += 4;
  }
  put_le(out + at, sent_ns, 8);
  put_le(out + at + 8, step, 4);
  return kStampedPositionBytes;
}

std::optional<ChatStamp> read_binary_stamp(std::string_view payload) {
  if (payload.size() != kStampedPositionBytes ||
      static_cast<std::uint8_t>(payload[0]) != kPositionUpdateType) {
    return std::nullopt;
  }
  ChatStamp stamp;
  stamp.sent_ns = get_le(payload.data() + kPositionUpdateBytes, 8);
  stamp.step = static_cast<std::uint32_t>(get_le(payload.data() + kPositionUpdateBytes + 8, 4));
  return stamp;
}

Position position_at(std::uint64_t k) {
  // Around the square's edge, about a quarter of a unit a step, with some height. An odd step,
  // so the JSON numbers have the digits of a physics engine's floats (up to 9), not 12.5.
  const auto along = static_cast<float>(k % 400) * 0.2471f;
  const float z = 1.5f + static_cast<float>(k % 7) * 0.125f;
  switch ((k / 400) % 4) {
    case 0:
      return {along, 0.0f, z};
    case 1:
      return {100.0f, along, z};
    case 2:
      return {100.0f - along, 100.0f, z};
    default:
      return {0.0f, 100.0f - along, z};
  }
}

std::string join_json(std::string_view room, std::string_view username, bool batch, bool binary) {
  std::string out;
  out.reserve(64 + room.size() + username.size());
  out += R"({"type":"join_room","room":")";
  out += room;
  out += R"(","username":")";
  out += username;
  out += '"';
  if (batch) out += R"(,"batch":true)";
  if (binary) out += R"(,"binary":true)";
  out += '}';
  return out;
}

std::string base64(const std::uint8_t* data, std::size_t len) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((len + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 3 <= len; i += 3) {
    const std::uint32_t v = (std::uint32_t{data[i]} << 16) | (std::uint32_t{data[i + 1]} << 8) |
                            std::uint32_t{data[i + 2]};
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (const std::size_t rest = len - i; rest > 0) {
    std::uint32_t v = std::uint32_t{data[i]} << 16;
    if (rest == 2) v |= std::uint32_t{data[i + 1]} << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += rest == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

}  // namespace roomcast::bench
