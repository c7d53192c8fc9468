// HTTP POSTs to the backend, on the caller's io_context, each within a time limit:
// send_request (the publish hook) uses one connection per request (the backend sees a fresh,
// independent request each time; nothing to keep alive or to repair); HttpConnection (a
// webhook lane) keeps its connection open between requests while the backend allows it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "hooks/delivery.h"

namespace roomcast::hooks {

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;

// What came of a request: the answer's status and body, or why there is none.
struct HttpAnswer {
  std::string error;  // empty: answered (any status)
  unsigned status = 0;
  std::string body;
};

// The POST of a JSON `body` to `target` with roomcast's headers (Host, User-Agent,
// Content-Type, Connection: close) and, if `secret` is not empty, X-Roomcast-Signature
// (sign(secret, body)). Callers add their own headers.
HttpRequest make_json_post(const HttpTarget& target, std::string body, std::string_view secret);

// Sends `request` to `target` on `io`; calls `done` once, on io's thread, with the answer, or
// with an error when any step fails or the whole exchange takes longer than `timeout`, or
// the answer's body is over `max_answer_bytes`. If `io` is stopped first, never (the pending
// request is dropped with the io_context).
void send_request(boost::asio::io_context& io, const HttpTarget& target, HttpRequest request,
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
  HttpConnection(boost::asio::io_context& io, HttpTarget target);
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
  boost::beast::tcp_stream stream_;
  bool open_ = false;  // connected, and the last answer allowed keeping it
  boost::beast::flat_buffer buffer_;
  std::optional<boost::beast::http::response_parser<boost::beast::http::string_body>> response_;
  const HttpRequest* request_ = nullptr;
  std::chrono::milliseconds timeout_{0};
  std::uint64_t max_answer_bytes_ = 0;
  std::function<void(HttpAnswer)> done_;
};

}  // namespace roomcast::hooks
