#include "hooks/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <memory>

namespace roomcast::hooks {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// One request in flight: owned by its pending handler, so it lives exactly as long as a step
// of it waits.
struct Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(asio::io_context& io, HttpRequest r, std::function<void(HttpAnswer)> d)
      : resolver(io), stream(io), request(std::move(r)), done(std::move(d)) {}

  void fail(std::string why) {
    stream.close();
    done({std::move(why), 0, {}});
  }

  asio::ip::tcp::resolver resolver;
  beast::tcp_stream stream;
  HttpRequest request;
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> response;
  std::function<void(HttpAnswer)> done;
};

}  // namespace

HttpRequest make_json_post(const HttpTarget& target, std::string body, std::string_view secret) {
  HttpRequest request{http::verb::post, target.path, 11};
  request.set(http::field::host, target.host_header);
  request.set(http::field::user_agent, "roomcast");
  request.set(http::field::content_type, "application/json");
  if (!secret.empty()) request.set("X-Roomcast-Signature", sign(secret, body));
  request.keep_alive(false);
  request.body() = std::move(body);
  request.prepare_payload();
  return request;
}

void send_request(asio::io_context& io, const HttpTarget& target, HttpRequest request,
                  std::chrono::milliseconds timeout, std::uint64_t max_answer_bytes,
                  std::function<void(HttpAnswer)> done) {
  auto exchange = std::make_shared<Exchange>(io, std::move(request), std::move(done));
  exchange->response.body_limit(max_answer_bytes);
  // One deadline for connect, write and read together (the stream's timer). Name resolution
  // is not timed by it: backends are named by address or by a name the system resolves
  // locally; a caller that must answer in time keeps its own deadline (the publish hook).
  exchange->stream.expires_after(timeout);
  exchange->resolver.async_resolve(
      target.host, target.port,
      [exchange](const beast::error_code& ec,
                 const asio::ip::tcp::resolver::results_type& results) {
        if (ec) return exchange->fail("cannot resolve the host: " + ec.message());
        exchange->stream.async_connect(
            results, [exchange](const beast::error_code& error, const asio::ip::tcp::endpoint&) {
              if (error) return exchange->fail("cannot connect: " + error.message());
              http::async_write(
                  exchange->stream, exchange->request,
                  [exchange](const beast::error_code& sent, std::size_t) {
                    if (sent) return exchange->fail("sending: " + sent.message());
                    http::async_read(
                        exchange->stream, exchange->buffer, exchange->response,
                        [exchange](const beast::error_code& read, std::size_t) {
                          if (read) return exchange->fail("reading the answer: " + read.message());
                          exchange->stream.close();
                          auto& answer = exchange->response.get();
                          exchange->done({{}, answer.result_int(), std::move(answer.body())});
                        });
                  });
            });
      });
}

HttpConnection::HttpConnection(asio::io_context& io, HttpTarget target)
    : target_(std::move(target)), resolver_(io), stream_(io) {}

void HttpConnection::send(const HttpRequest& request, std::chrono::milliseconds timeout,
                          std::uint64_t max_answer_bytes, std::function<void(HttpAnswer)> done) {
  request_ = &request;
  timeout_ = timeout;
  max_answer_bytes_ = max_answer_bytes;
  done_ = std::move(done);
  start(open_);
}

void HttpConnection::start(bool reused) {
  response_.emplace();
  response_->body_limit(max_answer_bytes_);
  // One deadline for connect, write and read together, as send_request's.
  stream_.expires_after(timeout_);
  if (reused) return write(true);
  resolver_.async_resolve(
      target_.host, target_.port,
      [this](const beast::error_code& ec, const asio::ip::tcp::resolver::results_type& results) {
        if (ec) return fail(false, ec, "cannot resolve the host: " + ec.message());
        stream_.async_connect(
            results, [this](const beast::error_code& error, const asio::ip::tcp::endpoint&) {
              if (error) return fail(false, error, "cannot connect: " + error.message());
              open_ = true;
              write(false);
            });
      });
}

void HttpConnection::write(bool reused) {
  http::async_write(stream_, *request_, [this, reused](const beast::error_code& sent, std::size_t) {
    if (sent) return fail(reused, sent, "sending: " + sent.message());
    http::async_read(stream_, buffer_, *response_,
                     [this, reused](const beast::error_code& read, std::size_t) {
                       if (read) return fail(reused, read, "reading the answer: " + read.message());
                       auto& answer = response_->get();
                       if (answer.keep_alive()) {
                         stream_.expires_never();  // idle until the next request
                       } else {
                         close();
                       }
                       finish({{}, answer.result_int(), std::move(answer.body())});
                     });
  });
}

void HttpConnection::fail(bool reused, const beast::error_code& error, std::string why) {
  close();
  // A kept connection the backend had closed: nothing was answered, so nothing was lost;
  // a new connection gets the request (a timeout is the backend's slowness: reported).
  if (reused && !response_->got_some() && error != beast::error::timeout) return start(false);
  finish({std::move(why), 0, {}});
}

void HttpConnection::close() {
  beast::error_code ignored;
  stream_.socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  stream_.close();
  buffer_.clear();
  open_ = false;
}

void HttpConnection::finish(HttpAnswer answer) {
  // done_ may send the next request (which sets done_ again): move it out first.
  auto done = std::move(done_);
  done_ = nullptr;
  done(std::move(answer));
}

}  // namespace roomcast::hooks
