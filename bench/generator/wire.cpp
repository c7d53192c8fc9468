#include "wire.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace roomcast::bench {
namespace {

constexpr std::string_view kTypePrefix = R"({"type":")";
// A server chat_message is {"type":"chat_message","room":..,"userId":..,"username":..,
// "message":"t=..." ...}; the marker below finds our stamp whatever came before it.
constexpr std::string_view kStampMarker = R"("message":"t=)";
constexpr std::string_view kWelcomeMarker = R"("message":"Welcome to )";

bool starts_with_type(std::string_view message, std::string_view type) {
  if (message.size() < kTypePrefix.size() + type.size() + 1) return false;
  if (message.substr(0, kTypePrefix.size()) != kTypePrefix) return false;
  const std::string_view rest = message.substr(kTypePrefix.size());
  return rest.substr(0, type.size()) == type && rest[type.size()] == '"';
}

}  // namespace

ServerMessageKind classify(std::string_view message) {
  if (starts_with_type(message, "chat_message")) return ServerMessageKind::kChat;
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

std::size_t write_chat_json(char* out, std::uint64_t sent_ns, std::uint32_t step,
                            std::size_t text_bytes) {
  constexpr std::string_view kHead = R"({"type":"chat_message","message":"t=)";
  char* p = out;
  std::memcpy(p, kHead.data(), kHead.size());
  p += kHead.size();
  char* const text_begin = p - 2;  // the text starts at "t="
  p = std::to_chars(p, p + 20, sent_ns).ptr;
  *p++ = ' ';
  *p++ = 's';
  *p++ = '=';
  p = std::to_chars(p, p + 10, step).ptr;
  const auto stamp_len = static_cast<std::size_t>(p - text_begin);
  const std::size_t target = std::min(text_bytes, kMaxChatText);
  if (target > stamp_len + 1) {
    *p++ = ' ';
    const std::size_t pad = target - stamp_len - 1;
    std::memset(p, 'x', pad);
    p += pad;
  }
  *p++ = '"';
  *p++ = '}';
  return static_cast<std::size_t>(p - out);
}

std::string join_json(std::string_view room, std::string_view username, bool batch) {
  std::string out;
  out.reserve(64 + room.size() + username.size());
  out += R"({"type":"join_room","room":")";
  out += room;
  out += R"(","username":")";
  out += username;
  out += batch ? R"(","batch":true})" : R"("})";
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
