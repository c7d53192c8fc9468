#include "chat/app_events.h"

#include <algorithm>
#include <array>
#include <charconv>

#include "base/duration.h"

namespace roomcast::chat {

namespace {

constexpr std::size_t kMaxTypeChars = 64;

bool is_type_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The N/WINDOW of a type's `rate=`, or the text of what is wrong with it.
std::variant<RatePolicy, std::string> parse_rate(std::string_view text) {
  const std::string usage = "rate '" + std::string(text) +
                            "' must be N/WINDOW, N events from 1 to " +
                            std::to_string(AppEvents::kMaxRateEvents) +
                            " per a WINDOW of more than 0 (rate=60/10s, rate=5/500ms)";
  const std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) return usage;
  const std::string_view count = text.substr(0, slash);
  std::uint32_t events = 0;
  const auto [end, ec] = std::from_chars(count.data(), count.data() + count.size(), events);
  if (count.empty() || ec != std::errc() || end != count.data() + count.size() || events == 0 ||
      events > AppEvents::kMaxRateEvents) {
    return usage;
  }
  std::chrono::milliseconds window{};
  if (!base::parse_duration(text.substr(slash + 1), window).empty() || window.count() <= 0) {
    return usage;
  }
  return RatePolicy{events, window};
}

}  // namespace

bool is_protocol_type(std::string_view type) {
  // Both directions: a client could otherwise make others receive what looks like the server.
  static constexpr std::array<std::string_view, 16> kTypes = {"join_room",
                                                              "leave_room",
                                                              "chat_message",
                                                              "typing_start",
                                                              "typing_stop",
                                                              "refresh",
                                                              "direct_message",
                                                              "message_batch",
                                                              "connection_established",
                                                              "system_message",
                                                              "user_list",
                                                              "error",
                                                              "ack",
                                                              "history",
                                                              "token_refreshed",
                                                              "binary"};
  return std::find(kTypes.begin(), kTypes.end(), type) != kTypes.end();
}

std::variant<AppEvents, std::string> AppEvents::parse(std::string_view spec) {
  AppEvents events;
  std::string_view rest = spec;
  while (!trim(rest).empty()) {
    const std::size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;  // "a,,b" or a trailing comma
    const std::size_t colon = item.find(':');
    const std::string_view type = trim(item.substr(0, colon));
    if (type.empty() || type.size() > kMaxTypeChars ||
        !std::all_of(type.begin(), type.end(), is_type_char)) {
      return "event type '" + std::string(type) + "' must be 1 to " +
             std::to_string(kMaxTypeChars) + " of A-Z a-z 0-9 _ - .";
    }
    if (is_protocol_type(type)) {
      // Appended: GCC 12 at -O3 takes "'" + std::string(...) for an overlapping copy (-Wrestrict).
      return std::string("'").append(type).append(
          "' is a message type of the chat protocol, not an app event");
    }
    if (events.types_.contains(type)) {
      return "event type '" + std::string(type) + "' is listed twice";
    }
    AppEventType treatment;
    bool saw_storage = false;
    bool saw_echo = false;
    std::string_view options =
        colon == std::string_view::npos ? std::string_view() : item.substr(colon + 1);
    while (colon != std::string_view::npos) {
      const std::size_t next = options.find(':');
      const std::string_view option = trim(options.substr(0, next));
      if (option.starts_with("rate=")) {
        if (treatment.rate) {
          return "event type '" + std::string(type) + "': option 'rate' is given twice";
        }
        auto rate = parse_rate(option.substr(5));
        if (auto* error = std::get_if<std::string>(&rate)) {
          return "event type '" + std::string(type) + "': " + *error;
        }
        treatment.rate = std::get<RatePolicy>(rate);
        if (next == std::string_view::npos) break;
        options.remove_prefix(next + 1);
        continue;
      }
      const bool storage = option == "durable" || option == "ephemeral";
      const bool echo = option == "echo" || option == "no-echo";
      if (option == "conflate") {
        treatment.conflate = true;
        if (next == std::string_view::npos) break;
        options.remove_prefix(next + 1);
        continue;
      }
      if (!storage && !echo) {
        return "event type '" + std::string(type) + "': unknown option '" + std::string(option) +
               "' (durable, ephemeral, echo, no-echo, conflate, rate=N/WINDOW)";
      }
      if ((storage && saw_storage) || (echo && saw_echo)) {
        return "event type '" + std::string(type) + "': option '" + std::string(option) +
               "' contradicts or repeats an earlier one";
      }
      if (storage) {
        saw_storage = true;
        treatment.durable = option == "durable";
      } else {
        saw_echo = true;
        treatment.echo = option == "echo";
      }
      if (next == std::string_view::npos) break;
      options.remove_prefix(next + 1);
    }
    if (treatment.durable && treatment.conflate) {
      return "event type '" + std::string(type) +
             "': a durable type is kept whole in history; conflate is for ephemeral ones";
    }
    events.types_.emplace(std::string(type), treatment);
  }
  return events;
}

std::string AppEvents::describe() const {
  std::string out;
  for (const auto& [type, treatment] : types_) {
    if (!out.empty()) out += ',';
    out += type;
    out += treatment.durable ? ":durable" : ":ephemeral";
    out += treatment.echo ? ":echo" : ":no-echo";
    if (treatment.conflate) out += ":conflate";
    if (treatment.rate) {
      out += ":rate=" + std::to_string(treatment.rate->max_events) + "/" +
             base::format_duration(treatment.rate->window);
    }
  }
  return out;
}

}  // namespace roomcast::chat
