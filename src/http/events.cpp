// Server-sent events (docs/api.md): which requests open a room's event stream, and the bytes
// of one. The transport (net/) owns the stream's socket; this decides and formats.
#include <charconv>

#include "http/service.h"

namespace roomcast::http {

std::optional<std::variant<EventStream, Response>> Service::event_stream(
    const Request& request) const {
  std::string_view target(request.target().data(), request.target().size());
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  constexpr std::string_view kRooms = "/api/rooms/";
  constexpr std::string_view kEvents = "/events";
  if (!path.starts_with(kRooms) || !path.ends_with(kEvents) ||
      path.size() <= kRooms.size() + kEvents.size()) {
    return std::nullopt;
  }
  const auto encoded_room =
      path.substr(kRooms.size(), path.size() - kRooms.size() - kEvents.size());
  if (encoded_room.find('/') != std::string_view::npos) return std::nullopt;
  if (request.method() != beast_http::verb::get) {
    auto res = json_error(request, beast_http::status::method_not_allowed, "method_not_allowed",
                          "Use GET (an EventSource)");
    res.set(beast_http::field::allow, "GET");
    return res;
  }
  auto authorized = authorize_room(request, encoded_room, "event stream");
  if (auto* refusal = std::get_if<Response>(&authorized)) return std::move(*refusal);
  EventStream stream{std::move(std::get<std::string>(authorized)), std::nullopt};
  // The browser's EventSource sends Last-Event-ID when it reconnects: it wins over the
  // `since` the page's URL carries from the first connection.
  if (const auto last = request.find("Last-Event-ID"); last != request.end()) {
    stream.since = parse_count({last->value().data(), last->value().size()});
    if (!stream.since) {
      return json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                        "Header 'Last-Event-ID' must be a non-negative integer (a seq)");
    }
  } else if (const auto text = query_value(query, "since")) {
    stream.since = parse_count(*text);
    if (!stream.since) {
      return json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                        "Parameter 'since' must be a non-negative integer (a seq)");
    }
  }
  return stream;
}

std::string event_stream_head(const Request& request) {
  std::string head = request.version() == 10 ? "HTTP/1.0" : "HTTP/1.1";
  // No length and no chunking: the stream is the rest of the connection. X-Accel-Buffering
  // tells nginx not to hold events back; a first comment shows the stream is open.
  head +=
      " 200 OK\r\nServer: roomcast\r\nContent-Type: text/event-stream\r\n"
      "Cache-Control: no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n"
      ": roomcast\n\n";
  return head;
}

std::string event_stream_event(std::string_view payload) {
  // Our messages begin with their type and end a chat_message with its seq (chat/protocol);
  // inside a JSON string a quote is escaped, so ,"seq": found from the end is the field.
  constexpr std::string_view kTypeField = R"({"type":")";
  std::string_view type = "message";
  if (payload.starts_with(kTypeField)) {
    const auto end = payload.find('"', kTypeField.size());
    if (end != std::string_view::npos) {
      type = payload.substr(kTypeField.size(), end - kTypeField.size());
    }
  }
  std::string event;
  event.reserve(payload.size() + type.size() + 40);
  if (type == "chat_message") {
    constexpr std::string_view kSeqField = R"(,"seq":)";
    const auto at = payload.rfind(kSeqField);
    if (at != std::string_view::npos) {
      const char* first = payload.data() + at + kSeqField.size();
      std::uint64_t seq = 0;
      const auto [last, ec] = std::from_chars(first, payload.data() + payload.size(), seq);
      if (ec == std::errc() && last != first) {
        event += "id: ";
        event.append(first, last);
        event += '\n';
      }
    }
  }
  event += "event: ";
  event += type;
  event += "\ndata: ";
  event += payload;  // one line: JSON escapes every line break inside strings
  event += "\n\n";
  return event;
}

}  // namespace roomcast::http
