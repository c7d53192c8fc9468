// HttpService: every plain HTTP answer roomcast gives — the web client's static files,
// /healthz, /metrics, /api/stats, /api/rooms/{room}/messages. It owns no socket: the transport
// parses a request, asks handle() for the response and writes it.
#pragma once

#include <boost/beast/http.hpp>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <variant>

#include "chat/authenticator.h"
#include "chat/history_page.h"
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

  // Answers `request` through `respond`; keep-alive and version follow the request.
  // `respond` may outlive `request`.
  void handle(const Request& request, Respond respond) const;

  // Which endpoint handle() answers `request` with (the request-duration histogram's label).
  static metrics::HttpEndpoint endpoint_of(const Request& request);

  // A plain-text error response (used by the transport too, e.g. for a bad upgrade).
  static Response error(const Request& request, beast_http::status status,
                        std::string_view message);

 private:
  Response serve_static(const Request& request, std::string_view target) const;
  Response answer(const Request& request) const;  // everything but the history API
  void serve_history(const Request& request, std::string_view encoded_room, std::string_view query,
                     Respond respond) const;

  ServiceOptions options_;
  std::filesystem::path canonical_root_;
  SnapshotFn snapshot_;
  HistoryFn history_;
  HistoryAccess access_;
};

// Decodes %XX escapes of a URL path; returns false for a malformed escape or a NUL byte.
bool percent_decode(std::string_view in, std::string& out);

// The Content-Type for a file name, by extension; application/octet-stream if unknown.
std::string_view content_type_for(const std::filesystem::path& file);

}  // namespace roomcast::http
