// The server API (docs/api.md): a backend, holding the API key, publishes into rooms, removes
// users and asks who is where. Requests are judged here (key, method, body); what they ask of
// the chat goes to the ApiBackend (net::Server), which answers later from a worker thread.
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <boost/json.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <unordered_set>

#include "base/build_info.h"
#include "http/service.h"

namespace roomcast::http {
namespace {

namespace json = boost::json;
using Status = beast_http::status;

// Error codes of the API itself; the chat's (chat::error_code) are used where they fit.
constexpr std::string_view kNotFound = "not_found";
constexpr std::string_view kApiKeyRequired = "api_key_required";
constexpr std::string_view kInvalidApiKey = "invalid_api_key";
constexpr std::string_view kMethodNotAllowed = "method_not_allowed";

// A broadcast names at most this many rooms: one request must not hold a worker long.
constexpr std::size_t kMaxBroadcastRooms = 100;
// RFC 6455 5.5: a close frame's payload is at most 125 bytes, 2 of them the code.
constexpr std::size_t kMaxReasonBytes = 123;
constexpr std::string_view kDefaultDisconnectReason = "Disconnected by the server";
constexpr std::string_view kDefaultUnsubscribeReason = "Removed from the room by the server";
// The server user's name when a publication names none.
constexpr std::string_view kDefaultServerName = "server";
constexpr std::size_t kRoomsPageDefault = 100;
constexpr std::size_t kRoomsPageMax = 1000;

// Whether `given` is the key. Compared as SHA-256 digests with CRYPTO_memcmp: the time taken
// depends on neither the key's bytes nor its length.
bool same_key(std::string_view given, std::string_view key) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> a{};
  std::array<unsigned char, EVP_MAX_MD_SIZE> b{};
  unsigned int a_size = 0;
  unsigned int b_size = 0;
  if (EVP_Digest(given.data(), given.size(), a.data(), &a_size, EVP_sha256(), nullptr) != 1 ||
      EVP_Digest(key.data(), key.size(), b.data(), &b_size, EVP_sha256(), nullptr) != 1) {
    return false;
  }
  return a_size == b_size && CRYPTO_memcmp(a.data(), b.data(), a_size) == 0;
}

Response json_answer(const Request& request, Status status, const json::object& body) {
  auto res = make_response(request, status, "application/json", json::serialize(body));
  res.set(beast_http::field::cache_control, "no-store");
  return res;
}

Response bad_request(const Request& request, std::string_view code, std::string_view message) {
  return json_error(request, Status::bad_request, code, message);
}

// The HTTP status a refused publication answers with: the store could not take it now (503),
// the sender's budget is spent (429), or the request is wrong (400).
Status status_of(std::string_view code) {
  if (code == chat::error_code::kClusterUnavailable || code == chat::error_code::kUnavailable) {
    return Status::service_unavailable;
  }
  if (code == chat::error_code::kDenied) return Status::forbidden;
  return code == chat::error_code::kRateLimited ? Status::too_many_requests : Status::bad_request;
}

// A JSON request body: an object of the `allowed` fields, or why not (a 400 answer).
struct Body {
  json::object fields;
  std::optional<Response> refusal;

