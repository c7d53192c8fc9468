#include "hooks/http_client.h"

#include <openssl/ssl.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>
#include <memory>
#include <stdexcept>

namespace roomcast::hooks {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

using TlsStream = beast::ssl_stream<beast::tcp_stream>;

std::shared_ptr<BackendTls> make_backend_tls(const std::string& ca_file) {
  auto tls = std::make_shared<BackendTls>(ssl::context::tls_client);
  tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                   ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  tls->set_verify_mode(ssl::verify_peer);
  beast::error_code error;
  if (ca_file.empty()) {
    tls->set_default_verify_paths(error);
    if (error)
      throw std::runtime_error("cannot load the system's CA certificates: " + error.message());
  } else {
    tls->load_verify_file(ca_file, error);
    if (error) {
      throw std::runtime_error("--backend-ca-file " + ca_file +
                               ": not a readable PEM file of CA certificates (" + error.message() +
                               ")");
    }
  }
  return tls;
}

Backend backend_of(std::string_view flag, const std::string& url, const std::string& ca_file) {
  auto parsed = parse_http_url(url);
  if (auto* why = std::get_if<std::string>(&parsed)) {
    throw std::invalid_argument(std::string(flag) + ": " + *why);
  }
  Backend backend{std::get<HttpTarget>(std::move(parsed)), nullptr};
  if (backend.target.tls) {
    try {
      backend.tls = make_backend_tls(ca_file);
    } catch (const std::runtime_error& e) {
      throw std::invalid_argument(std::string(flag) + ": " + e.what());
    }
  }
  return backend;
}

BackendStream::BackendStream(asio::io_context& io, std::shared_ptr<BackendTls> tls)
    : io_(io), tls_(std::move(tls)), stream_(std::in_place_index<0>, io) {
  reset();
}

void BackendStream::reset() {
  if (tls_ != nullptr) {
    stream_.emplace<TlsStream>(io_, *tls_);
  } else {
    stream_.emplace<beast::tcp_stream>(io_);
  }
}

beast::tcp_stream& BackendStream::tcp() {
  return std::visit([](auto& s) -> beast::tcp_stream& { return beast::get_lowest_layer(s); },
                    stream_);
}

void BackendStream::connect(
    asio::ip::tcp::resolver& resolver, const HttpTarget& target, std::chrono::milliseconds timeout,
    std::function<void(const beast::error_code&, std::string_view step)> done) {
  // A fresh stream each time: a TLS session that was closed cannot carry another.
  reset();
  tcp().expires_after(timeout);
  resolver.async_resolve(
      target.host, target.port,
      [this, &target, done = std::move(done)](
          const beast::error_code& ec,
          const asio::ip::tcp::resolver::results_type& results) mutable {
        if (ec) return done(ec, "cannot resolve the host");
        tcp().async_connect(results, [this, &target, done = std::move(done)](
                                         const beast::error_code& error,
                                         const asio::ip::tcp::endpoint&) mutable {
          if (error) return done(error, "cannot connect");
          auto* tls = std::get_if<TlsStream>(&stream_);
          if (tls == nullptr) return done({}, {});
          // SNI (SSL_set_tlsext_host_name, whose macro casts in the C way), so that a backend
          // behind a shared address presents the right certificate, and the certificate must name
          // the host the URL names.
          if (SSL_ctrl(tls->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                       TLSEXT_NAMETYPE_host_name, const_cast<char*>(target.host.c_str())) != 1) {
            return done(beast::error_code(static_cast<int>(::ERR_get_error()),
                                          asio::error::get_ssl_category()),
                        "TLS");
          }
          tls->set_verify_callback(ssl::host_name_verification(target.host));
          tls->async_handshake(ssl::stream_base::client,
                               [done = std::move(done)](const beast::error_code& shaken) mutable {
                                 if (shaken) return done(shaken, "TLS handshake");
                                 done({}, {});
                               });
        });
      });
}

void BackendStream::exchange(
    const HttpRequest& request, beast::flat_buffer& buffer,
    http::response_parser<http::string_body>& response,
    std::function<void(const beast::error_code&, std::string_view step)> done) {
  std::visit(
      [&](auto& stream) {
        http::async_write(stream, request,
                          [&stream, &buffer, &response, done = std::move(done)](
                              const beast::error_code& sent, std::size_t) mutable {
                            if (sent) return done(sent, "sending");
                            http::async_read(stream, buffer, response,
                                             [done = std::move(done)](const beast::error_code& read,
                                                                      std::size_t) mutable {
                                               if (read) return done(read, "reading the answer");
                                               done({}, {});
                                             });
                          });
      },
      stream_);
}

void BackendStream::close() {
  beast::error_code ignored;
  tcp().socket().shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
  tcp().close();
}

namespace {

// One request in flight: owned by its pending handler, so it lives exactly as long as a step
// of it waits.
struct Exchange : std::enable_shared_from_this<Exchange> {
  Exchange(asio::io_context& io, const Backend& backend, HttpRequest r,
           std::function<void(HttpAnswer)> d)
      : target(backend.target),
        resolver(io),
        stream(io, backend.tls),
        request(std::move(r)),
        done(std::move(d)) {}

  void fail(std::string why) {
    stream.close();
    done({std::move(why), 0, {}});
  }

  const HttpTarget target;
  asio::ip::tcp::resolver resolver;
  BackendStream stream;
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

void send_request(asio::io_context& io, const Backend& backend, HttpRequest request,
                  std::chrono::milliseconds timeout, std::uint64_t max_answer_bytes,
                  std::function<void(HttpAnswer)> done) {
  auto exchange = std::make_shared<Exchange>(io, backend, std::move(request), std::move(done));
  exchange->response.body_limit(max_answer_bytes);
  // One deadline for connect, handshake, write and read together (the stream's timer). Name
  // resolution is not timed by it: backends are named by address or by a name the system
  // resolves locally; a caller that must answer in time keeps its own deadline (the publish
  // hook).
  exchange->stream.connect(
      exchange->resolver, exchange->target, timeout,
      [exchange](const beast::error_code& error, std::string_view step) {
        if (error) return exchange->fail(std::string(step) + ": " + error.message());
        exchange->stream.exchange(
            exchange->request, exchange->buffer, exchange->response,
            [exchange](const beast::error_code& failed, std::string_view failed_step) {
              if (failed) return exchange->fail(std::string(failed_step) + ": " + failed.message());
              exchange->stream.close();
              auto& answer = exchange->response.get();
              exchange->done({{}, answer.result_int(), std::move(answer.body())});
            });
      });
}

HttpConnection::HttpConnection(asio::io_context& io, const Backend& backend)
    : target_(backend.target), resolver_(io), stream_(io, backend.tls) {}

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
  // One deadline for connect, handshake, write and read together, as send_request's.
  if (reused) {
    stream_.tcp().expires_after(timeout_);
    return write(true);
  }
  stream_.connect(resolver_, target_, timeout_,
                  [this](const beast::error_code& error, std::string_view step) {
                    if (error)
                      return fail(false, error, std::string(step) + ": " + error.message());
                    open_ = true;
                    write(false);
                  });
}

void HttpConnection::write(bool reused) {
  stream_.exchange(*request_, buffer_, *response_,
                   [this, reused](const beast::error_code& failed, std::string_view step) {
                     if (failed) {
                       return fail(reused, failed, std::string(step) + ": " + failed.message());
                     }
                     auto& answer = response_->get();
                     if (answer.keep_alive()) {
                       stream_.tcp().expires_never();  // idle until the next request
                     } else {
                       close();
                     }
                     finish({{}, answer.result_int(), std::move(answer.body())});
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
