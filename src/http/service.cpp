#include "http/service.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/json.hpp>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <system_error>

#include "http/credentials.h"

namespace roomcast::http {
namespace {

namespace fs = std::filesystem;

// Weak validator from size and modification time: cheap and changes on every edit.
std::string etag_for(std::uintmax_t size, fs::file_time_type mtime) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%jx-%llx\"", size,
                static_cast<unsigned long long>(mtime.time_since_epoch().count()));
  return buf;
}

// 401 with the challenge RFC 6750 asks for; `code` says whether a token was missing or bad.
Response unauthorized(const Request& request, std::string_view code, std::string_view message) {
  auto res = json_error(request, beast_http::status::unauthorized, code, message);
  res.set(beast_http::field::www_authenticate,
          code == chat::error_code::kInvalidToken ? "Bearer error=\"invalid_token\"" : "Bearer");
  return res;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Response make_response(const Request& request, beast_http::status status,
                       std::string_view content_type, std::string body) {
  Response res{status, request.version()};
  res.set(beast_http::field::server, "roomcast");
  res.set(beast_http::field::content_type, content_type);
  res.keep_alive(request.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  if (request.method() == beast_http::verb::head) res.body().clear();  // length stays
  return res;
}

Response json_error(const Request& request, beast_http::status status, std::string_view code,
                    std::string_view message,
                    std::optional<std::chrono::milliseconds> retry_after) {
  auto res = make_response(request, status, "application/json",
                           chat::encode_error(code, message, {}, {}, retry_after));
  res.set(beast_http::field::cache_control, "no-store");
  if (retry_after) set_retry_after(res, *retry_after);
  return res;
}

void set_retry_after(Response& response, std::chrono::milliseconds wait) {
  response.set(beast_http::field::retry_after,
               std::to_string(std::chrono::ceil<std::chrono::seconds>(wait).count()));
}

std::optional<std::string_view> query_value(std::string_view query, std::string_view key) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (pair.substr(0, eq) == key) {
      return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::optional<std::uint64_t> parse_count(std::string_view text) {
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

Request request_head(const Request& request) {
  Request head;
  head.method(request.method());
  head.version(request.version());
  head.keep_alive(request.keep_alive());
  return head;
}

bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  out.reserve(in.size());
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      const int hi = hex_value(in[i + 1]);
      const int lo = hex_value(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out += c;
  }
  return true;
}

std::string_view content_type_for(const fs::path& file) {
  static constexpr std::array<std::pair<std::string_view, std::string_view>, 16> kTypes{{
      {".html", "text/html; charset=utf-8"},
      {".htm", "text/html; charset=utf-8"},
      {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},
      {".json", "application/json"},
      {".map", "application/json"},
      {".ts", "text/plain; charset=utf-8"},  // .d.ts declarations, shown as text
      {".txt", "text/plain; charset=utf-8"},
      {".svg", "image/svg+xml"},
      {".png", "image/png"},
      {".jpg", "image/jpeg"},
      {".jpeg", "image/jpeg"},
      {".ico", "image/x-icon"},
      {".webmanifest", "application/manifest+json"},
      {".wasm", "application/wasm"},
  }};
  const std::string ext = file.extension().string();
  for (const auto& [e, type] : kTypes) {
    if (e == ext) return type;
  }
  return "application/octet-stream";
}

Service::Service(ServiceOptions options, SnapshotFn snapshot, HistoryFn history,
                 HistoryAccess access)
    : options_(std::move(options)),
      snapshot_(std::move(snapshot)),
      history_(std::move(history)),
      access_(std::move(access)) {
  if (!options_.web_root.empty()) {
    std::error_code ec;
    canonical_root_ = fs::canonical(options_.web_root, ec);
    if (ec) canonical_root_.clear();
  }
}

Response Service::error(const Request& request, beast_http::status status,
                        std::string_view message) {
  std::string body(message);
  body += '\n';
  return make_response(request, status, "text/plain; charset=utf-8", std::move(body));
}

metrics::HttpEndpoint Service::endpoint_of(const Request& request) {
  using metrics::HttpEndpoint;
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  // The server API's endpoints take POST as well; /api/stats and the room's own URLs do not.
  const bool room_url = path.starts_with("/api/rooms/");
  if (room_url && path.ends_with("/poll")) return HttpEndpoint::kPoll;
  if (path.starts_with("/api/") && path != "/api/stats" &&
      !(room_url && path.ends_with("/messages"))) {
    return HttpEndpoint::kApi;
  }
  if (request.method() != beast_http::verb::get && request.method() != beast_http::verb::head) {
    return HttpEndpoint::kOther;
  }
  if (path == "/healthz") return HttpEndpoint::kHealthz;
  if (path == "/metrics") return HttpEndpoint::kMetrics;
  if (path == "/api/stats") return HttpEndpoint::kStats;
  if (room_url && path.ends_with("/messages")) return HttpEndpoint::kHistory;
  return HttpEndpoint::kStatic;
}

void Service::handle(const Request& request, Respond respond) const {
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.starts_with("/api/")) {
    const auto question = target.find('?');
    const auto query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    if (serve_api(request, path, query, respond)) return;
  }
  constexpr std::string_view kRooms = "/api/rooms/";
  constexpr std::string_view kMessages = "/messages";
  constexpr std::string_view kPoll = "/poll";
  if (path.starts_with(kRooms) && path.ends_with(kPoll) &&
      path.size() > kRooms.size() + kPoll.size() && api_ != nullptr) {
    const auto room = path.substr(kRooms.size(), path.size() - kRooms.size() - kPoll.size());
    const auto question = target.find('?');
    const auto query =
        question == std::string_view::npos ? std::string_view() : target.substr(question + 1);
    if (room.find('/') == std::string_view::npos) {
      serve_poll(request, room, query, std::move(respond));
      return;
    }
  }
  const bool is_read =
      request.method() == beast_http::verb::get || request.method() == beast_http::verb::head;
  if (!is_read && api_ != nullptr && path.starts_with(kRooms) && path.ends_with(kMessages) &&
      path.size() > kRooms.size() + kMessages.size()) {
    const auto room = path.substr(kRooms.size(), path.size() - kRooms.size() - kMessages.size());
    if (room.find('/') == std::string_view::npos) {
      serve_send(request, room, std::move(respond));
      return;
    }
  }
  if (is_read && history_ && path.starts_with(kRooms) && path.ends_with(kMessages) &&
      path.size() > kRooms.size() + kMessages.size()) {
    const auto room = path.substr(kRooms.size(), path.size() - kRooms.size() - kMessages.size());
    const auto query_start = target.find('?');
    const auto query =
        query_start == std::string_view::npos ? std::string_view() : target.substr(query_start + 1);
    if (room.find('/') == std::string_view::npos) {
      serve_history(request, room, query, std::move(respond));
      return;
    }
  }
  respond(answer(request));
}

Response Service::answer(const Request& request) const {
  const bool is_get = request.method() == beast_http::verb::get;
  const bool is_head = request.method() == beast_http::verb::head;
  std::string_view target(request.target().data(), request.target().size());
  const std::string_view path = target.substr(0, target.find('?'));

  if (!is_get && !is_head) {
    auto res = error(request, beast_http::status::method_not_allowed,
                     "Method not allowed: roomcast answers GET and HEAD");
    res.set(beast_http::field::allow, "GET, HEAD");
    return res;
  }
  if (path == "/healthz") {
    // Readiness: a node that cannot reach Redis (cluster mode) or whose history store fails
    // cannot acknowledge messages. The one place health is composed.
    const metrics::Snapshot snapshot = snapshot_();
    const bool redis_down = snapshot.broker && !snapshot.broker->up;
    const bool storage_failing = snapshot.storage && !snapshot.storage->ok;
    boost::json::object body;
    body["status"] = redis_down || storage_failing ? "degraded" : "ok";
    if (snapshot.broker) body["redis"] = snapshot.broker->up ? "up" : "down";
    if (storage_failing) body["storage"] = "failing";
    // Why: the cluster's fixed words, or the store's failure (a node has one store).
    if (redis_down) body["reason"] = snapshot.broker->reason;
    if (storage_failing) body["reason"] = snapshot.storage->reason;
    auto res = make_response(request,
                             redis_down || storage_failing ? beast_http::status::service_unavailable
                                                           : beast_http::status::ok,
                             "application/json", boost::json::serialize(body));
    res.set(beast_http::field::cache_control, "no-store");
    return res;
  }
  if (path == "/metrics") {
    auto res = make_response(request, beast_http::status::ok, "text/plain; version=0.0.4",
                             metrics::render_prometheus(snapshot_()));
    res.set(beast_http::field::cache_control, "no-store");
    return res;
  }
  if (path == "/api/stats") {
    auto res = make_response(request, beast_http::status::ok, "application/json",
                             metrics::render_json(snapshot_()));
    res.set(beast_http::field::cache_control, "no-store");
    return res;
  }
  return serve_static(request, path);
}

std::variant<Service::AuthorizedRoom, Response> Service::authorize_room(
    const Request& request, std::string_view encoded_room, std::string_view what,
    bool token_required) const {
  // Credentials first: a client that may not read learns nothing else about the room.
  const bool require_auth = access_.require_auth || token_required;
  auto credentials = check_credentials(request, access_.authenticator, require_auth);
  if (credentials.verdict == Credentials::Verdict::kInvalid) {
    spdlog::info("{} request: invalid token: {}", what, credentials.failure);
    return unauthorized(request, chat::error_code::kInvalidToken, "Invalid token");
  }
  if (credentials.verdict != Credentials::Verdict::kVerified && require_auth) {
    // Missing; or sent to a server that verifies no tokens (no key configured).
    return unauthorized(request, chat::error_code::kAuthenticationRequired,
                        access_.authenticator == nullptr
                            ? "A token is required, and this server verifies no tokens"
                            : "A token is required (Authorization: Bearer, or ?token=)");
  }
  std::string decoded;
  if (!percent_decode(encoded_room, decoded)) {
    return json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                      "The room name is not a valid URL path");
  }
  // Access is judged on the name the room is read by (trimmed, as a join's is).
  auto checked = chat::check_room_name(decoded, access_.limits);
  if (auto* error = std::get_if<chat::ProtocolError>(&checked)) {
    return json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                      error->message);
  }
  AuthorizedRoom authorized{std::move(std::get<std::string>(checked)),
                            std::move(credentials.identity)};
  const auto& identity = authorized.identity;
  const auto* claims = identity && identity->rooms ? &*identity->rooms : nullptr;
  switch (chat::room_access(identity.has_value(), claims, require_auth, authorized.room)) {
    case chat::RoomAccess::kAllowed:
      break;
    case chat::RoomAccess::kAuthenticationRequired:
      return unauthorized(request, chat::error_code::kAuthenticationRequired,
                          "A token is required (Authorization: Bearer, or ?token=)");
    case chat::RoomAccess::kForbidden:
      return json_error(request, beast_http::status::forbidden, chat::error_code::kForbiddenRoom,
                        "Your token does not allow room '" + authorized.room + "'");
  }
  return authorized;
}

