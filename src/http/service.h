// HttpService: every plain HTTP answer roomcast gives — the web client's static files,
// /healthz, /metrics, /api/stats, /api/rooms/{room}/messages (GET reads, POST sends), the
// server API and long-polls. It owns no socket: the transport
// parses a request, asks handle() for the response and writes it.
#pragma once

#include <boost/beast/http.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "chat/authenticator.h"
#include "chat/cluster_control.h"
#include "chat/history_page.h"
#include "chat/hub.h"
#include "metrics/metrics.h"

namespace roomcast::http {

namespace beast_http = boost::beast::http;
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

struct ServiceOptions {
  // Directory of the browser client; empty disables static files.
  std::filesystem::path web_root;
  // Largest static file served (they are read whole into memory).
  std::uintmax_t max_static_file_bytes = 16u << 20;
  // GET /api/rooms/{room}/messages: `limit` defaults to this, and may be at most max.
  std::size_t history_page_default = 50;
  std::size_t history_page_max = 1000;
  // The server API's key (X-API-Key, docs/api.md); empty: the API answers 404.
  std::string api_key;
};

// Who may read a room's history over HTTP: whoever may join it over the WebSocket (the token
// from `Authorization: Bearer` or `?token=`, judged by check_credentials and
// chat::room_access).
struct HistoryAccess {
  // Verifies tokens; nullptr: no key configured, tokens are ignored. Must outlive the Service.
  const chat::Authenticator* authenticator = nullptr;
  // No token: 401 (as the WebSocket closes 4001).
  bool require_auth = false;
  // Room names are judged by the chat's rules before their access is.
  chat::ProtocolLimits limits;
};

// What the server API (docs/api.md) asks of the server, which implements it (net::Server):
// each call returns at once and answers through its callback exactly once, from any thread.
class ApiBackend {
 public:
  virtual ~ApiBackend() = default;
  // Publishes each message (chat::Hub::publish_from_server); `done` gets the results in the
  // same order once every one is answered.
  using PublishDone = std::function<void(std::vector<chat::ServerPublishResult>)>;
  virtual void publish(std::vector<chat::ServerPublication> publications,
                       PublishDone done) const = 0;
  // What a disconnect or an unsubscribe did: how many of this node's connections it closed
  // (or took out of the room), and in a cluster, to how many nodes it was sent.
  struct RemoveResult {
    std::size_t connections = 0;
    bool clustered = false;  // false: a single node, `nodes` is meaningless
    // Clustered: the nodes that got the command, this one included; nullopt: the cluster
    // could not be reached (this node acted, the others did not hear of it).
    std::optional<std::size_t> nodes;
  };
  using RemoveDone = std::function<void(RemoveResult)>;
  // Closes every connection of `user_id` (close_code::kDisconnected) on this node and, in a
  // cluster, sends the command to every other node, which does the same.
  virtual void disconnect(std::string user_id, std::string reason, RemoveDone done) const = 0;
  // Takes `user_id`'s connections out of `room`, here and (in a cluster) on every node.
  virtual void unsubscribe(std::string user_id, std::string room, std::string reason,
                           RemoveDone done) const = 0;
  // The nodes alive (chat::ClusterControl::list_nodes): `clustered` false on a single node;
  // `nodes` nullopt when the cluster cannot be reached.
  struct NodeList {
    bool clustered = false;
    std::optional<std::vector<chat::NodeInfo>> nodes;
  };
  using NodesDone = std::function<void(NodeList)>;
  virtual void nodes(NodesDone done) const = 0;
  // The rooms open on every worker of this node (one view per worker and room).
  using RoomsDone = std::function<void(std::vector<chat::RoomView>)>;
  virtual void rooms(RoomsDone done) const = 0;
  // Long-polls `room` (chat::Hub::poll) for at most `timeout`.
  virtual void poll(std::string room, std::uint64_t since, std::chrono::milliseconds timeout,
                    chat::PollDone done) const = 0;
  // Worker threads of this node.
  virtual unsigned threads() const = 0;
};

// A server-sent event stream the transport is to open (Service::event_stream): a room's, or
// (`stats`) the server's live figures, one `stats` event a second (Service::stats_event).
struct EventStream {
  std::string room;  // empty for the stats stream
  // Resume after this seq: Last-Event-ID, else ?since=; nullopt: from now on.
  std::optional<std::uint64_t> since;
  // The reader: its token's user (empty: anonymous) and when the token expires (Unix seconds;
  // 0: never), for chat::Hub::watch.
  std::string user_id;
  std::int64_t expires_at_unix_s = 0;
  bool stats = false;
};

// The bytes of an event stream (text/event-stream), which the transport writes as they are.
// The response head: 200, no length (the stream ends when the connection does).
std::string event_stream_head(const Request& request);
// One event for a server message (one JSON document on one line): `event:` its type, `id:` its
// seq when it has one (chat_message), `data:` the JSON as WebSocket clients get it.
std::string event_stream_event(std::string_view payload);
// The last event of a stream the server ends (the token expired, the backend disconnected
// the user, the server shuts down): `event: close`, `data: {"code":CODE,"reason":REASON}`,
// the WebSocket close's code and reason, so a page can tell why (and, for 4002 or 4003, call
// EventSource.close() rather than reconnect).
std::string event_stream_close(std::uint16_t code, std::string_view reason);
// A comment line: keeps proxies from closing an idle stream.
inline constexpr std::string_view kEventStreamKeepAlive = ": keep-alive\n\n";

// Thread-safe: handle() only reads its options and calls the snapshot and history
// functions, which must themselves be safe to call from any worker.
class Service {
 public:
  using SnapshotFn = std::function<metrics::Snapshot()>;
  // A room's history (chat::read_history_page, which answers through `done`, maybe later and
  // from another thread); empty: the history API answers 404.
  using HistoryFn = std::function<void(std::string_view room, std::optional<std::uint64_t> since,
                                       std::size_t limit, chat::HistoryDone done)>;
  // Takes the response: called once, at once, or (history read from a cluster's Redis)
  // later from another thread.
  using Respond = std::function<void(Response)>;