  // Field `key` as a string: nullptr if absent or null; a refusal if another type.
  const json::string* string(const Request& request, std::string_view key) {
    const json::value* value = fields.if_contains(key);
    if (value == nullptr || value->is_null()) return nullptr;
    if (!value->is_string()) {
      refusal = bad_request(request, chat::error_code::kInvalidField,
                            "Field '" + std::string(key) + "' must be a string");
      return nullptr;
    }
    return &value->get_string();
  }
};

Body parse_body(const Request& request, std::initializer_list<std::string_view> allowed) {
  Body body;
  boost::system::error_code ec;
  json::parse_options options;
  options.max_depth = 8;  // the API's bodies are flat
  json::value value = json::parse(request.body(), ec, {}, options);
  if (ec || !value.is_object()) {
    body.refusal = bad_request(request, chat::error_code::kInvalidJson,
                               ec ? "The body is not JSON: " + ec.message()
                                  : std::string("The body must be a JSON object"));
    return body;
  }
  body.fields = std::move(value.as_object());
  for (const auto& field : body.fields) {
    if (std::find(allowed.begin(), allowed.end(), field.key()) == allowed.end()) {
      body.refusal = bad_request(request, chat::error_code::kInvalidField,
                                 "Unknown field '" + std::string(field.key()) + "'");
      return body;
    }
  }
  return body;
}

// A chat message's text and `id`, judged exactly as a client's chat_message is
// (decode_client_message): the message, or the protocol's error.
std::variant<chat::ChatMessage, chat::ProtocolError> check_message(
    std::string_view text, const json::string* id, const chat::ProtocolLimits& limits) {
  json::object message;
  message["type"] = "chat_message";
  message["message"] = text;
  if (id != nullptr) message["id"] = *id;
  auto decoded = chat::decode_client_message(json::serialize(message), limits);
  if (auto* error = std::get_if<chat::ProtocolError>(&decoded)) return std::move(*error);
  return std::get<chat::ChatMessage>(std::get<chat::ClientMessage>(std::move(decoded)));
}

// An idempotency key follows the rules of a chat_message's `id`.
bool valid_idempotency_key(const json::string& key, const chat::ProtocolLimits& limits) {
  return std::holds_alternative<chat::ChatMessage>(check_message("x", &key, limits));
}

// An app event for /api/publish: the `event` object with its room, as a member would send it
// (the Hub judges its type and size), or why it cannot be one.
std::variant<std::string, chat::ProtocolError> event_text(const json::value& event,
                                                          std::string_view room) {
  const auto refuse = [](std::string message) {
    return chat::ProtocolError{chat::error_code::kInvalidField, std::move(message)};
  };
  if (!event.is_object()) return refuse("Field 'event' must be an object");
  const json::object& fields = event.as_object();
  const json::value* type = fields.if_contains("type");
  if (type == nullptr || !type->is_string() || type->get_string().empty()) {
    return refuse("Field 'event' must have a 'type' (a string)");
  }
  for (const std::string_view reserved : {"room", "id", "userId", "username", "timestamp", "seq"}) {
    if (fields.contains(reserved)) {
      return refuse("Field 'event' may not set '" + std::string(reserved) +
                    "' (the server sets it; a retry names its 'idempotency_key')");
    }
  }
  json::object text = fields;
  text["room"] = room;
  return json::serialize(text);
}

// The room name a path segment names (percent-decoded, checked as a join's), or the refusal.
std::variant<std::string, Response> room_from_path(const Request& request, std::string_view encoded,
                                                   const chat::ProtocolLimits& limits) {
  std::string decoded;
  if (!percent_decode(encoded, decoded)) {
    return bad_request(request, chat::error_code::kInvalidField,
                       "The room name is not a valid URL path");
  }
  auto checked = chat::check_room_name(decoded, limits);
  if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
    return bad_request(request, error->code, error->message);
  }
  return std::get<std::string>(std::move(checked));
}

// A user id as the API names users: a token's subject, or an anonymous connection's id.
bool valid_user_id(std::string_view id) {
  return !id.empty() && id.size() <= chat::kMaxUserIdChars;
}

// One room as every worker sees it: each member connection once (records are shared, so
// a record seen by several workers is one connection).
struct MergedRoom {
  std::uint64_t last_seq = 0;
  std::vector<chat::MemberRef> members;
};

std::map<std::string, MergedRoom> merge(std::vector<chat::RoomView> views) {
  std::map<std::string, MergedRoom> rooms;
  std::map<std::string, std::unordered_set<const chat::MemberInfo*>> seen;
  for (chat::RoomView& view : views) {
    MergedRoom& room = rooms[view.name];
    auto& known = seen[view.name];
    room.last_seq = std::max(room.last_seq, view.last_seq);
    for (auto* list : {&view.local, &view.remote}) {
      for (chat::MemberRef& member : *list) {
        if (known.insert(member.get()).second) room.members.push_back(std::move(member));
      }
    }
  }
  return rooms;
}

