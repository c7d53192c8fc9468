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
};

// Thread-safe: handle() only reads its options and calls the snapshot and history
// functions, which must themselves be safe to call from any worker.
class Service {
 public:
  using SnapshotFn = std::function<metrics::Snapshot()>;
  // A room's history (chat::Hub::history); empty: the history API answers 404.
  using HistoryFn = std::function<std::variant<chat::HistoryPage, chat::ProtocolError>(
      std::string_view room, std::optional<std::uint64_t> since, std::size_t limit)>;

  Service(ServiceOptions options, SnapshotFn snapshot, HistoryFn history = {});

  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // The response to `request`; keep-alive and version follow the request.
  Response handle(const Request& request) const;

  // A plain-text error response (used by the transport too, e.g. for a bad upgrade).
  static Response error(const Request& request, beast_http::status status,
                        std::string_view message);

 private:
  Response serve_static(const Request& request, std::string_view target) const;
  Response serve_history(const Request& request, std::string_view encoded_room,
                         std::string_view query) const;

  ServiceOptions options_;
  std::filesystem::path canonical_root_;
  SnapshotFn snapshot_;
  HistoryFn history_;
};

// Decodes %XX escapes of a URL path; returns false for a malformed escape or a NUL byte.
bool percent_decode(std::string_view in, std::string& out);

// The Content-Type for a file name, by extension; application/octet-stream if unknown.
std::string_view content_type_for(const std::filesystem::path& file);

}  // namespace roomcast::http