  Service(ServiceOptions options, SnapshotFn snapshot, HistoryFn history = {},
          HistoryAccess access = {});

  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Where the server API's requests go, and this node's name in /api/info; set once,
  // before the server starts serving (nullptr: the API answers 404).
  void set_api_backend(const ApiBackend* backend, std::string node_name) {
    api_ = backend;
    node_name_ = std::move(node_name);
  }

  // Answers `request` through `respond`; keep-alive and version follow the request.
  // `respond` may outlive `request`.
  void handle(const Request& request, Respond respond) const;

  // Which endpoint handle() answers `request` with (the request-duration histogram's label).
  static metrics::HttpEndpoint endpoint_of(const Request& request);
  // GET /api/rooms/{room}/events and GET /api/stats/stream: if `request` asks for a room's
  // server-sent events (authorised as a join of the room is) or for the live figures' stream
  // (the API key), the stream to open (the transport opens it) or the answer refusing it;
  // nullopt for any other request (handle() answers those).
  std::optional<std::variant<EventStream, Response>> event_stream(const Request& request) const;
  // The stats stream's event: `event: stats`, `data:` what GET /api/stats answers now. The
  // server makes it once a second, whatever the number of readers, and queues the same bytes
  // to each of them.
  std::string stats_event() const;

  // A plain-text error response (used by the transport too, e.g. for a bad upgrade).
  static Response error(const Request& request, beast_http::status status,
                        std::string_view message);

 private:
  Response serve_static(const Request& request, std::string_view target) const;
  Response answer(const Request& request) const;  // everything but the history API
  void serve_history(const Request& request, std::string_view encoded_room, std::string_view query,
                     Respond respond) const;
  // The room a request may use and who asks, judged as a join of it is (token, then room
  // claims), or the answer refusing it. `what` names the request in the log. With
  // `token_required`, a request without a verified token is refused even when the server
  // does not require one (an anonymous sender has no identity to send as).
  struct AuthorizedRoom {
    std::string room;
    std::optional<chat::Identity> identity;  // nullopt: anonymous
  };
  std::variant<AuthorizedRoom, Response> authorize_room(const Request& request,
                                                        std::string_view encoded_room,
                                                        std::string_view what,
                                                        bool token_required = false) const;
  // The server API's refusal of `request` for its key (404 when the API is off, 401 without
  // the key or with another one); nullopt if the key is right.
  std::optional<Response> refuse_api_key(const Request& request) const;
  // The server API (api.cpp): true if `path` is one of its endpoints (then it answered).
  bool serve_api(const Request& request, std::string_view path, std::string_view query,
                 Respond& respond) const;
  void api_publish(const Request& request, bool broadcast, Respond respond) const;
  void api_remove(const Request& request, bool whole_user, Respond respond) const;
  void api_rooms(const Request& request, std::string_view query,
                 std::optional<std::string> presence_of, Respond respond) const;
  void api_info(const Request& request, Respond respond) const;
  // POST /api/rooms/{room}/messages: a chat message sent as the token's user.
  void serve_send(const Request& request, std::string_view encoded_room, Respond respond) const;
  // GET /api/rooms/{room}/poll (long-polling, events.cpp).
  void serve_poll(const Request& request, std::string_view encoded_room, std::string_view query,
                  Respond respond) const;

  ServiceOptions options_;
  std::filesystem::path canonical_root_;
  SnapshotFn snapshot_;
  HistoryFn history_;
  HistoryAccess access_;
  const ApiBackend* api_ = nullptr;
  std::string node_name_;
  // Long-polls waiting now: in all, and per token user (anonymous polls count in all only).
  struct PollCounts {
    std::mutex mutex;
    std::size_t total = 0;
    std::map<std::string, std::size_t, std::less<>> by_user;
  };
  std::unique_ptr<PollCounts> polls_ = std::make_unique<PollCounts>();
};

// Helpers shared by the Service's answers.
// A response with the request's version and keep-alive; for HEAD, the body is dropped.
Response make_response(const Request& request, beast_http::status status,
                       std::string_view content_type, std::string body);
// {"type":"error","code":CODE,"message":MESSAGE}, not cached. With `retry_after` (a rate limit
// refused the request): also "retryAfterMs" in the body and a Retry-After header (seconds).
Response json_error(const Request& request, beast_http::status status, std::string_view code,
                    std::string_view message,
                    std::optional<std::chrono::milliseconds> retry_after = {});
// Sets Retry-After to `wait` in whole seconds, rounded up (the header has no finer unit).
void set_retry_after(Response& response, std::chrono::milliseconds wait);
// The value of `key` in a query string ("a=1&b=2"), undecoded; nullopt if absent.
std::optional<std::string_view> query_value(std::string_view query, std::string_view key);
// A non-negative decimal integer, digits only.
std::optional<std::uint64_t> parse_count(std::string_view text);
// What an answer given later needs of its request (the request may be gone by then).
Request request_head(const Request& request);

// Decodes %XX escapes of a URL path; returns false for a malformed escape or a NUL byte.
bool percent_decode(std::string_view in, std::string& out);

// The Content-Type for a file name, by extension; application/octet-stream if unknown.
std::string_view content_type_for(const std::filesystem::path& file);

}  // namespace roomcast::http