// A node of GET /api/info's list. A node too old to report its figures has its name only.
json::object node_entry(const chat::NodeInfo& node, std::int64_t now_ms) {
  json::object entry;
  entry["node"] = node.node;
  if (node.version.empty()) return entry;
  entry["version"] = node.version;
  entry["commit"] = node.commit;
  entry["started_at"] = static_cast<double>(node.started_unix_ms) / 1000;
  entry["uptime_seconds"] =
      static_cast<double>(std::max<std::int64_t>(now_ms - node.started_unix_ms, 0)) / 1000;
  entry["connections"] = node.connections;
  entry["rooms"] = node.rooms;
  entry["threads"] = node.threads;
  return entry;
}

std::size_t distinct_users(const std::vector<chat::MemberRef>& members) {
  std::set<std::string_view> users;
  for (const auto& member : members) users.insert(member->user_id());
  return users.size();
}

}  // namespace

bool Service::serve_api(const Request& request, std::string_view path, std::string_view query,
                        Respond& respond) const {
  enum class Endpoint { kPublish, kBroadcast, kDisconnect, kUnsubscribe, kRooms, kPresence, kInfo };
  constexpr std::string_view kRoomsPrefix = "/api/rooms/";
  constexpr std::string_view kPresence = "/presence";
  std::optional<Endpoint> endpoint;
  std::string_view encoded_room;
  if (path == "/api/publish") {
    endpoint = Endpoint::kPublish;
  } else if (path == "/api/broadcast") {
    endpoint = Endpoint::kBroadcast;
  } else if (path == "/api/disconnect") {
    endpoint = Endpoint::kDisconnect;
  } else if (path == "/api/unsubscribe") {
    endpoint = Endpoint::kUnsubscribe;
  } else if (path == "/api/rooms") {
    endpoint = Endpoint::kRooms;
  } else if (path == "/api/info") {
    endpoint = Endpoint::kInfo;
  } else if (path.starts_with(kRoomsPrefix) && path.ends_with(kPresence) &&
             path.size() > kRoomsPrefix.size() + kPresence.size()) {
    encoded_room =
        path.substr(kRoomsPrefix.size(), path.size() - kRoomsPrefix.size() - kPresence.size());
    if (encoded_room.find('/') == std::string_view::npos) endpoint = Endpoint::kPresence;
  }
  if (!endpoint) return false;

  if (auto refusal = refuse_api_key(request)) {
    respond(std::move(*refusal));
    return true;
  }
  const bool reads = *endpoint == Endpoint::kRooms || *endpoint == Endpoint::kPresence ||
                     *endpoint == Endpoint::kInfo;
  const auto method = request.method();
  const bool method_ok = reads ? method == beast_http::verb::get || method == beast_http::verb::head
                               : method == beast_http::verb::post;
  if (!method_ok) {
    auto res = json_error(request, Status::method_not_allowed, kMethodNotAllowed,
                          reads ? "Use GET" : "Use POST with a JSON body");
    res.set(beast_http::field::allow, reads ? "GET, HEAD" : "POST");
    respond(std::move(res));
    return true;
  }
  switch (*endpoint) {
    case Endpoint::kPublish:
      api_publish(request, /*broadcast=*/false, std::move(respond));
      break;
    case Endpoint::kBroadcast:
      api_publish(request, /*broadcast=*/true, std::move(respond));
      break;
    case Endpoint::kDisconnect:
      api_remove(request, /*whole_user=*/true, std::move(respond));
      break;
    case Endpoint::kUnsubscribe:
      api_remove(request, /*whole_user=*/false, std::move(respond));
      break;
    case Endpoint::kRooms:
      api_rooms(request, query, std::nullopt, std::move(respond));
      break;
    case Endpoint::kPresence: {
      auto room = room_from_path(request, encoded_room, access_.limits);
      if (auto* refusal = std::get_if<Response>(&room)) {
        respond(std::move(*refusal));
        break;
      }
      api_rooms(request, query, std::get<std::string>(std::move(room)), std::move(respond));
      break;
    }
    case Endpoint::kInfo:
      api_info(request, std::move(respond));
      break;
  }
  return true;
}

