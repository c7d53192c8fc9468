// One HTTP POST to the backend (webhooks, the publish hook): resolve, connect, send, read the
// answer, on the caller's io_context, within a time limit. One connection per request (the
// backend sees a fresh, independent request each time; nothing to keep alive or to repair).
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
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

}  // namespace roomcast::hooks