void Service::serve_history(const Request& request, std::string_view encoded_room,
                            std::string_view query, Respond respond) const {
  const auto bad = [&](std::string_view message) {
    respond(json_error(request, beast_http::status::bad_request, chat::error_code::kInvalidField,
                       message));
  };
  auto authorized = authorize_room(request, encoded_room, "history");
  if (auto* refusal = std::get_if<Response>(&authorized)) return respond(std::move(*refusal));
  const std::string room = std::move(std::get<AuthorizedRoom>(authorized).room);
  std::optional<std::uint64_t> since;
  if (const auto text = query_value(query, "since")) {
    since = parse_count(*text);
    if (!since) return bad("Parameter 'since' must be a non-negative integer (a seq)");
  }
  std::size_t limit = options_.history_page_default;
  if (const auto text = query_value(query, "limit")) {
    const auto value = parse_count(*text);
    if (!value || *value == 0 || *value > options_.history_page_max) {
      return bad("Parameter 'limit' must be an integer from 1 to " +
                 std::to_string(options_.history_page_max));
    }
    limit = *value;
  }
  // The answer may come after `request` is gone: keep what the response needs of it.
  history_(
      room, since, limit,
      [head = request_head(request), respond = std::move(respond)](chat::HistoryResult result) {
        if (const auto* error = std::get_if<chat::ProtocolError>(&result)) {
          const auto status = error->code == chat::error_code::kClusterUnavailable
                                  ? beast_http::status::service_unavailable
                                  : beast_http::status::bad_request;
          respond(json_error(head, status, error->code, error->message));
          return;
        }
        const auto& page = std::get<chat::HistoryPage>(result);
        auto res =
            make_response(head, beast_http::status::ok, "application/json",
                          chat::encode_history_page(page.room, page.last_seq, page.messages));
        res.set(beast_http::field::cache_control, "no-store");
        respond(std::move(res));
      });
}