std::optional<Response> Service::refuse_api_key(const Request& request) const {
  // No key, no API: a server that was not given one shows nothing of it.
  if (options_.api_key.empty() || api_ == nullptr) {
    return json_error(request, Status::not_found, kNotFound,
                      "Not found (the server API is off: no --api-key configured)");
  }
  const auto key = request.find("X-API-Key");
  if (key == request.end() || key->value().empty()) {
    return json_error(request, Status::unauthorized, kApiKeyRequired,
                      "The server API needs the API key in the X-API-Key header");
  }
  if (!same_key({key->value().data(), key->value().size()}, options_.api_key)) {
    return json_error(request, Status::unauthorized, kInvalidApiKey, "Invalid API key");
  }
  return std::nullopt;
}

void Service::api_publish(const Request& request, bool broadcast, Respond respond) const {
  const auto& limits = access_.limits;
  Body body = parse_body(
      request, {broadcast ? "rooms" : "room", "message", "event", "idempotency_key", "username"});
  if (body.refusal) return respond(std::move(*body.refusal));

  std::vector<std::string> rooms;
  if (broadcast) {
    const json::value* list = body.fields.if_contains("rooms");
    if (list == nullptr || !list->is_array() || list->as_array().empty() ||
        list->as_array().size() > kMaxBroadcastRooms) {
      return respond(bad_request(request, chat::error_code::kInvalidField,
                                 "Field 'rooms' must be an array of 1 to " +
                                     std::to_string(kMaxBroadcastRooms) + " room names"));
    }
    for (const json::value& item : list->as_array()) {
      if (!item.is_string()) {
        return respond(bad_request(request, chat::error_code::kInvalidField,
                                   "Field 'rooms' must hold room names (strings)"));
      }
      auto checked = chat::check_room_name(item.get_string(), limits);
      if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
        return respond(bad_request(request, error->code, error->message));
      }
      // Each room once: a room named twice would get the message twice.
      auto& name = std::get<std::string>(checked);
      if (std::find(rooms.begin(), rooms.end(), name) == rooms.end()) {
        rooms.push_back(std::move(name));
      }
    }
  } else {
    const json::string* room = body.string(request, "room");
    if (body.refusal) return respond(std::move(*body.refusal));
    if (room == nullptr) {
      return respond(
          bad_request(request, chat::error_code::kInvalidField, "Field 'room' is required"));
    }
    auto checked = chat::check_room_name(*room, limits);
    if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
      return respond(bad_request(request, error->code, error->message));
    }
    rooms.push_back(std::get<std::string>(std::move(checked)));
  }

  // A chat message's text, or an app event (judged by the Hub that publishes it).
  const json::string* text = body.string(request, "message");
  if (body.refusal) return respond(std::move(*body.refusal));
  const json::value* event = body.fields.if_contains("event");
  if ((text == nullptr) == (event == nullptr || event->is_null())) {
    return respond(bad_request(request, chat::error_code::kInvalidField,
                               "Exactly one of the fields 'message' and 'event' is required"));
  }
  std::string message;
  if (text != nullptr) {
    auto checked = check_message(*text, nullptr, limits);
    if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
      return respond(bad_request(request, error->code, error->message));
    }
    message = std::move(std::get<chat::ChatMessage>(checked).message);
  }
  const json::string* key = body.string(request, "idempotency_key");
  if (body.refusal) return respond(std::move(*body.refusal));
  if (key != nullptr && !valid_idempotency_key(*key, limits)) {
    return respond(bad_request(request, chat::error_code::kInvalidField,
                               "Field 'idempotency_key' must be a string of 1 to " +
                                   std::to_string(limits.max_id_chars) + " characters"));
  }
  const json::string* username = body.string(request, "username");
  if (body.refusal) return respond(std::move(*body.refusal));
  if (username != nullptr) {
    if (auto broken = chat::check_username(*username, limits)) {
      return respond(
          bad_request(request, chat::error_code::kInvalidField, "Field 'username': " + *broken));
    }
  }

  std::vector<chat::ServerPublication> publications;
  publications.reserve(rooms.size());
  for (const std::string& room : rooms) {
    chat::ServerPublication& publication = publications.emplace_back();
    publication.room = room;
    publication.username =
        username != nullptr ? std::string(*username) : std::string(kDefaultServerName);
    publication.idempotency_key = key != nullptr ? std::string(*key) : std::string();
    if (event == nullptr) {
      publication.message = message;
      continue;
    }
    auto text_of_event = event_text(*event, room);
    if (auto* error = std::get_if<chat::ProtocolError>(&text_of_event)) {
      return respond(bad_request(request, error->code, error->message));
    }
    publication.message = std::move(std::get<std::string>(text_of_event));
    publication.event = true;
  }
  api_->publish(std::move(publications), [head = request_head(request), rooms = std::move(rooms),
                                          broadcast, respond = std::move(respond)](
                                             std::vector<chat::ServerPublishResult> results) {
    if (!broadcast) {
      const auto& result = results.front();
      if (!result.error_code.empty()) {
        return respond(json_error(head, status_of(result.error_code), result.error_code,
                                  result.error, result.retry_after));
      }
      json::object answer;
      answer["room"] = rooms.front();
      if (result.seq != 0) answer["seq"] = result.seq;  // 0: an ephemeral event
      return respond(json_answer(head, Status::ok, answer));
    }
    json::array list;
    Status status = Status::ok;
    std::optional<std::chrono::milliseconds> wait;  // the longest refusal's
    for (std::size_t i = 0; i < results.size(); ++i) {
      json::object item;
      item["room"] = rooms[i];
      if (results[i].error_code.empty()) {
        if (results[i].seq != 0) item["seq"] = results[i].seq;
      } else {
        item["code"] = results[i].error_code;
        item["error"] = results[i].error;
        status = status_of(results[i].error_code);
      }
      if (const auto& after = results[i].retry_after) {
        item["retryAfterMs"] = after->count();
        wait = std::max(wait.value_or(*after), *after);
      }
      list.push_back(std::move(item));
    }
    json::object answer;
    answer["results"] = std::move(list);
    auto res = json_answer(head, status, answer);
    if (wait && status == Status::too_many_requests) set_retry_after(res, *wait);
    respond(std::move(res));
  });
}

