// HTTP POSTs to the backend, on the caller's io_context, each within a time limit:
// send_request (the publish hook) uses one connection per request (the backend sees a fresh,
// independent request each time; nothing to keep alive or to repair); HttpConnection (a
// webhook lane) keeps its connection open between requests while the backend allows it.
// Both speak TLS to an https:// target (HttpTarget::tls), through a BackendTls context.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "hooks/delivery.h"

namespace roomcast::hooks {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// What came of a request: the answer's status and body, or why there is none.
struct HttpAnswer {
  std::string error;  // empty: answered (any status)
  unsigned status = 0;
  std::string body;
};

// How roomcast checks an https:// backend: its certificate must chain to one of the system's
// CA certificates or, when `ca_file` is not empty, to one of that PEM file's (a private CA),
// and name the URL's host. TLS 1.2 at least. Throws std::runtime_error naming the file when
// it cannot be read as PEM certificates.
using BackendTls = boost::asio::ssl::context;
std::shared_ptr<BackendTls> make_backend_tls(const std::string& ca_file);

// A backend to POST to: where, and how to check it when it is https://.
struct Backend {
  HttpTarget target;
  std::shared_ptr<BackendTls> tls;  // null for http://
};

// The backend `url` names (an https:// one checked against `ca_file`'s CAs, or the system's
// when it is empty). Throws std::invalid_argument, the message starting with `flag`, when
// `url` is not one parse_http_url accepts or the CA file cannot be read.
Backend backend_of(std::string_view flag, const std::string& url, const std::string& ca_file);

// A connection to a backend: TCP, with TLS over it when the target is https://. A TLS
// session cannot be reused once closed, so reconnecting makes a fresh stream (reset).
class BackendStream {
 public:
  BackendStream(boost::asio::io_context& io, std::shared_ptr<BackendTls> tls);

  // Connects to `target` (resolving it with `resolver`) on a fresh stream whose deadline is
  // `timeout` from now, shakes hands if TLS, then calls `done` with the first error (and a
  // word on the step it came from), or none. `target` must outlive the call.
  void connect(boost::asio::ip::tcp::resolver& resolver, const HttpTarget& target,
               std::chrono::milliseconds timeout,
               std::function<void(const boost::beast::error_code&, std::string_view step)> done);
  // The TCP layer under the TLS one, if any: its deadline, its socket.
  boost::beast::tcp_stream& tcp();
  // Writes `request` on the connected stream, then reads the answer into `response` (through
  // `buffer`), and calls `done` with the first error and the step it came from ("sending",
  // "reading the answer"), or none. Every argument must outlive the call. The one place
  // Beast's write and read are instantiated, once per kind of stream: they are most of this
  // file's compile time (several minutes per copy in a sanitizer build).
  void exchange(const HttpRequest& request, boost::beast::flat_buffer& buffer,
                boost::beast::http::response_parser<boost::beast::http::string_body>& response,
                std::function<void(const boost::beast::error_code&, std::string_view step)> done);
  // Closes the connection at once (no TLS close_notify: the request is over, or failed).
  void close();

 private:
  void reset();

  boost::asio::io_context& io_;
  std::shared_ptr<BackendTls> tls_;  // null: plain TCP
  std::variant<boost::beast::tcp_stream, boost::beast::ssl_stream<boost::beast::tcp_stream>>
      stream_;
};

// The POST of a JSON `body` to `target` with roomcast's headers (Host, User-Agent,
// Content-Type, Connection: close) and, if `secret` is not empty, X-Roomcast-Signature
// (sign(secret, body)). Callers add their own headers.
HttpRequest make_json_post(const HttpTarget& target, std::string body, std::string_view secret);

// Sends `request` to `backend` on `io`; calls `done` once, on io's thread, with the answer, or
// with an error when any step fails or the whole exchange takes longer than `timeout`, or
// the answer's body is over `max_answer_bytes`. If `io` is stopped first, never (the pending
// request is dropped with the io_context).
void send_request(boost::asio::io_context& io, const Backend& backend, HttpRequest request,
                  std::chrono::milliseconds timeout, std::uint64_t max_answer_bytes,
                  std::function<void(HttpAnswer)> done);

// One connection to a backend, used for one request at a time and kept open between them
// (HTTP/1.1 keep-alive) while the backend's answers allow it; the first request, and the one
// after the backend closed it, connects anew. A request that fails on a reused connection
// before any byte of an answer came (the backend closed it while idle, which the next write
// or read finds out) is sent once more on a new connection, not reported as failed.
// Thread: the io_context's; owned by its user (which the io_context must not outlive:
// handlers hold `this`; a stopped io_context runs none).
class HttpConnection {
 public:
  HttpConnection(boost::asio::io_context& io, const Backend& backend);
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends `request` (which the caller keeps alive and unchanged until `done`; it should ask
  // for keep-alive) and calls `done` once, on the io_context's thread, as send_request does.
  // One at a time: not again before `done`.
  void send(const HttpRequest& request, std::chrono::milliseconds timeout,
            std::uint64_t max_answer_bytes, std::function<void(HttpAnswer)> done);

 private:
  void start(bool reused);
  void write(bool reused);
  void fail(bool reused, const boost::beast::error_code& error, std::string why);
  void close();
  void finish(HttpAnswer answer);

  const HttpTarget target_;
  boost::asio::ip::tcp::resolver resolver_;
  BackendStream stream_;
  bool open_ = false;  // connected, and the last answer allowed keeping it
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> response_;
  const HttpRequest* request_ = nullptr;
  std::chrono::milliseconds timeout_{0};
  std::uint64_t max_answer_bytes_ = 0;
  std::function<void(HttpAnswer)> done_;
};

}  // namespace roomcast::hooks