Response Service::serve_static(const Request& request, std::string_view target) const {
  if (canonical_root_.empty()) {
    return error(request, beast_http::status::not_found, "Not found (no web root configured)");
  }
  std::string decoded;
  if (target.empty() || target.front() != '/' || !percent_decode(target, decoded)) {
    return error(request, beast_http::status::bad_request, "Malformed request path");
  }
  // Refuse any path that names a parent directory before touching the file system; the
  // canonical-prefix check below also catches symlinks that lead out of the root.
  const fs::path relative = fs::path(decoded).relative_path();
  for (const auto& part : relative) {
    if (part == "..") return error(request, beast_http::status::bad_request, "Malformed path");
  }
  if (decoded.find('\\') != std::string::npos) {
    return error(request, beast_http::status::bad_request, "Malformed request path");
  }

  std::error_code ec;
  fs::path file = fs::weakly_canonical(canonical_root_ / relative, ec);
  if (!ec && fs::is_directory(file, ec)) file /= "index.html";
  const auto [root_end, file_it] =
      std::mismatch(canonical_root_.begin(), canonical_root_.end(), file.begin(), file.end());
  if (ec || root_end != canonical_root_.end() || !fs::is_regular_file(file, ec)) {
    return error(request, beast_http::status::not_found, "Not found");
  }
  const auto size = fs::file_size(file, ec);
  const auto mtime = fs::last_write_time(file, ec);
  if (ec || size > options_.max_static_file_bytes) {
    return error(request, beast_http::status::not_found, "Not found");
  }

  const std::string etag = etag_for(size, mtime);
  if (auto inm = request.find(beast_http::field::if_none_match);
      inm != request.end() && inm->value() == etag) {
    Response res{beast_http::status::not_modified, request.version()};
    res.set(beast_http::field::server, "roomcast");
    res.set(beast_http::field::etag, etag);
    res.set(beast_http::field::cache_control, "no-cache");
    res.keep_alive(request.keep_alive());
    return res;
  }

  std::ifstream in(file, std::ios::binary);
  std::ostringstream contents;
  contents << in.rdbuf();
  if (!in) return error(request, beast_http::status::internal_server_error, "Cannot read file");
  auto res = make_response(request, beast_http::status::ok, content_type_for(file),
                           std::move(contents).str());
  // Revalidate every time (cheap with the ETag): a redeployed client is picked up at once.
  res.set(beast_http::field::cache_control, "no-cache");
  res.set(beast_http::field::etag, etag);
  res.set("X-Content-Type-Options", "nosniff");
  return res;
}

}  // namespace roomcast::http