void Service::api_remove(const Request& request, bool whole_user, Respond respond) const {
  Body body = whole_user ? parse_body(request, {"user", "reason"})
                         : parse_body(request, {"user", "room", "reason"});
  if (body.refusal) return respond(std::move(*body.refusal));
  const json::string* user = body.string(request, "user");
  if (body.refusal) return respond(std::move(*body.refusal));
  if (user == nullptr || !valid_user_id(*user)) {
    return respond(bad_request(request, chat::error_code::kInvalidField,
                               "Field 'user' must be a user id of 1 to " +
                                   std::to_string(chat::kMaxUserIdChars) + " characters"));
  }
  const json::string* reason = body.string(request, "reason");
  if (body.refusal) return respond(std::move(*body.refusal));
  if (reason != nullptr && (reason->empty() || reason->size() > kMaxReasonBytes)) {
    return respond(bad_request(
        request, chat::error_code::kInvalidField,
        "Field 'reason' must be a string of 1 to " + std::to_string(kMaxReasonBytes) + " bytes"));
  }
  std::string room;
  if (!whole_user) {
    const json::string* named = body.string(request, "room");
    if (body.refusal) return respond(std::move(*body.refusal));
    if (named == nullptr) {
      return respond(
          bad_request(request, chat::error_code::kInvalidField, "Field 'room' is required"));
    }
    auto checked = chat::check_room_name(*named, access_.limits);
    if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
      return respond(bad_request(request, error->code, error->message));
    }
    room = std::get<std::string>(std::move(checked));
  }
  std::string user_id(*user);
  auto answer = [head = request_head(request), user_id, room,
                 respond = std::move(respond)](ApiBackend::RemoveResult result) {
    json::object reply;
    Status status = Status::ok;
    if (result.clustered && !result.nodes) {
      // This node acted; the others did not hear of it. The command is idempotent: retry.
      status = Status::service_unavailable;
      reply["type"] = "error";
      reply["code"] = chat::error_code::kClusterUnavailable;
      reply["message"] =
          "Applied on this node only: Redis cannot be reached, so the other nodes were not "
          "told; retry";
    }
    reply["user"] = user_id;
    if (!room.empty()) reply["room"] = room;
    reply["connections"] = result.connections;  // this node's
    if (result.nodes) reply["nodes"] = *result.nodes;
    respond(json_answer(head, status, reply));
  };
  if (whole_user) {
    api_->disconnect(
        std::move(user_id),
        reason != nullptr ? std::string(*reason) : std::string(kDefaultDisconnectReason),
        std::move(answer));
  } else {
    api_->unsubscribe(
        std::move(user_id), std::move(room),
        reason != nullptr ? std::string(*reason) : std::string(kDefaultUnsubscribeReason),
        std::move(answer));
  }
}

