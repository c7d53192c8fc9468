// Server-sent events and long-polling (docs/api.md): which requests open a room's event stream,
// and the bytes of one (the transport, net/, owns the stream's socket); and the long-poll,
// answered when the room's Hub has something after `since` or the wait ends.
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <mutex>

#include "http/credentials.h"
#include "http/service.h"

namespace roomcast::http {
namespace {

// 405 for a stream or a poll asked with another method than GET.
Response only_get(const Request& request, std::string_view message) {
  auto res =
      json_error(request, beast_http::status::method_not_allowed, "method_not_allowed", message);
  res.set(beast_http::field::allow, "GET");
  return res;
}

}  // namespace

std::optional<std::variant<EventStream, Response>> Service::event_stream(
    const Request& request) const {
  std::string_view target(request.target().data(), request.target().size());
  const auto question = target.find('?');
  const std::string_view path = target.substr(0, question);
  const std::string_view query =
      question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
  if (path == "/api/stats/stream") {
    // The admin page's live figures: the server API's, so its key (an operator's, not a
    // user's token), and no more than the figures of /api/stats, which are public anyway.
    if (auto refusal = refuse_api_key(request)) return std::move(*refusal);
    if (request.method() != beast_http::verb::get) return only_get(request, "Use GET");
    EventStream stats;
    stats.stats = true;
    return stats;
  }
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
    return only_get(request, "Use GET (an EventSource)");
  }
  auto authorized = authorize_room(request, encoded_room, "event stream");
  if (auto* refusal = std::get_if<Response>(&authorized)) return std::move(*refusal);
  auto& [room, identity] = std::get<AuthorizedRoom>(authorized);
  EventStream stream;
  stream.room = std::move(room);
  if (identity) {
    stream.user_id = identity->user_id;
    stream.expires_at_unix_s = identity->expires_at_unix_s;
  }
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

std::string event_stream_close(std::uint16_t code, std::string_view reason) {
  boost::json::object data;
  data["code"] = code;
  data["reason"] = reason;
  return "event: close\ndata: " + boost::json::serialize(data) + "\n\n";
}

std::string Service::stats_event() const {
  std::string event = "event: stats\ndata: ";
  event += metrics::render_json(snapshot_());  // one line: no line break in it
  event += "\n\n";
  return event;
}

namespace {

// Long-polls one user may have waiting at once, and the node in all: each holds a connection
// and a waiter in a Hub.
constexpr std::size_t kMaxPollsPerUser = 4;
constexpr std::size_t kMaxPolls = 10000;
constexpr std::chrono::milliseconds kDefaultPollTimeout{25000};
constexpr std::chrono::milliseconds kMaxPollTimeout{60000};

// "25s", "500ms" or a number of seconds; nullopt if not such a duration.
std::optional<std::chrono::milliseconds> parse_timeout(std::string_view text) {
  std::uint64_t scale = 1000;
  if (text.ends_with("ms")) {
    scale = 1;
    text.remove_suffix(2);
  } else if (text.ends_with("s")) {
    text.remove_suffix(1);
  }
  const auto value = parse_count(text);
  if (!value || *value > 3'600'000) return std::nullopt;
  return std::chrono::milliseconds(*value * scale);
}

}  // namespace

void Service::serve_poll(const Request& request, std::string_view encoded_room,
                         std::string_view query, Respond respond) const {
  const auto bad = [&](std::string_view message) {
    respond(json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                       message));
  };
  if (request.method() != beast_http::verb::get) return respond(only_get(request, "Use GET"));
  auto authorized = authorize_room(request, encoded_room, "poll");
  if (auto* refusal = std::get_if<Response>(&authorized)) return respond(std::move(*refusal));
  auto& [named_room, identity] = std::get<AuthorizedRoom>(authorized);
  std::string room = std::move(named_room);
  std::uint64_t since = 0;
  if (const auto text = query_value(query, "since")) {
    const auto value = parse_count(*text);
    if (!value) return bad("Parameter 'since' must be a non-negative integer (a seq)");
    since = *value;
  }
  std::chrono::milliseconds timeout = kDefaultPollTimeout;
  if (const auto text = query_value(query, "timeout")) {
    const auto value = parse_timeout(*text);
    if (!value || *value > kMaxPollTimeout || value->count() == 0) {
      return bad("Parameter 'timeout' must be a duration from 1ms to 60s (25s, 500ms)");
    }
    timeout = *value;
  }
  // Who the poll counts against: the token's user (all their polls together), else nobody but
  // the node's total.
  std::string user = identity ? identity->user_id : std::string();
  {
    std::lock_guard lock(polls_->mutex);
    if (polls_->total >= kMaxPolls) {
      return respond(json_error(request, beast_http::status::service_unavailable,
                                chat::error_code::kUnavailable,
                                "Too many long-polls wait on this server; try again later"));
    }
    if (!user.empty() && polls_->by_user[user] >= kMaxPollsPerUser) {
      return respond(json_error(request, beast_http::status::too_many_requests,
                                chat::error_code::kRateLimited,
                                "At most " + std::to_string(kMaxPollsPerUser) +
                                    " long-polls of one user may wait at once"));
    }
    ++polls_->total;
    if (!user.empty()) ++polls_->by_user[user];
  }
  PollCounts* counts = polls_.get();
  api_->poll(room, since, timeout,
             [head = request_head(request), room, user = std::move(user), counts,
              respond = std::move(respond)](chat::PollResult result) {
               {
                 std::lock_guard lock(counts->mutex);
                 --counts->total;
                 if (!user.empty()) {
                   const auto it = counts->by_user.find(user);
                   if (it != counts->by_user.end() && --it->second == 0) counts->by_user.erase(it);
                 }
               }
               if (!result.error_code.empty()) {
                 return respond(json_error(head, beast_http::status::service_unavailable,
                                           result.error_code, result.error));
               }
               auto res =
                   make_response(head, beast_http::status::ok, "application/json",
                                 chat::encode_history_page(room, result.last_seq, result.messages));
               res.set(beast_http::field::cache_control, "no-store");
               respond(std::move(res));
             });
}

}  // namespace roomcast::http
