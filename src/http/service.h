// HttpService: every plain HTTP answer roomcast gives — the web client's static files,
// /healthz, /metrics, /api/stats. It owns no socket: the transport parses a request,
// asks handle() for the response and writes it.
#pragma once

#include <boost/beast/http.hpp>
#include <filesystem>
#include <functional>
#include <string>

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
};

// Thread-safe: handle() only reads its options and calls the snapshot function, which
// must itself be safe to call from any worker.
class Service {
 public:
  using SnapshotFn = std::function<metrics::Snapshot()>;

  Service(ServiceOptions options, SnapshotFn snapshot);

  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // The response to `request`; keep-alive and version follow the request.
  Response handle(const Request& request) const;

  // A plain-text error response (used by the transport too, e.g. for a bad upgrade).
  static Response error(const Request& request, beast_http::status status,
                        std::string_view message);

 private:
  Response serve_static(const Request& request, std::string_view target) const;

  ServiceOptions options_;
  std::filesystem::path canonical_root_;
  SnapshotFn snapshot_;
};

// Decodes %XX escapes of a URL path; returns false for a malformed escape or a NUL byte.
bool percent_decode(std::string_view in, std::string& out);

// The Content-Type for a file name, by extension; application/octet-stream if unknown.
std::string_view content_type_for(const std::filesystem::path& file);

}  // namespace roomcast::http