void Service::api_rooms(const Request& request, std::string_view query,
                        std::optional<std::string> presence_of, Respond respond) const {
  std::size_t limit = kRoomsPageDefault;
  std::string after;
  if (!presence_of) {
    if (const auto text = query_value(query, "limit")) {
      const auto value = parse_count(*text);
      if (!value || *value == 0 || *value > kRoomsPageMax) {
        return respond(bad_request(
            request, chat::error_code::kInvalidField,
            "Parameter 'limit' must be an integer from 1 to " + std::to_string(kRoomsPageMax)));
      }
      limit = *value;
    }
    if (const auto text = query_value(query, "after"); text && !percent_decode(*text, after)) {
      return respond(bad_request(request, chat::error_code::kInvalidField,
                                 "Parameter 'after' is not a valid URL query value"));
    }
  }
  api_->rooms([head = request_head(request), presence_of = std::move(presence_of), limit,
               after = std::move(after),
               respond = std::move(respond)](std::vector<chat::RoomView> views) {
    const auto rooms = merge(std::move(views));
    if (presence_of) {
      // One entry per user, with how many connections they have in the room.
      std::map<std::string_view, std::pair<const chat::MemberInfo*, std::size_t>> users;
      std::size_t connections = 0;
      if (const auto it = rooms.find(*presence_of); it != rooms.end()) {
        for (const auto& member : it->second.members) {
          auto& entry = users[member->user_id()];
          if (entry.first == nullptr) entry.first = member.get();
          ++entry.second;
          ++connections;
        }
      }
      json::array members;
      for (const auto& [user_id, entry] : users) {
        json::object item;
        item["user_id"] = user_id;
        item["username"] = entry.first->username();
        item["connections"] = entry.second;
        members.push_back(std::move(item));
      }
      json::object body;
      body["room"] = *presence_of;
      body["members"] = std::move(members);
      body["connections"] = connections;
      return respond(json_answer(head, Status::ok, body));
    }
    json::array list;
    std::optional<std::string> next;
    for (auto it = rooms.upper_bound(after); it != rooms.end(); ++it) {
      if (it->second.members.empty()) continue;  // open only for a publication
      if (list.size() == limit) {
        next = list.back().as_object().at("room").as_string().c_str();
        break;
      }
      json::object item;
      item["room"] = it->first;
      item["users"] = distinct_users(it->second.members);
      item["connections"] = it->second.members.size();
      item["last_seq"] = it->second.last_seq;
      list.push_back(std::move(item));
    }
    json::object body;
    body["rooms"] = std::move(list);
    body["next"] = next ? json::value(*next) : json::value(nullptr);
    respond(json_answer(head, Status::ok, body));
  });
}

void Service::api_info(const Request& request, Respond respond) const {
  const metrics::Snapshot snapshot = snapshot_();
  const auto build = base::build_info();
  json::object body;
  body["version"] = build.version;
  body["commit"] = build.commit;
  body["node"] = node_name_;
  body["uptime_seconds"] = snapshot.uptime_seconds;
  body["threads"] = api_->threads();
  body["connections"] = snapshot.connections_active;
  body["rooms"] = snapshot.rooms;
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  // This node as the node list shows it, with its figures of now.
  chat::NodeInfo self;
  self.node = node_name_;
  self.version = build.version;
  self.commit = build.commit;
  self.started_unix_ms = now_ms - static_cast<std::int64_t>(snapshot.uptime_seconds * 1000);
  self.connections = snapshot.connections_active;
  self.rooms = snapshot.rooms;
  self.threads = api_->threads();
  api_->nodes([head = request_head(request), body = std::move(body), self = std::move(self), now_ms,
               respond = std::move(respond)](ApiBackend::NodeList list) mutable {
    std::vector<chat::NodeInfo> nodes;
    if (list.nodes) nodes = std::move(*list.nodes);
    // Its own entry in Redis is up to a heartbeat old (and missing while Redis is down).
    auto own = std::find_if(nodes.begin(), nodes.end(),
                            [&](const chat::NodeInfo& n) { return n.node == self.node; });
    if (own != nodes.end()) {
      *own = self;
    } else {
      nodes.push_back(self);
    }
    json::array entries;
    for (const chat::NodeInfo& node : nodes) entries.push_back(node_entry(node, now_ms));
    body["nodes"] = std::move(entries);
    // Cluster mode: false when Redis cannot be reached (the list has this node only).
    if (list.clustered) body["cluster_reachable"] = list.nodes.has_value();
    respond(json_answer(head, Status::ok, body));
  });
}

void Service::serve_send(const Request& request, std::string_view encoded_room,
                         Respond respond) const {
  if (request.method() != beast_http::verb::post) {
    auto res = json_error(request, Status::method_not_allowed, kMethodNotAllowed,
                          "Use GET to read the room's messages, POST to send one");
    res.set(beast_http::field::allow, "GET, HEAD, POST");
    return respond(std::move(res));
  }
  // As strictly as a WebSocket join of the room, and a token always: an anonymous WebSocket
  // user is its connection (a userId made for it, a budget of its own), and an HTTP request
  // has no connection to be.
  auto authorized = authorize_room(request, encoded_room, "send", /*token_required=*/true);
  if (auto* refusal = std::get_if<Response>(&authorized)) return respond(std::move(*refusal));
  auto& [room, identity] = std::get<AuthorizedRoom>(authorized);
  Body body = parse_body(request, {"message", "id"});
  if (body.refusal) return respond(std::move(*body.refusal));
  const json::string* text = body.string(request, "message");
  if (body.refusal) return respond(std::move(*body.refusal));
  if (text == nullptr) {
    return respond(
        bad_request(request, chat::error_code::kInvalidField, "Field 'message' is required"));
  }
  const json::string* id = body.string(request, "id");
  if (body.refusal) return respond(std::move(*body.refusal));
  auto checked = check_message(*text, id, access_.limits);
  if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
    return respond(bad_request(request, error->code, error->message));
  }
  auto& message = std::get<chat::ChatMessage>(checked);
  chat::ServerPublication publication;
  publication.room = room;
  publication.message = std::move(message.message);
  publication.username = identity->username;
  publication.idempotency_key = message.id.value_or("");
  publication.user_id = identity->user_id;
  std::vector<chat::ServerPublication> publications;
  publications.push_back(std::move(publication));
  api_->publish(std::move(publications),
                [head = request_head(request), room = room, id = std::move(message.id),
                 respond = std::move(respond)](std::vector<chat::ServerPublishResult> results) {
                  const auto& result = results.front();
                  if (!result.error_code.empty()) {
                    return respond(json_error(head, status_of(result.error_code), result.error_code,
                                              result.error, result.retry_after));
                  }
                  // What the WebSocket's ack says: the room, the seq, and the client's id.
                  json::object answer;
                  answer["room"] = room;
                  answer["seq"] = result.seq;
                  if (id) answer["id"] = *id;
                  respond(json_answer(head, Status::ok, answer));
                });
}

}  // namespace roomcast::http
